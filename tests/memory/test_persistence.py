"""A stored memory survives reopening and SIGKILL: batches are all or nothing, indexes catch up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from memllm.memory.embedding_memory import ENTITY_INDEX, RELATION_INDEX, EmbeddingMemory
from memllm.memory.errors import MemoryUsageError
from memllm.memory.presets import Thresholds, get_preset
from memllm.memory.store import TripleStore
from memllm.schemas.api import Query

from tests.memory.conftest import ROOT, TABLE, CountingEmbedder, TableEmbedder
from tests.support.embedders import HashingEmbedder

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
FUZZY = Thresholds(0.8, 0.8, 0.8, prioritize_exact=False)


def start_writer(code: str) -> subprocess.Popen:
    """A Python subprocess (the repository on its path) that prints progress lines on stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )


def wait_for(proc: subprocess.Popen, marker: str) -> None:
    for line in proc.stdout:
        if line.strip() == marker:
            return
    raise AssertionError(f"writer ended before printing {marker!r} (rc={proc.wait()})")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_reopen_keeps_tables_and_indexes(tmp_path):
    path = tmp_path / "mem"
    with EmbeddingMemory(path, TableEmbedder(TABLE)) as m:
        m.add_triples([("Barack Obama", "place of birth", "Honolulu"), ("Obama", "spouse", "Michelle Obama")])
    assert {p.name for p in path.iterdir()} >= {"memory.sqlite", ENTITY_INDEX, RELATION_INDEX}
    embedder = TableEmbedder(TABLE)
    with EmbeddingMemory(path, embedder, thresholds=Thresholds(0.95, 0.95, 0.95), create=False) as m:
        assert m.stats()["indexed_entities"] == 4 and len(m) == 2
        assert m.query_names([Query("Obama", "place of birth", None)]) == [["Honolulu"]]
    assert embedder.calls == [[embedder.calls[0][0]]]  # only the fingerprint probe: nothing re-embedded


def test_another_embedder_is_refused(tmp_path, table_embedder):
    EmbeddingMemory(tmp_path / "mem", table_embedder).close()
    with pytest.raises(MemoryUsageError, match="built with 8-d embeddings .table.; the embedder hashing-trigrams"):
        EmbeddingMemory(tmp_path / "mem", HashingEmbedder())
    with pytest.raises(MemoryUsageError, match="built with the embedder table, not other"):
        EmbeddingMemory(tmp_path / "mem", TableEmbedder(TABLE, name="other", other_axis=0))
    with pytest.raises(MemoryUsageError, match="no memory directory"):
        EmbeddingMemory(tmp_path / "missing", table_embedder, create=False)


def test_an_index_newer_than_its_table_is_refused(tmp_path, table_embedder):
    with EmbeddingMemory(tmp_path / "big", table_embedder) as m:
        m.add_triples([("Obama", "spouse", "Michelle Obama"), ("Barack Obama", "spouse", "Michelle Obama")])
    with EmbeddingMemory(tmp_path / "small", table_embedder) as m:
        m.add_triples([("Obama", "spouse", "Michelle Obama")])
    os.replace(tmp_path / "big" / ENTITY_INDEX, tmp_path / "small" / ENTITY_INDEX)
    with pytest.raises(MemoryUsageError, match="newer than its table"):
        EmbeddingMemory(tmp_path / "small", table_embedder)


def test_sigkill_inside_a_batch_leaves_none_of_it(tmp_path):
    path = tmp_path / "mem"
    proc = start_writer(f"""
        import time
        from tests.support.embedders import HashingEmbedder
        from memllm.memory.embedding_memory import EmbeddingMemory

        class Slow(HashingEmbedder):
            def embed(self, texts):
                if len(texts) > 1000:  # the second batch: its rows are inserted, the transaction is open
                    print("in-transaction", flush=True)
                    time.sleep(60)
                return super().embed(texts)

        m = EmbeddingMemory({str(path)!r}, Slow())
        m.add_triples([(f"person {{i}}", "child", f"kid {{i}}") for i in range(100)])
        m.flush()
        m.add_triples([(f"author {{i}}", "notable work", f"book {{i}}") for i in range(5000)])
        print("committed", flush=True)
    """)
    wait_for(proc, "in-transaction")
    kill(proc)
    counting = CountingEmbedder(HashingEmbedder())
    with EmbeddingMemory(path, counting, thresholds=FUZZY, create=False) as m:
        assert m.store.counts() == {"entities": 200, "relation_types": 1, "triples": 100}
        assert m.stats()["indexed_entities"] == 200
        assert len(counting.calls) == 1  # the probe only: the saved index was complete
        exact = m.query_many(["person 7>>child>>", "author 7>>notable work>>"], get_preset("exact"))
        assert [[h.tail for h in hits] for hits in exact] == [["kid 7"], []]
        m.add_triples([("author 7", "notable work", "book 7")])  # the rolled-back ids are free again
        assert m.store.entity_ids(["author 7"]) == {"author 7": 201}


def test_sigkill_between_batches_keeps_whole_batches(tmp_path):
    path = tmp_path / "m.sqlite"
    proc = start_writer(f"""
        from memllm.memory.store import TripleStore
        s = TripleStore({str(path)!r})
        for b in range(100000):
            s.add_triples([(f"e{{b}}", "r", f"t{{b}}.{{i}}") for i in range(500)])
            if b == 3:
                print("going", flush=True)
    """)
    wait_for(proc, "going")
    kill(proc)
    with TripleStore(path) as s:
        n = len(s)
        assert n >= 2000 and n % 500 == 0
        batches = n // 500
        assert {(h, t) for _, h, _, t in s.triples()} == {
            (f"e{b}", f"t{b}.{i}") for b in range(batches) for i in range(500)
        }


def test_rows_committed_after_the_last_index_save_are_indexed_on_reopen(tmp_path):
    path = tmp_path / "mem"
    proc = start_writer(f"""
        import time
        from tests.support.embedders import HashingEmbedder
        from memllm.memory.embedding_memory import EmbeddingMemory
        m = EmbeddingMemory({str(path)!r}, HashingEmbedder())
        m.add_triples([("Barack Obama", "place of birth", "Honolulu")])
        m.flush()
        m.add_triples([("Angela Merkel", "place of birth", "Hamburg"),
                       ("Olaf Scholz", "born in", "Osnabrück")])
        print("committed", flush=True)  # the index files do not have these rows yet
        time.sleep(60)
    """)
    wait_for(proc, "committed")
    kill(proc)
    counting = CountingEmbedder(HashingEmbedder())
    with EmbeddingMemory(path, counting, thresholds=FUZZY, create=False) as m:
        assert m.stats()["indexed_entities"] == 6 and m.stats()["indexed_relations"] == 2
        # embedded again: exactly the 4 new entities and the new relation, after the probe
        assert sorted(counting.calls[1]) == ["Angela Merkel", "Hamburg", "Olaf Scholz", "Osnabrück"]
        assert counting.calls[2] == ["born in"]
        # the fuzzy path reaches them: "Angela Merkell" is one trigram-bucket pattern away
        assert m.query_names([Query("Angela Merkell", "place of birth", None)]) == [["Hamburg"]]
    with TripleStore(path / "memory.sqlite") as s:
        assert len(s) == 3
