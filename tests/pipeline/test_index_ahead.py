"""Indexing ahead (pipeline.index_ahead): the helper's index is the Index step's own, and is only taken
when it fits the file as it is; a run with it writes what a run without it writes."""

import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from memllm.annotators.docred import CHUNK_BYTES, CHUNK_DOCS, Record, index_file, parse_document, scan_json_records
from memllm.annotators.evidence import assign_evidence
from memllm.annotators.relation_labels import property_labels
from memllm.annotators.write_examples import build_write_examples
from memllm.pipeline import index_ahead
from memllm.pipeline.cli import main, sample_path
from memllm.pipeline.generate import GenerateConfig, run

from tests.pipeline.test_generate import digests

pytestmark = pytest.mark.skipif(index_ahead.fcntl is None, reason="needs fcntl (POSIX)")

ROOT = Path(__file__).resolve().parents[2]
PARAMS = (3, 1 << 20, 42)  # small chunks: the sample's 9 documents make several


@pytest.fixture
def damaged_input(tmp_path):
    """The sample with a damaged region in the middle: chunks on both sides of a dead letter."""
    data = open(sample_path(), "rb").read()
    cut = data.index(b'{"title"', len(data) // 2)
    path = tmp_path / "sample_damaged.json"
    path.write_bytes(data[:cut] + b'{"sents": [["x", }}}, ' + data[cut:])
    return str(path)


def _own_index(path: str, params=PARAMS) -> list:
    with open(path, "rb") as f:
        return list(index_file(f, "array", *params))


def test_the_helpers_index_is_the_index_steps_own(damaged_input):
    helper = index_ahead.start([(damaged_input, "array")], PARAMS)
    assert helper is not None
    spans = index_ahead.load(helper.directory, damaged_input, "array", PARAMS)  # waits for the helper
    assert helper.process.wait() == 0
    assert spans == _own_index(damaged_input)
    kinds = [type(s).__name__ for s in spans]
    assert "RecordError" in kinds and kinds.count("ChunkSpan") >= 3
    # Another spelling of the same file finds the same index.
    relative = os.path.relpath(damaged_input)
    assert index_ahead.load(helper.directory, relative, "array", PARAMS) == spans
    helper.close()
    assert not os.path.exists(helper.directory)


def test_no_usable_index_means_none(tmp_path, damaged_input):
    ahead = str(tmp_path / "ahead")
    assert index_ahead.load(ahead, damaged_input, "array", PARAMS) is None  # no helper ran
    index_ahead.start([(damaged_input, "array")], PARAMS, ahead).process.wait()
    assert index_ahead.load(ahead, damaged_input, "array", (4, 1 << 20, 42)) is None  # other chunk sizes
    assert index_ahead.load(ahead, damaged_input, "lines", PARAMS) is None
    stat = os.stat(damaged_input)
    os.utime(damaged_input, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the file changed since
    assert index_ahead.load(ahead, damaged_input, "array", PARAMS) is None


def test_a_helper_that_fails_leaves_the_step_to_index(tmp_path):
    (tmp_path / "a_file").write_text("")
    assert index_ahead.start([("x.json", "array")], PARAMS, str(tmp_path / "a_file" / "ahead")) is None
    ahead = str(tmp_path / "ahead")
    missing = str(tmp_path / "gone.json")
    assert index_ahead.start([(missing, "array")], PARAMS, ahead).process.wait() == 0
    assert index_ahead.load(ahead, missing, "array", PARAMS) is None
    assert "gone.json" in open(os.path.join(ahead, index_ahead.LOG)).read()


def test_start_local_only_where_the_launcher_runs_the_workers_on_local_json(tmp_path, damaged_input):
    for runner in ("DataflowRunner", "FlinkRunner", "apache_beam.runners.portability.portable_runner.PortableRunner"):
        assert index_ahead.start_local([damaged_input], 42, runner) is None
    assert index_ahead.start_local(["gs://bucket/dev.json"], 42, None) is None
    assert index_ahead.start_local([str(tmp_path / "none-*.json")], 42, None) is None  # the run reports it
    (tmp_path / "notes.json").write_text("hello")
    assert index_ahead.start_local([str(tmp_path / "*.json")], 42, "FnApiRunner") is None  # notes.json: no JSON
    helper = index_ahead.start_local([damaged_input], 7, "DirectRunner")
    try:
        params = (CHUNK_DOCS, CHUNK_BYTES, 7)
        assert index_ahead.load(helper.directory, damaged_input, "array", params) == _own_index(damaged_input, params)
    finally:
        helper.close()


def test_the_cli_imports_no_beam_before_the_helper_starts():
    code = "import sys, pipeline.cli; sys.exit('apache_beam' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_a_run_indexed_ahead_writes_what_a_run_without_writes(tmp_path, damaged_input, caplog):
    caplog.set_level(logging.INFO, logger="memllm")
    base = GenerateConfig(inputs=[damaged_input], output="", beam_args=["--runner=FnApiRunner"])
    outs = {}
    for ahead in (True, False):
        out = tmp_path / f"out-{ahead}"
        stats = run(dataclasses.replace(base, output=str(out), index_ahead=ahead))
        stats.pop("_elapsed_seconds")
        outs[ahead] = stats, digests(out)
    assert outs[True] == outs[False]
    assert outs[True][0]["input.json_errors"] == 1
    assert sum("made while the runner started" in r.getMessage() for r in caplog.records) == 1
    assert not (tmp_path / "out-True" / "_spill").exists()


@pytest.mark.parametrize("evidence", ["keep", "heuristic"])  # with and without the reference's stream
def test_the_cli_starts_the_helper_and_removes_its_directory(tmp_path, damaged_input, caplog, monkeypatch, evidence):
    caplog.set_level(logging.INFO, logger="memllm")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    out = tmp_path / "out"
    args = ["generate", "--input", damaged_input, "--output", str(out), "--runner=FnApiRunner", "--evidence", evidence]
    assert main(args) == 0
    assert sum("made while the runner started" in r.getMessage() for r in caplog.records) == 1
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (out / "stats.json").exists()


def test_without_the_reference_stream_nothing_is_replayed_and_each_example_seeds_itself(tmp_path, damaged_input):
    no_stream = _own_index(damaged_input, PARAMS[:2] + (None,))
    with_stream = _own_index(damaged_input)
    assert [dataclasses.replace(s, rng_state=None) if hasattr(s, "rng_state") else s for s in with_stream] == no_stream
    assert all(s.rng_state is None for s in no_stream if hasattr(s, "rng_state"))
    # A run with other evidence than the input's own: its memory-write examples are those the builder makes
    # with per-example seeds (rng=None), from the documents with the heuristic's evidence.
    out = tmp_path / "out"
    assert main(["generate", "-q", "--input", damaged_input, "--output", str(out), "--evidence", "heuristic"]) == 0
    rows = pq.read_table(out / "memory_write").to_pylist()
    with open(damaged_input, "rb") as f:
        records = [r.value for r in scan_json_records(f) if isinstance(r, Record)]
    doc_ids = {row["doc_index"]: row["doc_id"] for row in rows}
    labels, expected = property_labels(), []
    for index, doc_id in sorted(doc_ids.items()):
        doc = parse_document(
            records[index], doc_id=doc_id, doc_index=index, source="s", split="s", relation_labels=labels
        )
        doc, _ = assign_evidence(doc, "heuristic")
        expected += [(ex.id, [t.names for t in ex.triples]) for ex in build_write_examples(doc, labels, seed=42)]
    got = [(row["id"], [(t["head"], t["relation"], t["tail"]) for t in row["triples"]]) for row in rows]
    assert sorted(got) == sorted(expected)
    assert sum(len(t) for _, t in got) > 10
