"""`memllm memory build --from OUT/triples`: the shards of `memllm fill-memory` loaded into a memory.

The shards are written here with the project's shard writer (`pipeline.sinks.write_parquet_file`, rows sorted
by id), the table cut two ways: one shard, or three shards by the writer's hash. The loaded memory must be
the same either way (same triples, same ids: id order across shards), hold each exact triple once, and
answer queries.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from memllm.memory.cli import main
from memllm.memory.embedding_memory import DB_FILE
from memllm.memory.sources import table_triples
from memllm.memory.store import TripleStore
from memllm.pipeline.sinks import shard_name, write_parquet_file
from memllm.schemas.records import TRIPLES_SCHEMA

# (doc, sentence, head, relation, tail): doc 1 repeats doc 0's first fact and a fact of its own sentence 0.
FACTS = [
    (0, 0, "Carla Fenwick", "place of birth", "Dunmore"),
    (0, 0, "Lumen Vale", "author", "Carla Fenwick"),
    (0, 1, "Dunmore", "country", "Ireland"),
    (1, 0, "Carla Fenwick", "place of birth", "Dunmore"),
    (1, 1, "Lumen Vale", "publication date", "1998"),
    (1, 1, "Lumen Vale", "author", "Carla Fenwick"),
    (2, 0, "Ireland", "capital", "Dublin"),
]


def rows() -> list[dict]:
    out, index = [], {}
    for doc, sent, head, relation, tail in FACTS:
        k = index[(doc, sent)] = index.get((doc, sent), -1) + 1
        doc_id = f"train_sample-{doc:06d}"
        out.append(
            dict(
                id=f"{doc_id}/s{sent:04d}t{k:03d}",
                source="sample",
                split="train",
                doc_id=doc_id,
                doc_index=doc,
                title=f"Doc {doc}",
                sent_id=sent,
                triple_index=k,
                head=head,
                relation=relation,
                tail=tail,
                sentence=f"sentence {sent} of doc {doc}",
            )
        )
    return out


def write_table(directory: Path, n_shards: int) -> Path:
    directory.mkdir(parents=True)
    parts: list[list[dict]] = [[] for _ in range(n_shards)]
    for row in rows():
        parts[zlib.crc32(row["id"].encode()) % n_shards].append(row)
    assert n_shards == 1 or all(parts), "every shard holds rows, so the merge across shards is exercised"
    for k, part in enumerate(parts):
        table = pa.Table.from_pylist(part, schema=TRIPLES_SCHEMA)
        write_parquet_file(str(directory / shard_name("train", k, n_shards, ".parquet")), [table], TRIPLES_SCHEMA)
    return directory


@pytest.fixture
def tables(tmp_path) -> tuple[Path, Path]:
    return write_table(tmp_path / "one" / "triples", 1), write_table(tmp_path / "three" / "triples", 3)


def test_triples_come_in_id_order_whatever_the_sharding(tables):
    one, three = tables
    expected = [(r["head"], r["relation"], r["tail"]) for r in sorted(rows(), key=lambda r: r["id"])]
    assert list(table_triples(one)) == expected
    assert list(table_triples(three)) == expected
    assert list(table_triples(one.parent)) == expected  # the output directory itself names its triples/


def test_an_unsorted_shard_or_another_table_is_refused(tmp_path):
    from memllm.memory.errors import MemoryUsageError

    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(pa.Table.from_pylist(rows()[::-1], schema=TRIPLES_SCHEMA), bad / "train-00000-of-00001.parquet")
    with pytest.raises(MemoryUsageError, match="not sorted by id"):
        list(table_triples(bad))
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), other / "train-00000-of-00001.parquet")
    with pytest.raises(MemoryUsageError, match="no head, relation, tail column"):
        list(table_triples(other))


def stored(memory: Path) -> list[tuple[int, str, str, str]]:
    with TripleStore(memory / DB_FILE) as store:
        return list(store.triples())


def test_build_from_dedups_in_id_order_and_answers_queries(tables, tmp_path, minilm_dir, capsys):
    model = ["--embedding-model", str(minilm_dir)]
    one, three = tables
    assert main(["memory", "build", "--from", str(one), "--memory-path", str(tmp_path / "m1"), *model]) == 0
    assert "5 triples, 6 entities, 5 relations" in capsys.readouterr().out  # 7 rows, 2 repeated
    assert main(["memory", "build", "--from", str(three), "--memory-path", str(tmp_path / "m3"), *model]) == 0
    capsys.readouterr()
    first = stored(tmp_path / "m1")
    assert first == stored(tmp_path / "m3")  # same triples under the same ids
    distinct = list(dict.fromkeys((h, r, t) for _, _, h, r, t in FACTS))
    assert [t[1:] for t in sorted(first)] == distinct  # ids follow first appearance in text order

    rc = main(["memory", "query", "--memory-path", str(tmp_path / "m1"), *model, "Carla Fenwick>>place of birth>>"])
    assert rc == 0
    assert "Carla Fenwick>>place of birth>>Dunmore" in capsys.readouterr().out

    # loading again adds nothing: each exact triple is stored once
    assert main(["memory", "build", "--from", str(one), "--memory-path", str(tmp_path / "m1"), *model]) == 0
    assert "(0 added" in capsys.readouterr().out
    assert stored(tmp_path / "m1") == first


def test_from_and_inputs_are_exclusive_one_line_errors(tables, tmp_path, minilm_dir, capsys):
    model = ["--embedding-model", str(minilm_dir)]
    one, _ = tables
    for argv in (
        ["memory", "build", "--from", str(one), str(one), "--memory-path", str(tmp_path / "m")],
        ["memory", "build", "--memory-path", str(tmp_path / "m")],
        ["memory", "build", "--from", str(tmp_path / "missing"), "--memory-path", str(tmp_path / "m")],
    ):
        assert main([*argv, *model]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "m").exists()
