"""Beam transforms that wrap the example builders: memory-write examples and memory-read (Algorithm 1).

The read examples follow DESIGN.md "Memory-read examples at scale": no worker holds all triples.
1. `PlanReads` runs Algorithm 1 up to the queries for each document and emits, keyed by query, a request
   for every query whose result matters;
2. the exact-match memory is the input's gold triples under every mention-name combination, keyed by
   `(known name, relation, asked side)`; a `CoGroupByKey` answers each request with the sorted distinct
   names (capped at Q_thr + 1: a longer result is over-broad whatever its length);
3. the answers are regrouped by document and `finish_reads` emits the examples.
"""

from __future__ import annotations

import random

import apache_beam as beam

from annotators.read_examples import finish_reads, is_skipped, plan_reads
from annotators.relation_labels import property_labels
from annotators.write_examples import build_write_examples
from memory.base import RESULT_LIMIT
from memory.exact import HEAD, TAIL, query_key
from pipeline.counting import COUNTS, DEAD, CountingDoFn
from schemas.api import Query


class BuildWriteExamplesFn(CountingDoFn):
    def __init__(self, seed: int = 42):
        self.seed = seed

    def process(self, doc):
        rng = None
        if doc.write_rng_state is not None:
            rng = random.Random()
            rng.setstate(doc.write_rng_state)
        try:
            examples = build_write_examples(doc, property_labels(), rng=rng, seed=self.seed)
        except Exception as e:  # noqa: BLE001 - one bad document must not stop the run
            yield self.reject(doc.doc_id, doc.to_row(), "memory_write", f"{type(e).__name__}: {e}")
            return
        self.count("memory_write.examples", len(examples))
        self.count("memory_write.triples", sum(len(ex.triples) for ex in examples))
        self.count("memory_write.empty_examples", sum(not ex.triples for ex in examples))
        for ex in examples:
            yield ex.to_row()


class BuildWriteExamples(beam.PTransform):
    """Documents → memory_write rows (+ dead letters, counts)."""

    def __init__(self, seed: int = 42):
        super().__init__()
        self.seed = seed

    def expand(self, docs):
        out = docs | "Build" >> beam.ParDo(BuildWriteExamplesFn(self.seed)).with_outputs(COUNTS, DEAD, main="rows")
        return out.rows, out[DEAD], out[COUNTS]


class PlanReadsFn(CountingDoFn):
    """Document → (doc_id, plan); tagged `requests`: (query key, doc_id) for each needed query."""

    def process(self, doc):
        try:
            plan = plan_reads(doc, property_labels())
        except Exception as e:  # noqa: BLE001
            yield self.reject(doc.doc_id, doc.to_row(), "memory_read", f"{type(e).__name__}: {e}")
            return
        self.count("memory_read.target_groups", len(plan.groups))
        needed = plan.needed
        self.count("memory_read.queries_needed", len(needed))
        for q in needed:
            yield beam.pvalue.TaggedOutput("requests", (query_key(q), doc.doc_id))
        yield (doc.doc_id, plan)


def gold_triple_answers(doc):
    """(key, answer name) for every gold triple under every mention-name combination, never-asked keys left out."""
    labels = property_labels()
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
    return sorted(out)


def answer_requests(key, grouped):
    docs = sorted(set(grouped["requests"]))
    if not docs:
        return
    names = sorted(set(grouped["answers"]))[:RESULT_LIMIT]
    for doc_id in docs:
        yield (doc_id, (key, names))


def _query_of(key) -> Query:
    name, relation, side = key
    return Query(name, relation, None) if side == TAIL else Query(None, relation, name)


class FinishReadsFn(CountingDoFn):
    def process(self, element):
        doc_id, grouped = element
        for plan in grouped["plan"]:
            results = {_query_of(key): names for key, names in grouped["results"]}
            try:
                examples = finish_reads(plan, results)
            except Exception as e:  # noqa: BLE001
                yield self.reject(doc_id, plan.doc.to_row(), "memory_read", f"{type(e).__name__}: {e}")
                continue
            self.count("memory_read.examples", len(examples))
            self.count("memory_read.documents_without_reads", not examples)
            for ex in examples:
                yield ex.to_row()


class BuildReadExamples(beam.PTransform):
    """Documents → memory_read rows (+ dead letters, counts), with the exact-match memory as a join."""

    def expand(self, docs):
        planned = docs | "Plan" >> beam.ParDo(PlanReadsFn()).with_outputs(COUNTS, DEAD, "requests", main="plans")
        answers = docs | "GoldTriples" >> beam.FlatMap(gold_triple_answers)
        results = (
            {"requests": planned.requests, "answers": answers}
            | "JoinMemory" >> beam.CoGroupByKey()
            | "Answer" >> beam.FlatMapTuple(answer_requests)
        )
        finished = (
            {"plan": planned.plans, "results": results}
            | "RegroupByDocument" >> beam.CoGroupByKey()
            | "Finish" >> beam.ParDo(FinishReadsFn()).with_outputs(COUNTS, DEAD, main="rows")
        )
        dead = (planned[DEAD], finished[DEAD]) | "DeadLetters" >> beam.Flatten()
        counts = (planned[COUNTS], finished[COUNTS]) | "Counts" >> beam.Flatten()
        return finished.rows, dead, counts
