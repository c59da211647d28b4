"""The examples depend on what the input says, not on its file's name or place; the counted relations that
no sentence writes."""

import dataclasses
import io
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.annotators.test_write_examples import shared_name_document
from tests.pipeline.test_generate import digests, generate

TABLES = ("memory_write", "memory_read")
ID_COLUMNS = ("id", "doc_id")


def run(tmp_path, name: str, inputs: list, evidence: str):
    out = tmp_path / name
    assert generate(*("--input", *map(str, inputs)), "--output", str(out), "--evidence", evidence) == 0
    return out


def without_ids(path) -> bytes:
    """A Parquet file's table less the id columns, as Arrow IPC bytes."""
    table = pq.read_table(path).drop_columns(list(ID_COLUMNS))
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def copy_sample(sample_path, to):
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_path, to)
    return to


@pytest.mark.parametrize("evidence", ["heuristic", "keep"])
def test_a_moved_input_gives_byte_identical_output(tmp_path, sample_path, evidence):
    a = copy_sample(sample_path, tmp_path / "in" / "a" / "sample_docred.json")
    b = copy_sample(sample_path, tmp_path / "in" / "b" / "sample_docred.json")
    out_a, out_b = run(tmp_path, "a", [a], evidence), run(tmp_path, "b", [b], evidence)
    shards = digests(out_a)
    assert any(k.startswith("memory_write/") for k in shards) and any(k.startswith("memory_read/") for k in shards)
    assert shards == digests(out_b)  # every shard and stats.json


@pytest.mark.parametrize("evidence", ["heuristic", "keep"])
def test_a_renamed_input_differs_only_in_the_ids_which_name_the_file(tmp_path, sample_path, evidence):
    # Both names give the same split and source columns (neither names a split or dataset).
    a = copy_sample(sample_path, tmp_path / "in" / "sample_docred.json")
    b = copy_sample(sample_path, tmp_path / "in" / "renamed_copy.json")
    out_a, out_b = run(tmp_path, "a", [a], evidence), run(tmp_path, "b", [b], evidence)
    assert (out_a / "stats.json").read_bytes() == (out_b / "stats.json").read_bytes()
    for table in TABLES:
        (shard_a,), (shard_b,) = sorted((out_a / table).glob("*.parquet")), sorted((out_b / table).glob("*.parquet"))
        assert shard_a.name == shard_b.name
        assert without_ids(shard_a) == without_ids(shard_b)  # every other column, byte for byte
        rows_a, rows_b = (pq.read_table(s, columns=list(ID_COLUMNS)).to_pylist() for s in (shard_a, shard_b))
        assert len(rows_a) > 0
        for ra, rb in zip(rows_a, rows_b, strict=True):
            assert ra["doc_id"].startswith("sample_docred-") and rb["doc_id"].startswith("renamed_copy-")
            for column in ID_COLUMNS:
                assert rb[column] == "renamed_copy" + ra[column].removeprefix("sample_docred")


def test_identical_inputs_in_one_run_give_the_same_rows_under_distinct_ids(tmp_path, sample_path):
    a = copy_sample(sample_path, tmp_path / "in" / "sample_docred.json")
    b = copy_sample(sample_path, tmp_path / "in" / "renamed_copy.json")
    out = run(tmp_path, "both", [a, b], "heuristic")
    rows = pq.read_table(out / "memory_write").to_pylist()
    assert len({r["id"] for r in rows}) == len(rows)
    by_file = {}
    for r in rows:
        stem = r["doc_id"].rsplit("-", 1)[0]
        by_file.setdefault(stem, {})[(r["doc_index"], r["sent_id"])] = {
            k: v for k, v in r.items() if k not in ID_COLUMNS
        }
    assert sorted(by_file) == ["renamed_copy", "sample_docred"]
    assert by_file["renamed_copy"] == by_file["sample_docred"] and len(by_file["sample_docred"]) > 0


def test_two_inputs_sharing_a_name_are_refused(tmp_path, sample_path, capsys):
    a = copy_sample(sample_path, tmp_path / "in" / "a" / "sample_docred.json")
    b = copy_sample(sample_path, tmp_path / "in" / "b" / "sample_docred.json")
    assert generate("--input", str(a), str(b), "--output", str(tmp_path / "out")) != 0
    assert "share the name 'sample_docred'" in capsys.readouterr().err


def docred_record(doc) -> dict:
    return {
        "title": doc.title,
        "sents": doc.sents,
        "vertexSet": [
            [{"name": m.name, "sent_id": m.sent_id, "pos": [m.start, m.end], "type": e.type} for m in e.mentions]
            for e in doc.entities
        ],
        "labels": [{"h": r.h, "t": r.t, "r": r.r, "evidence": r.evidence} for r in doc.relations],
    }


@pytest.mark.parametrize("evidence", ["heuristic", "keep"])
def test_relations_not_written_are_counted_in_stats(tmp_path, evidence):
    doc = shared_name_document(evidence=False)
    # A second document where nothing is skipped: the counts are per relation, not per document.
    plain = dataclasses.replace(doc, entities=doc.entities[:2] + doc.entities[3:], relations=doc.relations[:1])
    path = tmp_path / "berlin.json"
    path.write_text(json.dumps([docred_record(doc), docred_record(plain)]), encoding="utf-8")
    out = run(tmp_path, "out", [path], evidence)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["memory_write.relations_not_written_duplicate_triple"] == 1
    assert stats["memory_write.relations_not_written_no_mention_pair"] == 1
    written = [
        (r["doc_index"], r["sent_id"], [(t["head"], t["relation"], t["tail"], t["label_index"]) for t in r["triples"]])
        for r in pq.read_table(out / "memory_write").to_pylist()
    ]
    berlin = [("Berlin", "country", "German", 0)]
    assert sorted(written) == [(0, 0, berlin), (0, 1, []), (1, 0, berlin), (1, 1, [])]
