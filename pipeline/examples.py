"""Beam transforms that wrap the example builders: memory-write examples and memory-read (Algorithm 1).

Every step takes a `DocumentBatch` (one input chunk) and calls the annotators once per document; a document
that fails becomes a dead letter with the reason, the rest of its batch goes on.

The read examples follow DESIGN.md "Memory-read examples at scale": no worker holds all triples.
1. `PlanReads` runs Algorithm 1 up to the queries for each document of a batch, keeps the batch's plans as
   one element and asks, per memory bucket, for the queries whose result matters;
2. the exact-match memory is the input's gold triples under every mention-name combination, keyed by
   `(known name, relation, asked side)`; each batch sends, per memory bucket, the names it knows for its
   keys. A `CoGroupByKey` on the bucket answers every request with the sorted distinct names, capped at
   Q_thr + 1 (a longer result is over-broad whatever its length, so the cap changes no example);
3. the answers are regrouped with the plans by batch and `finish_reads` emits the examples.
A memory bucket holds 1/`buckets` of the memory: the number grows with the input (`memory_buckets`), so a
bucket stays small while a batch still asks each bucket for many keys at once (pipeline.batches).
"""

from __future__ import annotations

import math
import pickle
import random
import zlib
from collections import defaultdict

import apache_beam as beam

from annotators.read_examples import finish_reads, is_skipped, plan_reads
from annotators.relation_labels import property_labels
from annotators.write_examples import build_write_examples, consume_shuffle, skip_document
from memory.base import RESULT_LIMIT
from memory.exact import HEAD, TAIL, query_key
from pipeline.batches import DocumentBatch
from pipeline.counting import COUNTS, DEAD, CountingDoFn
from schemas.api import Query
from schemas.document import Document

BYTES_PER_MEMORY_BUCKET = 4 << 20  # of DocRED-format input: ~40k (key, answer) pairs
MIN_MEMORY_BUCKETS, MAX_MEMORY_BUCKETS = 8, 1 << 16


def memory_buckets(input_bytes: int) -> int:
    """How many buckets the exact memory is split into for an input of this size (a power of two)."""
    wanted = max(1, math.ceil(input_bytes / BYTES_PER_MEMORY_BUCKET))
    return min(MAX_MEMORY_BUCKETS, max(MIN_MEMORY_BUCKETS, 1 << (wanted - 1).bit_length()))


def memory_bucket(key: tuple[str, str, str], buckets: int) -> int:
    """A stable bucket of a query key (crc32: the same on every worker, run and Python)."""
    return zlib.crc32("\x1f".join(key).encode("utf-8")) % buckets


def _reject_document(fn: CountingDoFn, doc: Document, step: str, e: Exception):
    return fn.reject(doc.doc_id, doc.to_row(), step, f"{type(e).__name__}: {e}")


class BuildWriteExamplesFn(CountingDoFn):
    """DocumentBatch → one list of memory_write rows (+ dead letters, counts)."""

    def __init__(self, seed: int = 42):
        self.seed = seed

    def process(self, batch: DocumentBatch):
        labels, rows, rng = property_labels(), [], None
        if batch.write_rng_state is not None:
            rng = random.Random()
            rng.setstate(batch.write_rng_state)
        for i, doc in enumerate(batch.docs):
            if rng is not None:
                for n in batch.write_rng_skips[i]:
                    consume_shuffle(rng, n)
                state = rng.getstate()
            try:
                examples = build_write_examples(doc, labels, rng=rng, seed=self.seed)
            except Exception as e:  # noqa: BLE001 - one bad document must not stop the run
                if rng is not None:  # the next document's stream must not depend on where this one failed
                    rng.setstate(state)
                    skip_document(doc, rng)
                yield _reject_document(self, doc, "memory_write", e)
                continue
            self.count("memory_write.examples", len(examples))
            self.count("memory_write.triples", sum(len(ex.triples) for ex in examples))
            self.count("memory_write.empty_examples", sum(not ex.triples for ex in examples))
            rows.extend(ex.to_row() for ex in examples)
        if rows:
            yield rows


class BuildWriteExamples(beam.PTransform):
    """DocumentBatches → lists of memory_write rows (+ dead letters, counts)."""

    def __init__(self, seed: int = 42):
        super().__init__()
        self.seed = seed

    def expand(self, batches):
        out = batches | "Build" >> beam.ParDo(BuildWriteExamplesFn(self.seed)).with_outputs(COUNTS, DEAD, main="rows")
        return out.rows, out[DEAD], out[COUNTS]


class PlanReadsFn(CountingDoFn):
    """DocumentBatch → (batch key, pickled plans); tagged `requests`: (bucket, (batch key, needed keys))."""

    def __init__(self, buckets: int):
        self.buckets = buckets

    def process(self, batch: DocumentBatch):
        labels, plans, requests = property_labels(), [], defaultdict(set)
        for doc in batch.docs:
            try:
                plan = plan_reads(doc, labels)
            except Exception as e:  # noqa: BLE001
                yield _reject_document(self, doc, "memory_read", e)
                continue
            needed = plan.needed
            self.count("memory_read.target_groups", len(plan.groups))
            self.count("memory_read.queries_needed", len(needed))
            for q in needed:
                key = query_key(q)
                requests[memory_bucket(key, self.buckets)].add(key)
            plans.append(plan)
        for bucket, keys in sorted(requests.items()):
            yield beam.pvalue.TaggedOutput("requests", (bucket, (batch.key, sorted(keys))))
        # Pickled once here (compactly, see ReadPlan.__reduce__): as a list of objects Beam would pickle
        # every plan again at each step of the regroup that samples element sizes.
        yield (batch.key, pickle.dumps(plans, protocol=pickle.HIGHEST_PROTOCOL))


def document_answers(doc: Document, labels) -> set[tuple[tuple[str, str, str], str]]:
    """(key, answer name) for every gold triple of a document under every mention-name combination.

    Keys that are never asked (SKIP_QUERIES) are left out."""
    out = set()
    for rel in doc.relations:
        label = labels[rel.r]
        heads = {m.name for m in doc.entities[rel.h].mentions}
        tails = {m.name for m in doc.entities[rel.t].mentions}
        asks_tail = not is_skipped(Query("x", label, None))
        asks_head = not is_skipped(Query(None, label, "x"))
        for h in heads:
            for t in tails:
                if asks_tail:
                    out.add(((h, label, TAIL), t))
                if asks_head:
                    out.add(((t, label, HEAD), h))
    return out


def gold_triple_answers(batch: DocumentBatch, buckets: int):
    """(bucket, [(key, sorted names ≤ RESULT_LIMIT), ...]) for every bucket this batch knows answers in."""
    labels, known = property_labels(), defaultdict(set)
    for doc in batch.docs:
        for key, name in document_answers(doc, labels):
            known[key].add(name)
    per_bucket = defaultdict(list)
    for key in sorted(known):
        # The RESULT_LIMIT smallest names overall are among each batch's RESULT_LIMIT smallest.
        per_bucket[memory_bucket(key, buckets)].append((key, sorted(known[key])[:RESULT_LIMIT]))
    yield from sorted(per_bucket.items())


def answer_requests(bucket: int, grouped):
    """One bucket of the memory and the batches asking it → (batch key, [(key, result names), ...])."""
    requests = list(grouped["requests"])
    asked = {key for _, keys in requests for key in keys}
    known = defaultdict(set)
    for answers in grouped["answers"]:
        for key, names in answers:
            if key in asked:
                known[key].update(names)
    results = {key: sorted(known[key])[:RESULT_LIMIT] for key in asked}
    for batch_key, keys in requests:
        yield (batch_key, [(key, results[key]) for key in keys])


def _query_of(key) -> Query:
    name, relation, side = key
    return Query(name, relation, None) if side == TAIL else Query(None, relation, name)


class FinishReadsFn(CountingDoFn):
    """(batch key, {plans, results}) → one list of memory_read rows (+ dead letters, counts)."""

    def process(self, element):
        _, grouped = element
        results = {_query_of(key): names for part in grouped["results"] for key, names in part}
        rows = []
        for plans in grouped["plans"]:
            for plan in pickle.loads(plans):
                try:
                    examples = finish_reads(plan, results)
                except Exception as e:  # noqa: BLE001
                    doc_id = plan.ref.doc_id
                    yield self.reject(doc_id, {"doc_id": doc_id}, "memory_read", f"{type(e).__name__}: {e}")
                    continue
                self.count("memory_read.examples", len(examples))
                self.count("memory_read.documents_without_reads", not examples)
                rows.extend(ex.to_row() for ex in examples)
        if rows:
            yield rows


class BuildReadExamples(beam.PTransform):
    """DocumentBatches → lists of memory_read rows (+ dead letters, counts), the exact-match memory joined in."""

    def __init__(self, buckets: int = MIN_MEMORY_BUCKETS):
        super().__init__()
        self.buckets = buckets

    def expand(self, batches):
        planned = batches | "Plan" >> beam.ParDo(PlanReadsFn(self.buckets)).with_outputs(
            COUNTS, DEAD, "requests", main="plans"
        )
        answers = batches | "GoldTriples" >> beam.FlatMap(gold_triple_answers, self.buckets)
        results = (
            {"requests": planned.requests, "answers": answers}
            | "JoinMemory" >> beam.CoGroupByKey()
            | "Answer" >> beam.FlatMapTuple(answer_requests)
        )
        finished = (
            {"plans": planned.plans, "results": results}
            | "RegroupByBatch" >> beam.CoGroupByKey()
            | "Finish" >> beam.ParDo(FinishReadsFn()).with_outputs(COUNTS, DEAD, main="rows")
        )
        dead = (planned[DEAD], finished[DEAD]) | "DeadLetters" >> beam.Flatten()
        counts = (planned[COUNTS], finished[COUNTS]) | "Counts" >> beam.Flatten()
        return finished.rows, dead, counts
