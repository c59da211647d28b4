"""Why the pipeline's elements are batches, and the one batch type that carries documents.

A portable Beam runner pays for every element that crosses a shuffle (encode, hand over, decode, group):
measured here, ~20 µs an element on the local FnApiRunner, whatever its size. One document used to become
~125 such elements (a memory request per query, a memory answer per triple name, a row per example), so
the runner, not the annotators, set the pace (73 documents/s against 700 for the annotators alone). So:
- documents travel as `DocumentBatch`es, one per input chunk (≤ 200 documents), and every step maps a
  batch to a batch: a chunk's examples are one element (a list of rows), its plans one element;
- the exact-memory join is keyed by a *bucket* of query keys (`pipeline.examples.memory_bucket`), and a
  chunk sends one element per bucket it asks about or knows answers for;
- the shard writer moves Arrow tables, split per shard, not rows.
Per-document logic stays in `annotators/`: a step loops over its batch and calls it per document, with a
dead letter per failing document, so a bad document still costs only itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.document import Document


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
