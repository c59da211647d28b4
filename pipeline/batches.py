"""Why the pipeline's elements are batches, and the one batch type that carries documents.

A portable Beam runner pays for every element that crosses a shuffle (encode, hand over, decode, group):
measured here, ~20 µs an element on the local FnApiRunner, whatever its size. One document used to become
~125 such elements (a memory request per query, a memory answer per triple name, a row per example), so
the runner, not the annotators, set the pace (73 documents/s against 700 for the annotators alone). So:
- documents travel as `DocumentBatch`es, one per input chunk (≤ 400 documents), and every step maps a
  batch to a batch: a chunk's examples are one element (a list of rows), its plans one element;
- the exact-memory join is keyed by a *bucket* of query keys (`pipeline.examples.memory_bucket`), and a
  chunk sends one element per bucket it asks about or knows answers for;
- the shard writer moves Arrow tables, split per shard, not rows.
Per-document logic stays in `annotators/`: a step loops over its batch and calls it per document, with a
dead letter per failing document, so a bad document still costs only itself.

Steps run with the cyclic garbage collector paused (`CountingDoFn` for its whole bundle, `runs_without_gc`
for plain functions): see `pause_gc` why.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import pickle
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
from memllm.schemas.document import Document

_gc_lock = threading.Lock()
_gc_pauses = 0  # open pauses in this process (bundles run concurrently on some workers)
_gc_was_enabled = True


def pause_gc() -> None:
    """Pause the cyclic garbage collector until the matching `resume_gc` (pauses nest and may overlap).

    Why: a batch is hundreds of thousands of small objects (tokens, mentions, rows) that all live until
    the step is done. Every few hundred allocations CPython starts a collection, and the older
    generations' collections walk every live object again: that was ~30% of the pipeline's time (49 s →
    35 s on 10,000 documents, 2 workers). Nothing the steps build holds a reference cycle, so reference
    counting frees it all the same, and the collector runs again when no step is running.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1


def resume_gc() -> None:
    global _gc_pauses
    with _gc_lock:
        _gc_pauses = max(0, _gc_pauses - 1)
        if _gc_pauses == 0 and _gc_was_enabled:
            gc.enable()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    pause_gc()
    try:
        yield
    finally:
        resume_gc()


def runs_without_gc(step):
    """Decorate a step (a function or generator, e.g. `DoFn.process`) to run under `gc_paused`."""
    if inspect.isgeneratorfunction(step):

        @functools.wraps(step)
        def generator(*args, **kwargs):
            with gc_paused():
                yield from step(*args, **kwargs)

        return generator

    @functools.wraps(step)
    def function(*args, **kwargs):
        with gc_paused():
            return step(*args, **kwargs)

    return function


@dataclass
class DocumentBatch:
    """The valid documents of one input chunk, in file order.

    `key` names the chunk (`<file stem>@<index of its first record>`): results for the chunk are regrouped
    by it. `write_rng_state` is the reference's random stream at the chunk's first record, or None for
    input with no file order (see `annotators.write_examples`); building the documents' write examples in
    order advances it document by document, and `write_rng_skips[i]` lists the shuffle sizes of the
    invalid records just before `docs[i]` (usually none), which the reference drew for too.
    """

    key: str
    docs: list[Document]
    write_rng_state: tuple | None = None
    write_rng_skips: list[list[int]] | None = None


class DocumentBatchCoder(beam.coders.Coder):
    """Pickles a batch (compactly: see `Document.__reduce__`) and estimates its size without encoding it.

    Beam samples the size of the elements every step outputs, by encoding them unless the coder says
    otherwise; with few, large elements it samples nearly all of them, which cost as much as reading them.
    """

    BYTES_PER_TOKEN = 15  # measured on Re-DocRED dev: ~3 KB of pickle per 200-token document

    def encode(self, batch: DocumentBatch) -> bytes:
        return pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, data: bytes) -> DocumentBatch:
        return pickle.loads(data)

    def estimate_size(self, batch: DocumentBatch) -> int:
        return self.BYTES_PER_TOKEN * sum(len(s) for d in batch.docs for s in d.sents)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return DocumentBatch


beam.coders.registry.register_coder(DocumentBatch, DocumentBatchCoder)


class Rows(list):
    """One batch's output rows (dicts) on their way to `pipeline.sinks.WriteShards`, with a cheap size.

    A plain list would get Beam's generic coder, which samples an element's size by encoding it: ~27 ms
    for one chunk's memory-write rows (6 MB of text), for about half of the lists a step outputs. The rows
    are consumed in the same fused stage (the sink spills them to a file), so they are hardly ever encoded
    for real."""


class RowsCoder(beam.coders.Coder):
    BYTES_PER_ROW = 4000  # measured on Re-DocRED dev: memory-write 3.8 KB, memory-read rows similar

    def encode(self, rows: Rows) -> bytes:
        return pickle.dumps(list(rows), protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, data: bytes) -> Rows:
        return Rows(pickle.loads(data))

    def estimate_size(self, rows: Rows) -> int:
        return self.BYTES_PER_ROW * len(rows)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return Rows


beam.coders.registry.register_coder(Rows, RowsCoder)
