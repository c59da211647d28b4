"""`VectorIndex`: approximate cosine kNN over the store's entity (or relation) vectors, labelled by row id.

The library is faiss (`IndexHNSWFlat`, inner product on L2-normalised vectors, inside an `IndexIDMap2` so
labels are the SQLite row ids). Chosen by measurement against hnswlib (the reference's library) and usearch
on 200,000 clustered 384-d vectors (families of near-duplicates, like aliases), the reference's HNSW
settings (M=20, ef_construction=200, ef_search=300), k=300, 500 queries, one thread, CPU time:
`python benchmarks/bench_memory.py --compare-indexes --vectors 200000` (quiet 2-core machine):

| library            | build/CPU-s | 1 query, CPU p50/p99 | batch q/s | recall@300 | d<0.15 | file    |
| faiss-cpu 1.15.1   | 583         | 1.86 / 2.26 ms       | 516       | 0.904      | 1.000  | 328 MiB |
| hnswlib 0.8.0      | 994         | 1.71 / 2.01 ms       | 558       | 0.872      | 1.000  | 327 MiB |
| usearch 2.26.6 f32 | 399         | 5.04 / 7.80 ms       | 239       | 0.873      | 1.000  | 327 MiB |
| usearch 2.26.6 f16 | 646         | 3.16 / 4.64 ms       | 342       | 0.872      | 1.000  | 181 MiB |
| usearch 2.26.6 i8  | 1,255       | 2.03 / 3.30 ms       | 510       | 0.848      | 1.000  | 108 MiB |
(build: vectors added per CPU-second; d<0.15: recall of the true neighbours at cosine distance < 0.15.)

Queries cost the same in faiss and hnswlib (within 8% here; equal at the small ef this module mostly
uses), and faiss has the best recall. hnswlib builds 1.7x faster per CPU-second, but at insertion the
encoder dominates (all-MiniLM-L6-v2 embeds ~330 strings/s on these cores, Contriever is 5x bigger), so the
build rate matters little; and hnswlib 0.8.0 (2023) has no wheel for Python 3.11 (it compiled from source
here, so would every worker), needs a preset capacity and resizing, has one global ef, and raises when a
search finds fewer than k. faiss ships wheels for every platform, takes search parameters per call, pads
missing neighbours, batches over all cores, and returns stored vectors (`reconstruct`), so a query on a
stored entity needs no model call. usearch's int8 index would be the choice if disk or RAM became the
limit (a third of the size; distances quantised, recall lower). The graph is approximate; the embedding
memory adds the identical string itself (found by SQL) as a candidate, so exact matches are never lost.

Search with a distance radius is adaptive: the reference keeps, of the 300 nearest, those under the
threshold, and most queries have a handful. A first pass fetches 16 (ef 32); only rows whose 16th
neighbour is still inside the radius are searched again with the full k and ef 300. On the benchmark's
synthetic names (20,000, hashed trigram vectors) the first pass found every neighbour within distance
0.10, 0.15 and 0.30 that exact search finds, in 205 µs of CPU instead of 1,403 µs for k=300, ef=300.
Up to 4,096 vectors the search is exact brute force instead (relations, small memories).

What this module doesn't do: embedding, the store, thresholds other than the radius.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from memllm.memory.errors import MemoryUsageError

M, EF_CONSTRUCTION, EF_SEARCH = 20, 200, 300  # the reference's hnswlib settings (docs/method.md §2.1)
FIRST_K, FIRST_EF = 16, 32  # the adaptive first pass (see the module docstring)
# up to this many vectors a search is exact brute force: as fast as the graph at that size, and immune to
# HNSW's blind spots (in a test, a graph over many identical vectors stranded the one other vector)
EXACT_BELOW = 4096
# fewer queries than this run on one thread: waking OpenMP's team costs more than a single search (on a
# busy 2-core machine one query took 12 ms with 2 threads, 0.6 ms with 1); batches use every core
PARALLEL_FROM = 64


def _faiss():
    import faiss  # imported lazily: `memory.exact` users need no vector library

    return faiss


@contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    faiss = _faiss()
    if n_queries >= PARALLEL_FROM:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndex:
    """Cosine kNN with int64 labels; vectors must be L2-normalised (the embedders guarantee it)."""

    def __init__(
        self, dim: int, m: int = M, ef_construction: int = EF_CONSTRUCTION, ef_search: int = EF_SEARCH
    ) -> None:
        faiss = _faiss()
        base = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = ef_construction
        base.hnsw.efSearch = ef_search
        self._wrap(faiss.IndexIDMap2(base), ef_search)

    def _wrap(self, index, ef_search: int) -> None:
        self._index, self.dim, self.ef_search = index, int(index.d), ef_search
        self._max_id = int(_faiss().vector_to_array(index.id_map).max(initial=0))
        self._labels: np.ndarray | None = None
        # the flat vectors under the graph, searched directly (exactly) while the index is small
        self._storage = _faiss().downcast_index(_faiss().downcast_index(index.index).storage)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def max_id(self) -> int:
        """The largest label stored (0 when empty): rows above it still need indexing."""
        return self._max_id

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise MemoryUsageError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        return vectors

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        vectors = self._check(vectors)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape != (len(vectors),):
            raise MemoryUsageError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids):
            self._index.add_with_ids(vectors, ids)
            self._max_id = max(self._max_id, int(ids.max()))
            self._labels = None

    def get(self, ids: list[int]) -> np.ndarray:
        """The stored vectors of these labels (all must exist)."""
        return self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def search(self, vectors: np.ndarray, k: int, radius: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(labels, cosine distances), each (n, k'), nearest first; label -1 pads missing neighbours.

        With `radius`, only neighbours at distance < radius are needed, and the search is adaptive (see
        the module docstring); the rows may then hold fewer than k real neighbours beyond the radius.
        """
        vectors = self._check(vectors)
        k = min(k, len(self))
        if k == 0 or len(vectors) == 0:
            return np.full((len(vectors), 0), -1, np.int64), np.zeros((len(vectors), 0), np.float32)
        with _threads_for(len(vectors)):
            return self._search_adaptive(vectors, k, radius)

    def _search_adaptive(self, vectors: np.ndarray, k: int, radius: float | None) -> tuple[np.ndarray, np.ndarray]:
        if len(self) <= EXACT_BELOW:
            return self._brute_force(vectors, k)
        if radius is None or k <= FIRST_K:
            return self._search(vectors, k, max(self.ef_search, k))
        labels, dist = self._search(vectors, FIRST_K, FIRST_EF)
        again = np.nonzero(dist[:, -1] < radius)[0]  # the last is inside: there may be more
        labels = np.concatenate([labels, np.full((len(labels), k - FIRST_K), -1, np.int64)], axis=1)
        dist = np.concatenate([dist, np.full((len(dist), k - FIRST_K), np.inf, np.float32)], axis=1)
        if len(again):
            labels[again], dist[again] = self._search(vectors[again], k, max(self.ef_search, k))
        return labels, dist

    def _brute_force(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._labels is None:  # position → label, refreshed after each add
            self._labels = _faiss().vector_to_array(self._index.id_map)
        sims, pos = self._storage.search(vectors, k)
        return self._labels[pos], (1.0 - sims).astype(np.float32)

    def _search(self, vectors: np.ndarray, k: int, ef: int) -> tuple[np.ndarray, np.ndarray]:
        params = _faiss().SearchParametersHNSW(efSearch=ef)
        sims, labels = self._index.search(vectors, k, params=params)
        # missing neighbours come back as label -1 with similarity -FLT_MAX: make their distance inf
        dist = np.where(labels >= 0, 1.0 - sims, np.inf).astype(np.float32)
        return labels, dist

    def save(self, path: str | Path) -> None:
        """Write atomically: a crash leaves the previous file or the new one, never half of one."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        _faiss().write_index(self._index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, dim: int, ef_search: int = EF_SEARCH) -> VectorIndex:
        try:
            index = _faiss().read_index(str(path))
        except RuntimeError as e:
            raise MemoryUsageError(f"cannot read vector index {path}: {str(e).splitlines()[-1]}") from None
        if index.d != dim:
            raise MemoryUsageError(f"vector index {path} holds {index.d}-d vectors, the embedder gives {dim}-d")
        self = cls.__new__(cls)
        self._wrap(index, ef_search)
        return self
