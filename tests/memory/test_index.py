"""The vector index: labels, exact small searches, the adaptive radius search, persistence, bad shapes."""

from __future__ import annotations

import numpy as np
import pytest
from memllm.memory.embedding import CachedEmbedder, fingerprint, same_embedder
from memllm.memory.errors import MemoryUsageError
from memllm.memory.index import EXACT_BELOW, VectorIndex

from tests.support.embedders import HashingEmbedder


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def planted():
    """6,000 random 32-d unit vectors (labels 1..6000) and 50 queries, each a slight perturbation of the
    vectors 10q+1..10q+4: random pairs in 32 dimensions have |cosine| ~0.18, the planted ones 0.98+."""
    rng = np.random.default_rng(0)
    x = unit(rng.standard_normal((6000, 32)))
    base = unit(rng.standard_normal((50, 32)))
    for q in range(50):
        for j in range(1, 5):
            x[10 * q + j - 1] = unit(base[q] + 0.05 * rng.standard_normal(32))
    return x, unit(base + 0.02 * rng.standard_normal((50, 32)))


@pytest.fixture(scope="module")
def big_index(planted) -> VectorIndex:
    index = VectorIndex(32)
    index.add(np.arange(1, 6001), planted[0])
    return index


def test_radius_search_finds_every_planted_neighbour(planted, big_index):
    x, queries = planted
    index = big_index
    assert len(index) == 6000 > EXACT_BELOW and index.max_id == 6000
    truth = 1.0 - queries @ x.T
    for radius in (0.05, 0.3):
        labels, dist = index.search(queries, 300, radius=radius)
        for q in range(50):
            expected = set((np.nonzero(truth[q] < radius)[0] + 1).tolist())
            found = {int(i) for i, d in zip(labels[q], dist[q]) if i > 0 and d < radius}
            assert found == expected
    # planted neighbours are labels 10q+1..10q+4 (ground truth built by hand above)
    labels, dist = index.search(queries[:1], 4, radius=0.1)
    assert sorted(labels[0].tolist()) == [1, 2, 3, 4] and (dist[0] < 0.1).all()


def test_small_index_is_exact_and_pads_missing(planted):
    x, queries = planted
    index = VectorIndex(32)
    index.add([7, 3, 9], x[:3])
    labels, dist = index.search(queries[:1], 300)
    assert labels.shape == (1, 3) and sorted(labels[0].tolist()) == [3, 7, 9]
    np.testing.assert_allclose(np.sort(dist[0]), np.sort(1 - x[:3] @ queries[0]), atol=1e-5)
    np.testing.assert_allclose(index.get([3]), x[1:2], atol=1e-7)


def test_save_and_load(tmp_path, planted, big_index):
    x, queries = planted
    index = big_index
    index.save(tmp_path / "e.index")
    assert not (tmp_path / "e.index.tmp").exists()
    back = VectorIndex.load(tmp_path / "e.index", 32)
    assert (len(back), back.max_id) == (6000, 6000)
    np.testing.assert_array_equal(back.search(queries, 10)[0], index.search(queries, 10)[0])
    with pytest.raises(MemoryUsageError, match="holds 32-d vectors, the embedder gives 384-d"):
        VectorIndex.load(tmp_path / "e.index", 384)
    (tmp_path / "bad.index").write_bytes(b"garbage" * 10)
    with pytest.raises(MemoryUsageError, match="cannot read vector index"):
        VectorIndex.load(tmp_path / "bad.index", 32)


def test_wrong_shapes_are_clear_errors():
    index = VectorIndex(8)
    with pytest.raises(MemoryUsageError, match=r"shape \(n, 8\), got \(2, 5\)"):
        index.add([1, 2], np.ones((2, 5), np.float32))
    with pytest.raises(MemoryUsageError, match="2 ids for 1 vectors"):
        index.add([1, 2], unit(np.ones((1, 8))))
    with pytest.raises(MemoryUsageError, match=r"got \(8,\)"):
        index.search(np.ones(8, np.float32), 3)


def test_hashing_embedder_and_cache():
    h = HashingEmbedder()
    v = h.embed(["Barack Obama", "Barack Obama", "Obama", "zebra crossing", ""])
    assert v.shape == (5, 384) and np.allclose(np.linalg.norm(v, axis=1), 1)
    assert v[0] @ v[1] == pytest.approx(1.0) and v[0] @ v[2] > 0.5 > v[0] @ v[3]
    cached = CachedEmbedder(h, max_entries=2)
    cached.embed(["a", "b", "a"])
    cached.embed(["b", "c"])
    assert cached.calls == 3  # a, b, then only c
    cached.embed(["a"])  # "a" was evicted (least recently used) when "c" came in
    assert cached.calls == 4
    assert same_embedder(fingerprint(h), fingerprint(HashingEmbedder()))
    assert not same_embedder(fingerprint(h), fingerprint(HashingEmbedder(256)))


def test_cache_rejects_wrong_embedder_output():
    class Broken:
        name, dim = "broken", 4

        def embed(self, texts):
            return np.ones((len(texts), 3), np.float32)

    with pytest.raises(MemoryUsageError, match=r"returned shape \(1, 3\), expected \(1, 4\)"):
        CachedEmbedder(Broken()).embed(["x"])
