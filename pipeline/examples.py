"""Beam transforms that wrap the example builders: memory-write examples and memory-read (Algorithm 1).

Every step takes a `DocumentBatch` (one input chunk) and calls the annotators once per document; a document
that fails becomes a dead letter with the reason, the rest of its batch goes on.

The read examples follow docs/design.md "Memory-read examples at scale": no worker holds all triples.
1. The exact-match memory is the input's gold triples under every mention-name combination, keyed by
   `(known name, relation, asked side)`. Every query a document can ask is one of its *own* keys (a
   source is a mention of the other argument of one of its relations), so a batch sends, per memory
   bucket, its own keys with the names it knows for them: the same element is its contribution to the
   memory and its request.
2. A `GroupByKey` on the bucket merges what all batches know of each key (sorted distinct names, capped at
   Q_thr + 1: a longer result is over-broad whatever its length, so the cap changes no example) and hands
   every batch the results for its keys.
3. The results are regrouped with the batch (`CoGroupByKey` on the batch key); `plan_reads` and
   `finish_reads` run per document with them.
A memory bucket holds 1/`buckets` of the memory: the number grows with the input (`memory_buckets`), so a
bucket stays small while a batch still sends each bucket many keys at once (see pipeline.batches).
"""

from __future__ import annotations

import functools
import hashlib
import math
import pickle
import random
import zlib
from collections import defaultdict
from collections.abc import Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from memllm.annotators.evidence import assign_evidence
from memllm.annotators.read_examples import ReadPlan, finish_reads, is_skipped, plan_reads
from memllm.annotators.relation_labels import property_labels
from memllm.annotators.write_examples import (
    build_write_examples,
    consume_shuffle,
    skip_document,
    unwritten_relations,
)
from memllm.memory.base import RESULT_LIMIT
from memllm.memory.exact import HEAD, TAIL
from memllm.pipeline.batches import DocumentBatch, Rows, runs_without_gc
from memllm.pipeline.counting import COUNTS, DEAD, CountingDoFn
from memllm.schemas.api import Query
from memllm.schemas.document import Document

BYTES_PER_MEMORY_BUCKET = 4 << 20  # of DocRED-format input: ~40k (key, answer) pairs
MIN_MEMORY_BUCKETS, MAX_MEMORY_BUCKETS = 8, 1 << 16


def memory_buckets(input_bytes: int) -> int:
    """How many buckets the exact memory is split into for an input of this size (a power of two)."""
    wanted = max(1, math.ceil(input_bytes / BYTES_PER_MEMORY_BUCKET))
    return min(MAX_MEMORY_BUCKETS, max(MIN_MEMORY_BUCKETS, 1 << (wanted - 1).bit_length()))


def memory_key(name: str, relation: str, side: str) -> str:
    """The join key of a query: `side`, relation and known name in one string (cheaper to hash, pickle
    and compare than a tuple; unambiguous, as neither a side nor a relation label holds the separator)."""
    return memory_key_prefix(relation, side) + name


def memory_key_prefix(relation: str, side: str) -> str:
    """What every key of (`relation`, `side`) starts with: the name follows."""
    return f"{side}\x1f{relation}\x1f"


def memory_bucket(key: str, buckets: int) -> int:
    """A stable bucket of a query key (crc32: the same on every worker, run and Python)."""
    return zlib.crc32(key.encode("utf-8")) % buckets


class AssignEvidenceFn(CountingDoFn):
    """DocumentBatch → the same batch with evidence for evidence-less relations (`annotators.evidence`)."""

    def __init__(self, mode: str):
        self.mode = mode

    def process(self, batch: DocumentBatch):
        docs = []
        for doc in batch.docs:
            doc, assigned = assign_evidence(doc, self.mode)
            self.count(f"evidence.{self.mode}.assigned", assigned)
            docs.append(doc)
        # The reference's random stream belongs to the reference's evidence: with other evidence the
        # memory-write builder draws differently, so each example seeds its own choice from the
        # document's content instead (`annotators.write_examples.content_digest`).
        yield DocumentBatch(batch.key, docs)


class BuildWriteExamplesFn(CountingDoFn):
    """DocumentBatch → one list of memory_write rows (+ dead letters, counts)."""

    def __init__(self, seed: int = 42):
        self.seed = seed

    def process(self, batch: DocumentBatch):
        labels, rows, rng = property_labels(), Rows(), None
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
                yield self.reject_document(doc, "memory_write", e)
                continue
            self.count("memory_write.examples", len(examples))
            self.count("memory_write.triples", sum(len(ex.triples) for ex in examples))
            self.count("memory_write.empty_examples", sum(not ex.triples for ex in examples))
            duplicate, no_pair = unwritten_relations(doc, examples)
            self.count("memory_write.relations_not_written_duplicate_triple", duplicate)
            self.count("memory_write.relations_not_written_no_mention_pair", no_pair)
            rows.extend(ex.to_row() for ex in examples)
        if rows:
            yield rows


class BuildWriteExamples(beam.PTransform):
    """DocumentBatches → lists of memory_write rows (+ dead letters, counts)."""

    def __init__(self, seed: int = 42):
        super().__init__()
        self.seed = seed

    def expand(self, batches):
        build = beam.ParDo(BuildWriteExamplesFn(self.seed)).with_output_types(Rows)
        out = batches | "Build" >> build.with_outputs(COUNTS, DEAD, main="rows")
        return out.rows, out[DEAD], out[COUNTS]


@functools.cache
def _asked_sides(label: str) -> tuple[bool, bool]:
    """Whether (x, label, ?) and (?, label, x) are ever asked (not in SKIP_QUERIES)."""
    return not is_skipped(Query("x", label, None)), not is_skipped(Query(None, label, "x"))


@runs_without_gc
def known_answers(batch: DocumentBatch, buckets: int, spill: SpillStore):
    """(bucket, spilled packed (batch key, [(key, sorted names ≤ RESULT_LIMIT), ...])) for every bucket the
    batch has keys in (`_pack`: bytes, see there why; `SpillStore`: a file range, see there why).

    A key (`memory_key`) is a known name, relation and asked side, for every gold triple under every
    mention-name combination; keys that are never asked (SKIP_QUERIES) are left out."""
    labels, known = property_labels(), {}
    for doc in batch.docs:
        # Names in mention order, not sets: the keys then come in the same order on every run and process
        # (string hashes differ), so the spilled bytes do too without sorting a batch's ~16,000 keys.
        names = [list(dict.fromkeys([m.name for m in e.mentions])) for e in doc.entities]
        for rel in doc.relations:
            label = labels.get(rel.r)
            if label is None:  # a document no validation caught: `FinishReadsFn` rejects it with the reason
                continue
            asks_tail, asks_head = _asked_sides(label)
            if asks_tail:
                _add_known(known, memory_key_prefix(label, TAIL), names[rel.h], names[rel.t])
            if asks_head:
                _add_known(known, memory_key_prefix(label, HEAD), names[rel.t], names[rel.h])
    per_bucket = defaultdict(list)
    for key, names_known in known.items():
        # The RESULT_LIMIT smallest names overall are among each batch's RESULT_LIMIT smallest.
        answer = sorted(names_known)[:RESULT_LIMIT] if len(names_known) > 1 else list(names_known)
        per_bucket[memory_bucket(key, buckets)].append((key, answer))
    bucket_ids = sorted(per_bucket)
    refs = spill.put(f"known:{batch.key}", [_pack((batch.key, per_bucket[b])) for b in bucket_ids])
    yield from zip(bucket_ids, refs)


def _add_known(known: dict[str, set[str]], prefix: str, known_names: list[str], answers: list[str]) -> None:
    for name in known_names:
        key = prefix + name
        got = known.get(key)
        if got is None:
            known[key] = set(answers)
        else:
            got.update(answers)


@runs_without_gc
def answer_batches(bucket: int, parts, spill: SpillStore):
    """One bucket of the memory, from every batch that has keys in it → (batch key, spilled packed results for
    its keys)."""
    parts = sorted(_unpack(spill.get(p)) for p in parts)  # by batch key: the same file on every run
    merged = defaultdict(set)
    for _, answers in parts:
        for key, names in answers:
            merged[key].update(names)
    results = {key: sorted(names)[:RESULT_LIMIT] for key, names in merged.items()}
    refs = spill.put(f"answers:{bucket}", [_pack([(key, results[key]) for key, _ in answers]) for _, answers in parts])
    yield from zip((batch_key for batch_key, _ in parts), refs)


def _pack(value) -> bytes:
    """The read path's batches, memory keys and answers are pickled once, one pickle per batch or (batch,
    bucket), and spilled (SpillStore): Beam's generic coder walks every tuple and string to encode, decode,
    and sample sizes (and the local runner does it again in its one launching process to group), where
    bytes are one copy (the two memory stages: 4.6 s → 1.9 s on 10,000 documents, 2 workers)."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(data: bytes):
    return pickle.loads(data)


class SpillStore:
    """Where the read path's intermediate bytes go (the batches for the regroup, memory keys, answers).

    With a directory, each `put` writes its blobs into one file there and returns `(path, offset, length)`
    references, and only those cross the shuffles, as the rows do (pipeline.sinks): the local runners hold
    every shuffled byte in the launching process, and the memory join's bytes grow with the input (2.2 GB of
    peak at 100,000 documents before; flat now). Without one (tests), the bytes themselves are the references.
    Files are named by what they hold, so a retried step rewrites the same file."""

    def __init__(self, directory: str | None):
        self.directory = directory

    def put(self, name: str, blobs: list[bytes]) -> list:
        if self.directory is None:
            return blobs
        path = FileSystems.join(self.directory, hashlib.sha1(name.encode("utf-8")).hexdigest() + ".bin")
        refs, offset = [], 0
        with FileSystems.create(path) as f:
            for blob in blobs:
                f.write(blob)
                refs.append((path, offset, len(blob)))
                offset += len(blob)
        return refs

    @staticmethod
    def get(ref) -> bytes:
        if isinstance(ref, bytes):
            return ref
        path, offset, length = ref
        with FileSystems.open(path, compression_type="uncompressed") as f:
            f.seek(offset)
            return f.read(length)


def _key_of(query: Query) -> str:
    if query.is_tail_query:
        return memory_key(query.subject, query.relation, TAIL)
    return memory_key(query.object, query.relation, HEAD)


class ReadExamplesFn(CountingDoFn):
    """Plans and finishes Algorithm 1 per document, for either memory; a document that fails is a dead letter."""

    def plan_documents(self, docs: Iterable[Document]) -> tuple[list[tuple[Document, ReadPlan]], list]:
        labels, plans, dead = property_labels(), [], []
        for doc in docs:
            try:
                plans.append((doc, plan_reads(doc, labels)))
            except Exception as e:  # noqa: BLE001 - one bad document must not stop the run
                dead.append(self.reject_document(doc, "memory_read", e))
        return plans, dead

    def finish_documents(self, plans: list[tuple[Document, ReadPlan]], results) -> tuple[Rows, list]:
        rows, dead = Rows(), []
        for doc, plan in plans:
            try:
                examples = finish_reads(plan, results)
            except Exception as e:  # noqa: BLE001
                dead.append(self.reject_document(doc, "memory_read", e))
                continue
            self.count("memory_read.target_groups", len(plan.groups))
            self.count("memory_read.queries_needed", len(plan.needed))
            self.count("memory_read.examples", len(examples))
            self.count("memory_read.documents_without_reads", not examples)
            rows.extend(ex.to_row() for ex in examples)
        return rows, dead


class FinishReadsFn(ReadExamplesFn):
    """(batch key, {batch, results}) → one list of memory_read rows (+ dead letters, counts)."""

    def process(self, element):
        _, grouped = element
        answers = {key: names for part in grouped["results"] for key, names in _unpack(SpillStore.get(part))}
        plans, dead = self.plan_documents(doc for ref in grouped["batch"] for doc in _load_batch(ref).docs)
        # Only the queries the plans ask (~40% of the keys); one the memory lacks fails its document there.
        needed = {q: _key_of(q) for _, plan in plans for q in plan.needed}
        rows, failed = self.finish_documents(plans, {q: answers[k] for q, k in needed.items() if k in answers})
        yield from dead + failed
        if rows:
            yield rows


class KeyBatchFn(beam.DoFn):
    """DocumentBatch → (batch key, the batch pickled, spilled: see SpillStore).

    Pickled once, here: as an object, Beam would pickle it again at every step of the regroup that samples
    element sizes (Document pickles compactly, see Document.__reduce__)."""

    def __init__(self, spill: SpillStore):
        self.spill = spill

    @runs_without_gc
    def process(self, batch: DocumentBatch):
        yield batch.key, self.spill.put(f"batch:{batch.key}", [_pack(batch)])[0]


def _load_batch(ref) -> DocumentBatch:
    return _unpack(SpillStore.get(ref))


class BuildReadExamples(beam.PTransform):
    """DocumentBatches → lists of memory_read rows (+ dead letters, counts), the exact-match memory joined in."""

    def __init__(self, buckets: int = MIN_MEMORY_BUCKETS, spill_dir: str | None = None):
        super().__init__()
        self.buckets = buckets
        self.spill_dir = spill_dir

    def expand(self, batches):
        spill = SpillStore(self.spill_dir)
        results = (
            batches
            | "KnownAnswers" >> beam.FlatMap(known_answers, self.buckets, spill)
            | "GroupByMemoryBucket" >> beam.GroupByKey()
            | "Answer" >> beam.FlatMap(lambda kv: answer_batches(*kv, spill))
        )
        finished = (
            {"batch": batches | "KeyByBatch" >> beam.ParDo(KeyBatchFn(spill)), "results": results}
            | "RegroupByBatch" >> beam.CoGroupByKey()
            | "Finish" >> beam.ParDo(FinishReadsFn()).with_output_types(Rows).with_outputs(COUNTS, DEAD, main="rows")
        )
        return finished.rows, finished[DEAD], finished[COUNTS]
