"""`memllm memory build|query|stats`: inputs, output, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from memllm.memory.cli import main
from memllm.memory.embedding_memory import EmbeddingMemory
from memllm.schemas.records import WRITE_TRIPLE

from tests.memory.conftest import ROOT
from tests.support.embedders import HashingEmbedder

# the worked example of docs/method.md §3 as a DocRED document: Carla Fenwick has two mention names
DOC = {
    "title": "Lumen Vale",
    "sents": [
        ["Lumen", "Vale", "is", "a", "2019", "novel", "by", "Carla", "Fenwick", "."],
        ["Fenwick", "was", "born", "in", "Dunmore", ",", "Ireland", "."],
    ],
    "vertexSet": [
        [{"name": "Lumen Vale", "sent_id": 0, "pos": [0, 2], "type": "MISC"}],
        [
            {"name": "Carla Fenwick", "sent_id": 0, "pos": [7, 9], "type": "PER"},
            {"name": "Fenwick", "sent_id": 1, "pos": [0, 1], "type": "PER"},
        ],
        [{"name": "Dunmore", "sent_id": 1, "pos": [4, 5], "type": "LOC"}],
    ],
    "labels": [{"h": 0, "t": 1, "r": "P50", "evidence": [0]}, {"h": 1, "t": 2, "r": "P19", "evidence": [1]}],
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["memory", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc: int, err: str, fragment: str) -> None:
    assert rc == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and fragment in err, err


@pytest.fixture
def model(minilm_dir) -> list[str]:
    """The real (offline) MiniLM encoder: the CLI takes a model directory or hub id, never an object."""
    return ["--embedding-model", str(minilm_dir)]


@pytest.fixture
def built(tmp_path, capsys, model):
    docs = tmp_path / "docs.json"
    docs.write_text(json.dumps([DOC]))
    rc, out, _ = run(capsys, "build", str(docs), "--memory-path", str(tmp_path / "mem"), *model)
    assert rc == 0
    # (Lumen Vale, author, ×2 names of Carla Fenwick) + (×2 names, place of birth, Dunmore)
    assert "4 triples, 4 entities, 2 relations" in out
    return tmp_path / "mem"


def test_build_from_docred_and_query(built, model, capsys):
    rc, out, _ = run(
        capsys,
        "query",
        "Lumen Vale>>author>>",
        ">>place of birth>>Dunmore",
        "--memory-path",
        str(built),
        *model,
        "--preset",
        "exact",
    )
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "Lumen Vale>>author>>  (2 hits)"
    assert sorted(line.split("  ")[-1] for line in lines[1:3]) == [
        "Lumen Vale>>author>>Carla Fenwick",
        "Lumen Vale>>author>>Fenwick",
    ]
    assert lines[3] == ">>place of birth>>Dunmore  (2 hits)"
    rc, out, _ = run(capsys, "query", "Lumen Vale>>author>>", "--json", "--memory-path", str(built), *model)
    hits = json.loads(out)["hits"]
    assert sorted(h["tail"] for h in hits) == ["Carla Fenwick", "Fenwick"] and {h["score"] for h in hits} == {0.0}
    first = min(h["id"] for h in hits)
    rc, out, _ = run(
        capsys,
        "query",
        "Lumen Vale>>author>>",
        "--json",
        "--exclude-id",
        str(first),
        "--memory-path",
        str(built),
        *model,
    )
    assert [h["id"] for h in json.loads(out)["hits"]] == [max(h["id"] for h in hits)]


def test_build_from_parquet_shards_and_stats(tmp_path, model, capsys):
    shards = tmp_path / "memory_write"
    shards.mkdir()
    row = {
        "head": "Lumen Vale",
        "relation": "author",
        "tail": "Carla Fenwick",
        "head_entity": 0,
        "tail_entity": 1,
        "relation_id": "P50",
        "label_index": 0,
    }
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "triples": pa.array([[row], [], [row | {"tail": "Fenwick"}]], pa.list_(WRITE_TRIPLE)),
        }
    )
    pq.write_table(table, shards / "dev-00000-of-00001.parquet")
    mem = str(tmp_path / "mem")
    rc, out, _ = run(capsys, "build", str(shards), "--memory-path", mem, *model, "--batch-size", "1")
    assert rc == 0 and "2 triples, 3 entities, 1 relations" in out
    rc, out, _ = run(capsys, "stats", "--memory-path", mem)
    assert rc == 0
    assert out.splitlines()[:4] == [
        "triples    2",
        "entities   3",
        "relations  1",
        "embedder   nreimers/MiniLM-L6-H384-uncased (384-d)",
    ]
    assert "memory.sqlite" in out and "entities.index" in out


def test_user_errors_are_one_line_and_exit_2(built, model, tmp_path, capsys):
    mem = ["--memory-path", str(built)]
    one_line_error(*run(capsys, "query", "Lumen Vale>>author", *mem, *model)[::2], "must have the form")
    one_line_error(*run(capsys, "query", "a>>r>>b", *mem, *model)[::2], "exactly one side empty")
    one_line_error(*run(capsys, "query", ">>>>x", *mem, *model)[::2], "empty relation")
    nowhere = ["--memory-path", str(tmp_path / "none")]
    one_line_error(*run(capsys, "query", "a>>r>>", *nowhere, *model)[::2], "no memory at")
    one_line_error(*run(capsys, "stats", "--memory-path", str(tmp_path))[::2], "no memory at")
    one_line_error(*run(capsys, "build", str(tmp_path / "missing.json"), *mem, *model)[::2], "no such file")
    (tmp_path / "bad.json").write_text('[{"title": 1},')
    one_line_error(*run(capsys, "build", str(tmp_path / "bad.json"), *mem, *model)[::2], "DocRED format")
    (tmp_path / "broken.json").write_text('[{"title": ')
    one_line_error(*run(capsys, "build", str(tmp_path / "broken.json"), *mem, *model)[::2], "is not JSON")
    one_line_error(
        *run(capsys, "query", "a>>r>>", *mem, "--embedding-model", str(tmp_path / "no-model"))[::2],
        "embedding model directory not found",
    )
    (tmp_path / "not-a-model").mkdir()
    one_line_error(
        *run(capsys, "query", "a>>r>>", *mem, "--embedding-model", str(tmp_path / "not-a-model"))[::2],
        "cannot load embedding model",
    )


def test_another_model_is_refused(tmp_path, model, capsys):
    with EmbeddingMemory(tmp_path / "mem", HashingEmbedder()) as memory:
        memory.add_triples([("Lumen Vale", "author", "Carla Fenwick")])
    rc, _, err = run(capsys, "query", "Lumen Vale>>author>>", "--memory-path", str(tmp_path / "mem"), *model)
    one_line_error(rc, err, "was built with the embedder hashing-trigrams-384, not nreimers/MiniLM-L6-H384-uncased")


def test_exit_code_of_the_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "memllm.memory.cli", "memory", "query", "oops", "--memory-path", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "memllm.memory.cli", "memory"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2 and "usage:" in proc.stderr
