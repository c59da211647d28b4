"""`memllm generate` end to end: output layout, loading with pyarrow and datasets, determinism, bad input."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from memllm.pipeline.cli import main
from memllm.schemas.records import MEMORY_READ_SCHEMA, MEMORY_WRITE_SCHEMA

from tests.conftest import ROOT, import_if_installed


def generate(*args: str) -> int:
    return main(["generate", "-q", "--runner=FnApiRunner", *args])


def digests(out: Path) -> dict:
    return {
        str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }


@pytest.fixture(scope="module")
def sample_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    assert generate("--output", str(out), "--rows_per_shard", "8") == 0
    return out


def test_output_layout_and_schemas(sample_out):
    writes = sorted((sample_out / "memory_write").iterdir())
    assert [p.name for p in writes] == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]  # 18 rows / 8
    assert pq.read_schema(writes[0]).remove_metadata() == MEMORY_WRITE_SCHEMA
    reads = pq.read_table(sample_out / "memory_read")
    assert reads.schema.remove_metadata() == MEMORY_READ_SCHEMA
    ids = reads.column("id").to_pylist()
    assert len(ids) == len(set(ids))
    for row in reads.to_pylist():
        assert "".join(s["text"] for s in row["segments"]) == row["text"]
    stats = json.loads((sample_out / "stats.json").read_text())
    assert stats["input.records"] == stats["documents.valid"] == 9
    assert stats["memory_write.train.rows"] == stats["memory_write.examples"] == 18
    assert stats["memory_read.train.rows"] == stats["memory_read.examples"] == reads.num_rows
    card = (sample_out / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: memory_write")


def test_shards_are_sorted_by_id_and_hashed_stably(sample_out):
    import zlib

    for shard in sorted((sample_out / "memory_write").iterdir()):
        ids = pq.read_table(shard).column("id").to_pylist()
        assert ids == sorted(ids)
        index = int(shard.name.split("-")[1])
        assert all(zlib.crc32(i.encode()) % 3 == index for i in ids)


def test_datasets_loads_both_ways(sample_out):
    datasets = import_if_installed("datasets", "the train extra")
    by_dir = datasets.load_dataset("parquet", data_dir=str(sample_out / "memory_write"))
    by_config = datasets.load_dataset(str(sample_out), "memory_read")
    assert by_dir["train"].num_rows == 18
    assert "segments" in by_config["train"].column_names and by_config["train"].num_rows > 10


def test_rerun_is_byte_identical_and_clears_stale_shards(sample_out, tmp_path):
    out = tmp_path / "again"
    assert generate("--output", str(out), "--rows_per_shard", "2") == 0
    assert len(list((out / "memory_write").iterdir())) == 9
    assert generate("--output", str(out), "--rows_per_shard", "8") == 0
    assert digests(out) == digests(sample_out)


def test_rerun_leaves_the_triples_of_fill_memory_alone(tmp_path):
    """`memllm fill-memory` may write `triples/` into the same OUT: a `generate` rerun clears only its own tables."""
    out = tmp_path / "out"
    assert main(["generate", "-q", "--runner=FnApiRunner", "--output", str(out)]) == 0
    triples = out / "triples" / "train-00000-of-00001.parquet"
    triples.parent.mkdir()
    triples.write_bytes(b"fill-memory's shard")
    assert main(["generate", "-q", "--runner=FnApiRunner", "--output", str(out)]) == 0
    assert triples.read_bytes() == b"fill-memory's shard"


def test_multi_processing_gives_the_same_bytes(sample_out, tmp_path):
    out = tmp_path / "mp"
    assert (
        generate(
            "--output",
            str(out),
            "--rows_per_shard",
            "8",
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=2",
        )
        == 0
    )
    assert digests(out) == digests(sample_out)


def test_corrupted_input_loses_nothing_valid(sample_path, tmp_path):
    docs = json.loads(sample_path.read_text())
    bad_index = dict(docs[1], labels=[{"h": 0, "t": 99, "r": "P17", "evidence": []}])
    parts = [json.dumps(d) for d in docs[:3]] + [json.dumps(bad_index), "[1, 2]", '{"title": "cut", "sents": [["x"]']
    parts += [json.dumps(d) for d in docs[3:]]
    path = tmp_path / "broken_train.json"
    path.write_text("[" + ",\n".join(parts) + "]")
    out = tmp_path / "out"
    assert generate("--input", str(path), "--output", str(out)) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents.valid"] == 9  # every valid document went on
    assert stats["input.records"] == stats["documents.valid"] + stats["validate.rejected"]
    errors = [json.loads(line) for f in sorted((out / "errors").iterdir()) for line in f.read_text().splitlines()]
    reasons = sorted(e["reason"] for e in errors)
    assert len(errors) == stats["validate.rejected"] + stats["input.json_errors"] == 3
    assert any("labels[0].t = 99 is out of range" in r for r in reasons)
    assert any(r.startswith("invalid JSON") for r in reasons)
    assert any("must be a JSON object" in r for r in reasons)
    assert all(set(e) == {"source", "record", "step", "reason", "split"} for e in errors)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: str(d / "nope.json"), "no such file"),
        (lambda d: (d / "x.json").write_text("hello") and str(d / "x.json"), "not a JSON array"),
        (lambda d: (d / "e.json").write_text("") == 0 and str(d / "e.json"), "empty"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, make, message):
    proc = subprocess.run(
        [sys.executable, "-m", "memllm.pipeline", "--input", make(tmp_path), "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("memllm: error")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_unknown_beam_flag_is_refused(capsys):
    assert generate("--runnr=FnApiRunner") == 2
    assert "unknown option(s): --runnr=FnApiRunner" in capsys.readouterr().err


def test_golden_through_the_pipeline(tmp_path, dev):
    """The Beam job on Re-DocRED dev reproduces the reference: every write example's labels, every read example.

    On the shipped subset the documents carrying the rest of the split's memory are a second input: the
    exact-match memory spans every input, and their own examples are left out of the comparison."""
    out = tmp_path / "dev"
    assert generate("--input", *map(str, dev.inputs), "--output", str(out)) == 0
    ours_too = f"{dev.documents.stem}-"  # doc ids are `<file stem>-<index>`

    writes = [r for r in pq.read_table(out / "memory_write").to_pylist() if r["doc_id"].startswith(ours_too)]
    gold = dev.memwrite_lines()
    ours = {
        (r["doc_index"], r["sent_id"]): [(t["head"], t["relation"], t["tail"]) for t in r["triples"]] for r in writes
    }
    assert len(ours) == len(writes) == len(gold) == dev.pick(4110, 476)
    assert all(ours[(g["doc_idx"], g["sent_id"])] == [tuple(x) for x in g["relations"]] for g in gold)
    reads = [r for r in pq.read_table(out / "memory_read").to_pylist() if r["doc_id"].startswith(ours_too)]
    ref = dev.memread_examples()

    def key(i, pre, preapi, queries, results, cont, eot):
        return json.dumps([i, pre, preapi, queries, [sorted(x) for x in results], cont, eot])

    gold_keys = sorted(
        key(
            g["data_idx"], g["pre_text"], g["preapi_text"], g["queries"], g["query_result"], g["continuation"], g["eot"]
        )
        for g in ref
    )
    our_keys = sorted(
        key(
            r["doc_index"],
            r["pre_text"],
            r["preapi_text"],
            [[q["subject"], q["relation"], q["object"]] for q in r["queries"]],
            r["query_results"],
            r["continuation"],
            r["eot"],
        )
        for r in reads
    )
    assert len(gold_keys) == dev.pick(4250, 442)
    assert our_keys == gold_keys
