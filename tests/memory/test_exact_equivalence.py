"""With thresholds that admit only exact matches, the embedding memory answers exactly like `ExactMemory`.

Built from the gold triples of the Re-DocRED dev split under every head-mention × tail-mention name
combination (the exact-match memory of the golden data; without `../shared`, of the shipped subset:
tests/data/README.md). Expectations come from `ExactMemory`, with two
rules derived by hand from the semantics:
- queries with more than Q_thr + 1 answers: both sides return Q_thr + 1 names (the reference's SQL LIMIT
  picks rows in index order, `ExactMemory` the alphabetically first), ours a subset of all answers;
- with τ just below 1 instead of the `exact` preset, strings the model cannot tell apart (same token ids,
  e.g. case variants under an uncased model) are the same entity to the search, so the expected answer is
  the union over those twins.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import pytest
from memllm.memory.base import RESULT_LIMIT
from memllm.memory.embedding_memory import EmbeddingMemory
from memllm.memory.exact import ExactMemory
from memllm.memory.presets import Thresholds, get_preset
from memllm.memory.sources import docred_triples, iter_json_documents
from memllm.schemas.api import Query

from tests.memory.conftest import stable_sample
from tests.support.embedders import HashingEmbedder

EPS = 1e-6


def dev_triples(path, docs: int | None = None) -> list[tuple[str, str, str]]:
    if docs is None:
        return list(docred_triples(path))
    import json
    import tempfile

    head = [d for _, d in zip(range(docs), iter_json_documents(path))]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(head, f)
    return list(docred_triples(f.name))


def sample_queries(triples, n: int) -> list[Query]:
    """Tail and head queries of sampled triples, plus misses: an unknown entity and an unused relation."""
    picked = stable_sample(sorted(set(triples)), n)
    queries = [Query(h, r, None) for h, r, _ in picked] + [Query(None, r, t) for _, r, t in picked]
    queries += [Query(h + " (unknown)", r, None) for h, r, _ in picked[:20]]
    queries += [Query(h, "no such relation", None) for h, _, _ in picked[:20]]
    relations = sorted({r for _, r, _ in triples})
    queries += [Query(t, relations[i % len(relations)], None) for i, (_, _, t) in enumerate(picked[:50])]
    return queries


def expected_names(exact: ExactMemory, q: Query, twins: dict[str, list[str]]) -> list[str]:
    names: set[str] = set()
    for known in twins.get(q.known, [q.known]):
        other = Query(known, q.relation, None) if q.is_tail_query else Query(None, q.relation, known)
        names.update(exact.query_names([other], limit=sys.maxsize)[0])
    return sorted(names)


def check(memory: EmbeddingMemory, triples, queries, twins=None) -> int:
    exact = ExactMemory(triples)
    got = memory.query_names(queries)
    broad = 0
    for q, names in zip(queries, got):
        want = expected_names(exact, q, twins or {})
        if len(want) <= RESULT_LIMIT:
            assert names == want, q
        else:  # over-broad: Q_thr + 1 of them, a different choice than ExactMemory's
            broad += 1
            assert len(names) == RESULT_LIMIT and set(names) <= set(want), q
    return broad


@pytest.fixture(scope="module")
def hashed_dev(dev):
    triples = [t for path in dev.inputs for t in dev_triples(path)]
    memory = EmbeddingMemory(None, HashingEmbedder())
    memory.add_triples(triples)
    return memory, triples, sample_queries(triples, 1500)


@pytest.fixture
def graph_search(hashed_dev, monkeypatch):
    """The vector index module, searching the entity index by its HNSW graph: the whole split's ~8,000
    entities are past the brute-force size; the shipped subset's ~1,000 are not, so that size is lowered."""
    from memllm.memory import index

    entities = hashed_dev[0].store.counts()["entities"]
    if entities <= index.EXACT_BELOW:
        monkeypatch.setattr(index, "EXACT_BELOW", entities // 4)
    return index


@pytest.mark.parametrize("priority", [True, False])
def test_tau_just_below_one_equals_exact_memory(hashed_dev, graph_search, priority):
    memory, triples, queries = hashed_dev
    memory.thresholds = Thresholds(1 - EPS, 1 - EPS, 1 - EPS, prioritize_exact=priority)
    assert memory.store.counts()["entities"] > graph_search.EXACT_BELOW  # the HNSW path, not brute force
    assert check(memory, triples, queries) > 0  # some over-broad queries were compared too


def test_exact_preset_equals_exact_memory(hashed_dev, graph_search):
    memory, triples, queries = hashed_dev
    assert memory.store.counts()["entities"] > graph_search.EXACT_BELOW
    memory.thresholds = get_preset("exact")
    check(memory, triples, queries)
    # every sampled query, and an API-string form of the same queries, gives the same answers
    assert memory.query_names([q.render() for q in queries[:100]]) == memory.query_names(queries[:100])


def test_minilm_with_exact_priority_equals_exact_memory(dev, minilm):
    triples = dev_triples(dev.documents, docs=40)  # the same 40 documents in the whole split and the subset
    memory = EmbeddingMemory(None, minilm, thresholds=Thresholds(1 - EPS, 1 - EPS, 1 - EPS, True))
    memory.add_triples(triples)
    names = sorted({x for h, _, t in triples for x in (h, t)})
    by_tokens = defaultdict(list)  # identical token ids ⇒ identical embeddings ⇒ twins for the search
    for name, ids in zip(names, minilm._tok(names, truncation=True, max_length=128)["input_ids"]):
        by_tokens[tuple(ids)].append(name)
    twins = {n: group for group in by_tokens.values() if len(group) > 1 for n in group}
    queries = sample_queries(triples, 200)
    check(memory, triples, queries, twins)
    memory.thresholds = get_preset("exact")  # τ = 1: no twins at all
    check(memory, triples, queries)
