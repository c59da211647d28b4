"""Shard discovery, input errors (one line, exit code 2, before any training), mixing, eval data, export."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest
from memllm.trainer.cli import main
from memllm.trainer.config import DataSource, TrainConfig, TrainerInputError
from memllm.trainer.recipe import train

from tests.trainer.conftest import read_examples, write_examples, write_shards


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("memllm train: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0]


def test_data_source_parse(tmp_path):
    assert DataSource.parse("out") == DataSource(tmp_path.__class__("out"), 1.0)
    assert DataSource.parse("a/out:2").rate == 2.0 and str(DataSource.parse("a/out:2").path) == "a/out"
    assert DataSource.parse("c:/x").rate == 1.0  # not a rate: part of the path
    with pytest.raises(TrainerInputError):
        DataSource.parse("out:0")


def test_no_shards_of_the_task(capsys, write_data, tmp_path):
    code, err = run_cli(
        capsys, "--data", str(write_data), "--task", "read", "--model", "x", "--output", str(tmp_path / "o")
    )
    assert_one_line_error(code, err, "no memory_read shards")


def test_wrong_schema(capsys, tmp_path):
    out = tmp_path / "out"
    write_shards(out, "memory_read", "train", read_examples(1))
    shutil.move(out / "memory_read", out / "memory_write")
    code, err = run_cli(capsys, "--data", str(out), "--task", "write", "--model", "x", "--output", str(tmp_path / "o"))
    assert_one_line_error(code, err, "not a memory_write shard")


def test_missing_shard(capsys, write_data, tmp_path):
    (write_data / "memory_write" / "train-00001-of-00002.parquet").unlink()
    code, err = run_cli(capsys, "--data", str(write_data), "--task", "write", "--model", "x", "--output", str(tmp_path))
    assert_one_line_error(code, err, "1 shards", "[2]")


def test_model_without_tokenizer(capsys, write_data, tiny_mistral, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_mistral / name, bare / name)
    code, err = run_cli(
        capsys,
        "--data",
        str(write_data),
        "--task",
        "write",
        "--model",
        str(bare),
        "--output",
        str(tmp_path / "o"),
    )
    assert_one_line_error(code, err, "no usable tokenizer")
    assert not (tmp_path / "o").exists()  # nothing started


def test_model_path_that_does_not_exist(capsys, write_data, tmp_path):
    missing = str(tmp_path / "no-model")
    code, err = run_cli(
        capsys, "--data", str(write_data), "--task", "write", "--model", missing, "--output", str(tmp_path / "o")
    )
    assert_one_line_error(code, err, f"--model {missing}: no such directory")


def test_checkpoints_without_resume(capsys, write_data, tiny_mistral, tmp_path):
    (tmp_path / "o" / "checkpoint-3").mkdir(parents=True)
    code, err = run_cli(
        capsys,
        "--data",
        str(write_data),
        "--task",
        "write",
        "--model",
        str(tiny_mistral),
        "--output",
        str(tmp_path / "o"),
    )
    assert_one_line_error(code, err, "--resume")


def _prepare(tmp_path, model, *sources, **kw) -> dict:
    cfg = TrainConfig(
        data=list(sources),
        task=kw.pop("task", "write"),
        model=str(model),
        output=tmp_path / "o",
        cache_dir=str(tmp_path / "cache"),
        export_tokenized=str(tmp_path / "tok"),
        progress=False,
        **kw,
    )
    return train(cfg)["data"]


def test_mixing_oversampling_and_counts(tmp_path, tiny_mistral, capsys):
    a = write_shards(tmp_path / "a", "memory_write", "train", write_examples(2, seed=1))
    b = write_shards(tmp_path / "b", "memory_write", "train", write_examples(3, seed=2))
    na, nb = len(write_examples(2, seed=1)), len(write_examples(3, seed=2))
    data = _prepare(tmp_path, tiny_mistral, DataSource(a, 2.0), DataSource(b, 0.5))
    assert [s["rows"] for s in data["sources"]] == [na, nb]
    assert [s["examples"] for s in data["sources"]] == [2 * na, round(0.5 * nb)]
    assert data["train_examples"] == 2 * na + round(0.5 * nb) and data["eval"] is None
    err = capsys.readouterr().err  # the counts are reported before training would start
    assert "memllm train: memory_write from 2 source(s)" in err and "optimizer steps" in err
    axo = pq.read_table(tmp_path / "tok" / "axolotl" / "train.parquet")
    trl = pq.read_table(tmp_path / "tok" / "trl" / "train.parquet")
    assert axo.num_rows == trl.num_rows == data["train_examples"]
    assert axo.column_names == ["input_ids", "attention_mask", "labels"]
    assert trl.column_names == ["input_ids", "completion_mask"]
    assert (tmp_path / "tok" / "tokenizer" / "tokenizer.json").is_file()
    assert axo.column("input_ids").equals(trl.column("input_ids"))
    for a, t in zip(axo.to_pylist(), trl.to_pylist()):
        assert t["completion_mask"] == [int(x != -100) for x in a["labels"]]


def test_eval_split_and_holdout(tmp_path, tiny_mistral, write_data, read_data):
    data = _prepare(tmp_path, tiny_mistral, DataSource(write_data))
    assert data["eval"] == "validation" and data["eval_stats"]["examples"] == len(write_examples(2, seed=2))
    data = _prepare(tmp_path, tiny_mistral, DataSource(read_data), task="read", eval_fraction=0.3)
    assert data["eval"] == "holdout"
    assert data["eval_stats"]["examples"] + data["train_examples"] == len(read_examples(6, seed=3))
    assert 0 < data["eval_stats"]["examples"] < data["train_examples"]


def test_streaming_counts_match(tmp_path, tiny_mistral, write_data):
    eager = _prepare(tmp_path, tiny_mistral, DataSource(write_data, 1.5), max_triples=2)
    assert eager["sources"][0]["skipped"]["too_many_triples"] > 0
    cfg = TrainConfig(
        data=[DataSource(write_data, 1.5)],
        task="write",
        model=str(tiny_mistral),
        output=tmp_path / "s",
        streaming=True,
        max_triples=2,
        progress=False,
    ).resolved()
    from memllm.trainer.recipe import prepare_inputs

    _, _, prepared = prepare_inputs(cfg)
    assert prepared.summary()["sources"] == eager["sources"]
    assert sum(1 for _ in prepared.train) == eager["train_examples"]
