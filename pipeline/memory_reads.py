"""Memory-read examples against a stored embedding memory (`--memory embedding`).

The exact-match memory is a join (pipeline.examples); an embedding memory cannot be: a query finds stored
triples by vector similarity, not by key. docs/design.md "Memory-read examples at scale", step 2: each worker
opens the memory once (`DoFn.setup`), never as a side input, and each batch asks all its documents'
queries in one call (one embedding pass, one index search per side).

The memory is built before the pipeline runs, on the launching machine, from the gold triples of the
input's valid documents under every mention-name combination (what the exact memory holds, so the two
modes differ only by the search): `ensure_embedding_memory`. A directory that already holds a memory is
opened as it is (e.g. one made with `memllm memory build`). The directory must be readable by every
worker: a local path for the local runners; for a cluster, a shared file system.

What it doesn't do: build the memory in parallel (SQLite has one writer), or serve it over the network.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from memllm.annotators.docred import InvalidDocument, Record, scan_json_records
from memllm.annotators.read_examples import gold_triples
from memllm.annotators.relation_labels import property_labels
from memllm.pipeline.batches import DocumentBatch, Rows
from memllm.pipeline.counting import COUNTS, DEAD
from memllm.pipeline.docred_source import InputFile, _document
from memllm.pipeline.examples import ReadExamplesFn

log = logging.getLogger("memllm")

BUILD_BATCH = 50_000  # triples per memory transaction


def load_embedder(model: str, device: str = "cpu"):
    """The embedder of `--embedding-model`: a transformers encoder directory or hub id."""
    from memllm.memory.embedding import TransformerEmbedder
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return TransformerEmbedder(model, device=device)


def input_gold_triples(files: Iterable[InputFile]) -> Iterator[tuple[str, str, str]]:
    """Gold triples of every valid document of the inputs (invalid ones become dead letters in the run)."""
    labels = property_labels()
    for file in files:
        with FileSystems.open(file.path, compression_type="uncompressed") as f:
            for index, rec in enumerate(r for r in scan_json_records(f, file.fmt) if isinstance(r, Record)):
                try:
                    doc = _document(rec.value, file, index, labels)
                except (InvalidDocument, AttributeError):
                    continue
                yield from gold_triples(doc, labels)


def ensure_embedding_memory(path: str, files: list[InputFile], model: str) -> dict:
    """Open the memory at `path`, or build it there from the inputs' gold triples; return its counts."""
    from memllm.memory.embedding_memory import DB_FILE, EmbeddingMemory

    existing = (Path(path) / DB_FILE).is_file()
    with EmbeddingMemory(path, load_embedder(model)) as memory:
        if existing:
            log.info("embedding memory %s: opened as it is", path)
        else:
            triples = input_gold_triples(files)
            while batch := list(itertools.islice(triples, BUILD_BATCH)):
                memory.add_triples(batch)
                log.info("embedding memory %s: %d triples", path, memory.store.counts()["triples"])
        return memory.store.counts()


class ReadWithMemoryFn(ReadExamplesFn):
    """DocumentBatch → one list of memory_read rows, every query answered by the stored memory."""

    def __init__(self, memory_path: str, model: str, preset: str):
        self.memory_path, self.model, self.preset = memory_path, model, preset
        self.memory = None

    def setup(self) -> None:
        from memllm.memory.embedding_memory import EmbeddingMemory

        self.memory = EmbeddingMemory(self.memory_path, load_embedder(self.model), self.preset, create=False)

    def process(self, batch: DocumentBatch):
        plans, dead = self.plan_documents(batch.docs)
        needed = list(dict.fromkeys(q for _, plan in plans for q in plan.needed))
        results = dict(zip(needed, self.memory.query_names(needed)))
        self.count("memory_read.queries_asked", len(needed))
        rows, failed = self.finish_documents(plans, results)
        yield from dead + failed
        if rows:
            yield rows

    def teardown(self) -> None:
        if self.memory is not None:
            self.memory.close()


class BuildReadExamplesWithMemory(beam.PTransform):
    """DocumentBatches → lists of memory_read rows (+ dead letters, counts), queries to a stored memory."""

    def __init__(self, memory_path: str, model: str, preset: str):
        super().__init__()
        self.fn = ReadWithMemoryFn(memory_path, model, preset)

    def expand(self, batches):
        read = beam.ParDo(self.fn).with_output_types(Rows)
        out = batches | "ReadWithMemory" >> read.with_outputs(COUNTS, DEAD, main="rows")
        return out.rows, out[DEAD], out[COUNTS]
