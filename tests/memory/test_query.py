"""Query semantics of docs/method.md §2.2 on hand-set vectors (conftest.TABLE), so every score is worked out.

Distances: Obama–Barack Obama 0.04, Michelle Obama–Barack Obama 0.20, Michelle Obama–Obama 0.232,
born in–place of birth 0.10; all other named pairs 1.0.
"""

from __future__ import annotations

import pytest
from memllm.memory.base import RESULT_LIMIT
from memllm.memory.embedding_memory import EmbeddingMemory
from memllm.memory.errors import MemoryUsageError
from memllm.memory.exact import ExactMemory
from memllm.memory.presets import PRESETS, Thresholds, get_preset
from memllm.schemas.api import Query

from tests.memory.conftest import CountingEmbedder
from tests.support.embedders import HashingEmbedder

POB = "place of birth"


def close(tau_e: float, tau_t: float, tau_r: float, prioritize_exact: bool = False) -> Thresholds:
    return Thresholds(tau_e, tau_t, tau_r, prioritize_exact)


@pytest.fixture
def mem(table_embedder) -> EmbeddingMemory:
    m = EmbeddingMemory(None, table_embedder)
    m.add_triples([("Barack Obama", POB, "Honolulu"), ("Barack Obama", "spouse", "Michelle Obama")])
    return m


def test_fuzzy_entity_within_tau_e(mem):
    # Obama → Barack Obama at distance 0.04; relation identical (0): score (0.04 + 0) / 2 = 0.02
    (hit,) = mem.query("Obama>>place of birth>>", close(0.95, 0.95, 0.95))
    assert (hit.head, hit.relation, hit.tail) == ("Barack Obama", POB, "Honolulu")
    assert hit.score == pytest.approx(0.02, abs=1e-5)
    assert mem.query("Obama>>place of birth>>", close(0.97, 0.95, 0.95)) == []  # 0.04 is not < 0.03


def test_pair_threshold_is_on_the_mean_distance(mem):
    # Obama (0.04) + born in (0.10): mean 0.07, passes τr = 0.9 (< 0.1), not τr = 0.95 (< 0.05)
    (hit,) = mem.query("Obama>>born in>>", close(0.95, 0.85, 0.90))
    assert hit.tail == "Honolulu" and hit.score == pytest.approx(0.07, abs=1e-5)
    assert mem.query("Obama>>born in>>", close(0.95, 0.85, 0.95)) == []
    assert mem.query("Obama>>born in>>", close(0.95, 0.91, 0.50)) == []  # born in fails τt itself


def test_head_query_matches_the_object(mem):
    # (?, spouse, Michelle Obama): objects near "Michelle Obama" within 0.25 are Michelle Obama itself
    names = mem.query_names([Query(None, "spouse", "Michelle Obama"), Query(None, "spouse", "Barack Obama")])
    assert names == [["Barack Obama"], []]
    hits = mem.query(">>spouse>>Barack Obama", close(0.75, 0.9, 0.85))  # Michelle Obama at 0.20 < 0.25
    assert [(h.head, round(h.score, 4)) for h in hits] == [("Barack Obama", 0.1)]


def test_exact_match_priority(table_embedder):
    m = EmbeddingMemory(None, table_embedder)
    m.add_triples([("Barack Obama", POB, "Honolulu"), ("Obama", POB, "Hilo")])
    both = m.query("Obama>>place of birth>>", close(0.95, 0.95, 0.95, prioritize_exact=False))
    assert [(h.tail, round(h.score, 4)) for h in both] == [("Hilo", 0.0), ("Honolulu", 0.02)]
    only = m.query("Obama>>place of birth>>", close(0.95, 0.95, 0.95, prioritize_exact=True))
    assert [h.tail for h in only] == ["Hilo"]
    # with no exact row the fuzzy ones are kept
    fuzzy = m.query("Barack Obama>>born in>>", close(0.95, 0.85, 0.90, prioritize_exact=True))
    assert [(h.tail, round(h.score, 4)) for h in fuzzy] == [("Honolulu", 0.05), ("Hilo", 0.07)]


def test_per_pair_limit_is_q_thr_plus_one(table_embedder):
    m = EmbeddingMemory(None, table_embedder)
    m.add_triples([("Barack Obama", "child", f"c{i:02d}") for i in range(40)])
    m.add_triples([("Obama", "child", f"d{i:02d}") for i in range(40)])
    assert RESULT_LIMIT == 31
    exact = m.query("Barack Obama>>child>>", get_preset("exact"))
    assert len(exact) == 31 and all(h.tail.startswith("c") for h in exact)
    # two entity candidates → two pairs of 31 rows; the names are cut to `limit` after sorting
    fuzzy = m.query("Obama>>child>>", close(0.95, 0.95, 0.95))
    assert len(fuzzy) == 62
    m.thresholds = close(0.95, 0.95, 0.95)
    (names,) = m.query_names([Query("Obama", "child", None)])
    assert len(names) == 31 and all(n.startswith("c") for n in names)  # every c.. sorts before d..
    assert m.query_names([Query("Obama", "child", None)], limit=5) == [sorted(names)[:5]]


def test_excluded_ids_are_dropped_after_the_limit(table_embedder):
    m = EmbeddingMemory(None, table_embedder)
    m.add_triples([("Barack Obama", "child", f"c{i:02d}") for i in range(40)])
    th = get_preset("exact")
    hits = m.query("Barack Obama>>child>>", th)
    returned = {h.id for h in hits}
    not_returned = {m.store.triple_id("Barack Obama", "child", f"c{i:02d}") for i in range(40)} - returned
    assert len(not_returned) == 9
    # as in the reference: the SQL LIMIT comes first, so excluding a returned row leaves 30
    assert len(m.query("Barack Obama>>child>>", th, exclude_ids=[hits[0].id])) == 30
    assert len(m.query("Barack Obama>>child>>", th, exclude_ids=not_returned)) == 31
    small = EmbeddingMemory(None, table_embedder)
    small.add_triples([("Obama", POB, "Hilo"), ("Obama", POB, "Honolulu")])
    hilo = small.store.triple_id("Obama", POB, "Hilo")
    assert [h.tail for h in small.query("Obama>>place of birth>>", th, exclude_ids={hilo})] == ["Honolulu"]


def test_overwrite_mode_answers_with_the_new_fact(table_embedder):
    m = EmbeddingMemory(None, table_embedder, thresholds="exact")
    m.add_triples([("Barack Obama", POB, "Honolulu")])
    r = m.add_triples([("Barack Obama", POB, "Chicago")], mode="overwrite")
    assert len(r.deleted_ids) == 1
    assert m.query_names([Query("Barack Obama", POB, None)]) == [["Chicago"]]
    m.add_triples([("Barack Obama", POB, "Honolulu")])  # plain insert adds beside it
    assert m.query_names([Query("Barack Obama", POB, None)]) == [["Chicago", "Honolulu"]]


def test_exact_preset_equals_exact_memory_on_near_duplicates(table_embedder):
    triples = [
        ("Barack Obama", POB, "Honolulu"),
        ("Obama", POB, "Hilo"),
        ("Obama", "spouse", "Michelle Obama"),
    ]
    m = EmbeddingMemory(None, table_embedder, thresholds="exact")
    m.add_triples(triples)
    queries = [Query(e, r, None) for e in ("Obama", "Barack Obama", "Michelle Obama") for r in (POB, "spouse")]
    queries += [Query(None, r, e) for e in ("Hilo", "Michelle Obama", "Honolulu") for r in (POB, "born in")]
    assert m.query_names(queries) == ExactMemory(triples).query_names(queries)


def test_malformed_queries(mem):
    queries = ["Obama>>place of birth>>", "no separators", Query(" ", "spouse", None), ">>r>>o>>", "x>>y"]
    assert mem.query_names(queries) == [["Honolulu"], [], [], [], []]
    assert mem.malformed_queries == 4
    for bad in ("Obama>>place of birth", "a>>r>>b", ">>r>>", ""):
        with pytest.raises(MemoryUsageError, match="malformed query"):
            mem.query(bad)


def test_presets_are_the_reference_values():
    dist = {
        k: (round(p.dist_e, 6), round(p.dist_t, 6), round(p.dist_r, 6), p.prioritize_exact) for k, p in PRESETS.items()
    }
    assert dist == {
        "data_generation": (0.10, 0.10, 0.10, False),
        "perplexity_eval": (0.15, 0.15, 0.10, True),
        "knowledge_editing": (0.15, 0.80, 0.50, True),
        "exact": (0.0, 0.0, 0.0, True),
    }
    assert (PRESETS["data_generation"].k_e, PRESETS["data_generation"].k_t) == (300, 25)
    with pytest.raises(MemoryUsageError, match="unknown preset"):
        get_preset("fast")
    with pytest.raises(MemoryUsageError, match="tau_e"):
        Thresholds(1.5, 0.9, 0.9)


def test_a_batch_embeds_its_new_strings_in_one_call():
    counting = CountingEmbedder(HashingEmbedder())
    m = EmbeddingMemory(None, counting, thresholds=close(0.8, 0.8, 0.8))
    m.add_triples([("Barack Obama", POB, "Honolulu"), ("Angela Merkel", POB, "Hamburg")])
    counting.calls.clear()
    queries = [Query(k, r, None) for k in ("Barack Obama", "Barack Obam", "Angela Merkell") for r in (POB, "born")]
    names = m.query_names(queries * 10 + ["not a query"])
    # stored strings are read back from the index; the new ones go to the model together, once
    assert [sorted(c) for c in counting.calls] == [["Angela Merkell", "Barack Obam", "born"]]
    assert names[:2] == [["Honolulu"], []] and names[4] == ["Hamburg"] and names[-1] == []
    counting.calls.clear()
    assert m.query_names(queries) == names[:6] and counting.calls == []  # cached


def test_exact_memory_answers_sorted_limited_and_sees_later_adds():
    m = ExactMemory([("Obama", POB, "Hilo"), ("Obama", POB, "Honolulu"), ("Obama", POB, "Chicago")])
    q = Query("Obama", POB, None)
    assert m.query_names([q, q], limit=2) == [["Chicago", "Hilo"], ["Chicago", "Hilo"]]
    m.query_names([q])[0].append("mutated by a caller")  # results are the caller's own lists
    m.add([("Obama", POB, "Accra"), ("Michelle Obama", "spouse", "Obama")])  # after the first queries
    assert m.query_names([q, Query(None, "spouse", "Obama"), Query("Hilo", POB, None)]) == [
        ["Accra", "Chicago", "Hilo", "Honolulu"],
        ["Michelle Obama"],
        [],
    ]
