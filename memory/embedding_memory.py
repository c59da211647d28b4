"""`EmbeddingMemory`: the store, two vector indexes and an embedder, with the reference's query semantics.

A query `(s, r, ?)` / `(?, r, o)` is answered as in docs/method.md §2.2 (`query_relationship`):
entity candidates are the stored entities among the k_e = min(300, n) nearest to the known entity with
distance < 1 − τe; relation candidates likewise with k_t = min(25, n) and 1 − τt; every (entity, relation)
pair whose mean distance is < 1 − τr contributes up to Q_thr + 1 = 31 triples (SQL LIMIT, no ORDER BY);
excluded triple ids are dropped after that limit, as in the reference; with exact-match priority, rows
scoring < 0.001 win outright; hits are sorted by score (then id, so ties are deterministic).
Two additions that change no result the reference would compute with an exact kNN: the identical string,
found by SQL, is always a candidate at distance 0 (an approximate graph can miss it); and τ = 1 means
"identical string only" (see `memory.presets`).

Batches: `query_names` / `query_many` embed all distinct query strings in one call (strings already
stored are read back from the index instead of re-embedded) and search each index once for the batch.

Layout of a stored memory (a directory): `memory.sqlite` (tables + metadata naming the embedder),
`entities.index`, `relations.index`. The indexes are derived data: saved on `flush()`/`close()` (and
now and then while filling); on open, rows added after the last save (a crash) are embedded again.

Thresholds: a preset name or `Thresholds` per memory (`thresholds=`), overridable per call.
One object per thread (its SQLite connection is not shared); one writing process per directory.
What it doesn't do: Beam, RPC serving, the exact-match join of the pipeline (`memory.exact`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from memllm.memory.base import RESULT_LIMIT
from memllm.memory.embedding import CachedEmbedder, Embedder, fingerprint, same_embedder
from memllm.memory.errors import MemoryUsageError
from memllm.memory.index import VectorIndex
from memllm.memory.presets import DEFAULT_PRESET, EXACT_SCORE, Thresholds, get_preset
from memllm.memory.store import AddResult, NewRows, TripleStore, WriteMode
from memllm.schemas.api import APIParseError, Query, parse_query

log = logging.getLogger(__name__)

DB_FILE, ENTITY_INDEX, RELATION_INDEX = "memory.sqlite", "entities.index", "relations.index"
_META_KEY = "embedder"
# unsaved vectors that trigger an automatic index save while filling: at least this many, and at least a
# tenth of the index (rewriting a 25M-vector index every 200k insertions would dominate the fill time)
_AUTOSAVE_MIN = 200_000
_TINY = 1e-9  # the smallest distance a *different* string can have: only the identical string scores 0


@dataclass(frozen=True, slots=True)
class Hit:
    """One stored triple answering a query, with the reference's score (mean cosine distance)."""

    score: float
    id: int
    head: str
    relation: str
    tail: str


Candidates = list[tuple[int, float]]  # (row id, distance)


def _passes(dist: float, tau: float) -> bool:
    # the reference's strict `dist < 1 - tau`; tau = 1 admits only the identical string (distance exactly 0)
    return dist < 1.0 - tau if tau < 1.0 else dist == 0.0


class EmbeddingMemory:
    """An explicit memory with fuzzy (embedding) lookup; implements `memory.base.Memory`."""

    def __init__(
        self,
        path: str | Path | None,
        embedder: Embedder,
        thresholds: Thresholds | str = DEFAULT_PRESET,
        create: bool = True,
    ) -> None:
        self.thresholds = get_preset(thresholds) if isinstance(thresholds, str) else thresholds
        self.embedder = embedder
        self._queries = CachedEmbedder(embedder)  # query strings; stored strings are embedded exactly once
        self.malformed_queries = 0
        self.dir = Path(path) if path is not None else None
        if self.dir is not None:
            if not self.dir.is_dir():
                if not create or self.dir.exists():
                    raise MemoryUsageError(f"no memory directory at {self.dir}")
                self.dir.mkdir(parents=True)
        self.store = TripleStore(self.dir / DB_FILE if self.dir else None)
        self._unsaved = 0
        try:
            self._check_embedder()
            self._entities = self._open_index(ENTITY_INDEX)
            self._relations = self._open_index(RELATION_INDEX)
            self._catch_up()
        except BaseException:
            self.store.close()
            raise

    # --- opening ---------------------------------------------------------------------------------------

    def _check_embedder(self) -> None:
        mine = {
            "name": self.embedder.name,
            "dim": self.embedder.dim,
            "fingerprint": fingerprint(self.embedder),
        }
        stored = self.store.get_meta(_META_KEY)
        if stored is None:
            self.store.set_meta(_META_KEY, mine)
            return
        where = f"the memory at {self.dir}" if self.dir else "this memory"
        if stored["dim"] != mine["dim"]:
            raise MemoryUsageError(
                f"{where} was built with {stored['dim']}-d embeddings ({stored['name']}); "
                f"the embedder {mine['name']} gives {mine['dim']}-d vectors"
            )
        if not same_embedder(stored["fingerprint"], mine["fingerprint"]):
            raise MemoryUsageError(
                f"{where} was built with the embedder {stored['name']}, not {mine['name']} "
                "(their embeddings of a probe string differ); open it with the model it was built with"
            )

    def _open_index(self, filename: str) -> VectorIndex:
        if self.dir is not None and (self.dir / filename).exists():
            return VectorIndex.load(self.dir / filename, self.embedder.dim)
        return VectorIndex(self.embedder.dim)

    def _catch_up(self) -> None:
        """Index the rows the saved indexes lack (added after the last save, e.g. before a crash)."""
        for table, index in (("entities", self._entities), ("relation_types", self._relations)):
            if index.max_id > self.store.max_id(table):
                raise MemoryUsageError(
                    f"the vector index of {table} in {self.dir} is newer than its table; "
                    f"delete {ENTITY_INDEX} and {RELATION_INDEX} there to rebuild them"
                )
            rows = self.store.rows_after(table, index.max_id)
            if rows:
                log.info("indexing %d %s missing from the saved index", len(rows), table)
                self._index_rows(index, rows)

    def _index_rows(self, index: VectorIndex, rows: NewRows) -> None:
        if rows:
            index.add([i for i, _ in rows], self._embed([s for _, s in rows]))
            self._unsaved += len(rows)

    def _embed(self, strings: list[str]) -> np.ndarray:
        vectors = self.embedder.embed(strings)
        if vectors.shape != (len(strings), self.embedder.dim):
            raise MemoryUsageError(
                f"embedder {self.embedder.name} returned shape {vectors.shape} for {len(strings)} strings, "
                f"expected ({len(strings)}, {self.embedder.dim})"
            )
        return vectors

    # --- writes ----------------------------------------------------------------------------------------

    def add_triples(self, triples: Iterable[Sequence[str]], mode: WriteMode = "insert") -> AddResult:
        """Store a batch of (head, relation, tail): all or nothing (see `TripleStore.add_triples`)."""
        staged: list[tuple[VectorIndex, list[int], np.ndarray]] = []

        def embed_new(new_entities: NewRows, new_relations: NewRows) -> None:
            # inside the transaction: if the model fails, no row is stored without its vector
            for index, rows in ((self._entities, new_entities), (self._relations, new_relations)):
                if rows:
                    staged.append((index, [i for i, _ in rows], self._embed([s for _, s in rows])))

        result = self.store.add_triples(triples, mode, before_commit=embed_new)
        for index, ids, vectors in staged:
            index.add(ids, vectors)
            self._unsaved += len(ids)
        if self.dir is not None and self._unsaved >= max(_AUTOSAVE_MIN, len(self._entities) // 10):
            self.flush()
        return result

    def delete_triples(self, ids: Iterable[int]) -> int:
        return self.store.delete_triples(ids)

    def delete(self, triples: Iterable[Sequence[str]]) -> int:
        return self.store.delete(triples)

    def flush(self) -> None:
        """Save the vector indexes (the tables are committed batch by batch already)."""
        if self.dir is not None and self._unsaved:
            self._entities.save(self.dir / ENTITY_INDEX)
            self._relations.save(self.dir / RELATION_INDEX)
        self._unsaved = 0

    def close(self) -> None:
        self.flush()
        self.store.close()

    def __enter__(self) -> EmbeddingMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- queries ---------------------------------------------------------------------------------------

    def query(
        self, query: Query | str, thresholds: Thresholds | str | None = None, exclude_ids: Iterable[int] = ()
    ) -> list[Hit]:
        """The scored triples answering one query (a `Query` or the API syntax `s>>r>>` / `>>r>>o`)."""
        q = self._parse(query)
        if q is None:
            raise MemoryUsageError(f"malformed query {query!r}: expected 's>>r>>' or '>>r>>o'")
        return self.query_many([q], thresholds, exclude_ids)[0]

    def query_names(self, queries: Sequence[Query | str], limit: int = RESULT_LIMIT) -> list[list[str]]:
        """Per query, the sorted distinct names of its unknown side (at most `limit`); [] if malformed."""
        parsed = self._parse_all(queries, strict=False)
        return [
            sorted({h.tail if q.is_tail_query else h.head for h in hits})[:limit] if q is not None else []
            for q, hits in zip(parsed, self._search(parsed, self.thresholds, set()))
        ]

    def query_many(
        self,
        queries: Sequence[Query | str],
        thresholds: Thresholds | str | None = None,
        exclude_ids: Iterable[int] = (),
        strict: bool = True,
    ) -> list[list[Hit]]:
        """`query` for a batch: one embedding call and one index search per side for all of them.

        With `strict=False` a malformed query gets [] (and is counted in `malformed_queries`) instead of
        an error, so one bad query from a model never breaks a batch.
        """
        th = get_preset(thresholds) if isinstance(thresholds, str) else thresholds or self.thresholds
        return self._search(self._parse_all(queries, strict), th, set(exclude_ids))

    def _parse_all(self, queries: Sequence[Query | str], strict: bool) -> list[Query | None]:
        parsed = [self._parse(q) for q in queries]
        bad = [q for q, p in zip(queries, parsed) if p is None]
        if bad:
            if strict:
                raise MemoryUsageError(f"malformed query {bad[0]!r}: expected 's>>r>>' or '>>r>>o'")
            self.malformed_queries += len(bad)
            log.warning("%d malformed memory queries answered with []: first %r", len(bad), bad[0])
        return parsed

    def _search(self, parsed: list[Query | None], th: Thresholds, excluded: set[int]) -> list[list[Hit]]:
        if th.tau_e >= 1.0 and th.tau_t >= 1.0:
            return [self._exact(q, excluded) if q else [] for q in parsed]
        good = [q for q in parsed if q is not None]
        knowns = list(dict.fromkeys(q.known for q in good))
        relations = list(dict.fromkeys(q.relation for q in good))
        known_ids, relation_ids = self.store.entity_ids(knowns), self.store.relation_ids(relations)
        # one model call for all strings of the batch that need a vector and are not stored (a stored
        # string's vector is read back from its index)
        need = [s for s in knowns if s not in known_ids] if self._fuzzy(self._entities, th.tau_e) else []
        if self._fuzzy(self._relations, th.tau_t):
            need += [s for s in relations if s not in relation_ids]
        fresh = dict(zip(need, self._queries.embed(need))) if need else {}
        ents = self._candidates(self._entities, knowns, known_ids, fresh, th.tau_e, th.k_e)
        rels = self._candidates(self._relations, relations, relation_ids, fresh, th.tau_t, th.k_t)
        rows = [self._rows(q, ents[q.known], rels[q.relation], th, excluded) if q else [] for q in parsed]
        return self._resolve(parsed, rows)

    def _exact(self, q: Query, excluded: set[int]) -> list[Hit]:
        """Identical strings on both sides: the same rows as the general path, in one SQL statement."""
        rows = self.store.exact_rows(q.known, q.relation, q.is_tail_query, RESULT_LIMIT)
        hits = [
            Hit(0.0, tid, q.known, q.relation, other) if q.is_tail_query else Hit(0.0, tid, other, q.relation, q.known)
            for tid, other in rows
            if tid not in excluded  # after the LIMIT, as in the general path
        ]
        return sorted(hits, key=lambda h: h.id)

    @staticmethod
    def _fuzzy(index: VectorIndex, tau: float) -> bool:
        return tau < 1.0 and len(index) > 0  # τ = 1: identical strings only, no vector search

    def _parse(self, query: Query | str) -> Query | None:
        if isinstance(query, str):
            try:
                query = parse_query(query)
            except APIParseError:
                return None
        if not isinstance(query, Query) or not query.known.strip() or not query.relation.strip():
            return None
        return query

    def _candidates(
        self,
        index: VectorIndex,
        strings: list[str],
        stored: dict[str, int],
        fresh: dict[str, np.ndarray],
        tau: float,
        k: int,
    ) -> dict[str, Candidates]:
        """Per distinct string, the stored rows within the threshold: the identical string first, at 0."""
        out: dict[str, Candidates] = {s: [(stored[s], 0.0)] if s in stored else [] for s in strings}
        if not strings or not self._fuzzy(index, tau):
            return out
        vectors = np.empty((len(strings), index.dim), np.float32)
        known = [i for i, s in enumerate(strings) if s in stored]
        if known:
            vectors[known] = index.get([stored[strings[i]] for i in known])
        for i, s in enumerate(strings):
            if s not in stored:
                vectors[i] = fresh[s]
        labels, dists = index.search(vectors, k, radius=1.0 - tau)
        inside = (labels >= 0) & (dists < 1.0 - tau)  # numpy first: rows are mostly padding and far entries
        # a float distance of 0 must not pass for the identical string, which alone scores exactly 0
        dists = np.maximum(dists, _TINY)
        for row, col in zip(*np.nonzero(inside)):
            label = int(labels[row, col])
            if label != stored.get(strings[row]):
                out[strings[row]].append((label, float(dists[row, col])))
        return out

    def _rows(
        self, q: Query, ents: Candidates, rels: Candidates, th: Thresholds, excluded: set[int]
    ) -> list[tuple[float, int, int, int, int]]:
        """(score, triple id, known entity id, relation id, other entity id) per §2.2's double loop."""
        out = []
        for e, d_e in ents:
            for t, d_t in rels:
                score = (d_e + d_t) / 2
                if not _passes(score, th.tau_r):
                    continue
                for tid, other in self.store.rows_for_pair(e, t, q.is_tail_query, RESULT_LIMIT):
                    if tid not in excluded:  # after the LIMIT, as in the reference
                        out.append((score, tid, e, t, other))
        if th.prioritize_exact and out and min(r[0] for r in out) < EXACT_SCORE:
            out = [r for r in out if r[0] < EXACT_SCORE]
        out.sort(key=lambda r: (r[0], r[1]))
        return out

    def _resolve(self, parsed: list[Query | None], rows: list[list[tuple]]) -> list[list[Hit]]:
        ent_names = self.store.entity_names(x for rs in rows for r in rs for x in (r[2], r[4]))
        rel_names = self.store.relation_names(r[3] for rs in rows for r in rs)
        out = []
        for q, rs in zip(parsed, rows):
            hits = []
            for score, tid, known, rel, other in rs:
                head, tail = (known, other) if q.is_tail_query else (other, known)
                hits.append(Hit(score, tid, ent_names[head], rel_names[rel], ent_names[tail]))
            out.append(hits)
        return out

    # --- inspection ------------------------------------------------------------------------------------

    def stats(self) -> dict:
        meta = self.store.get_meta(_META_KEY)
        counts = self.store.counts()
        files = {}
        if self.dir is not None:
            files = {p.name: p.stat().st_size for p in sorted(self.dir.iterdir()) if p.is_file()}
        return {
            "triples": counts["triples"],
            "entities": counts["entities"],
            "relations": counts["relation_types"],
            "indexed_entities": len(self._entities),
            "indexed_relations": len(self._relations),
            "embedder": meta["name"],
            "dim": meta["dim"],
            "files": files,
        }

    def __len__(self) -> int:
        return len(self.store)
