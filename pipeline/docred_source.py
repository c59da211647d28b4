"""Reading DocRED-format files in Beam: index each file once, then read its chunks in parallel.

A JSON array cannot be split by byte offset blindly, and `Reshuffle`-ing decoded documents holds them all
in the runner's memory. So the work is split in two (docs/design.md "Beam: runners and IO"):
1. `IndexJsonFile` streams a whole file once (one worker per file) and emits small chunk descriptors:
   byte range, index of the first record, and the reference RNG state at that record (so memory-write
   examples replay the reference's mention-pair choices, see `annotators.write_examples`). Damaged JSON
   regions become dead letters here.
   The index pass only decodes JSON and replays the stream from the raw records: it validates nothing and
   builds no document, because it is the one serial step of a file. On a local runner a helper process
   does it while Beam starts (`pipeline.index_ahead`), and the step takes that result.
2. After a `Reshuffle` of the descriptors, `ReadDocumentChunk` re-reads each byte range, validates every
   record into a `Document` (or a dead letter with the reason) and emits the chunk's documents as one
   `DocumentBatch` (see `pipeline.batches`).
Nothing ever holds more than one chunk's documents.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from memllm.annotators.docred import (
    CHUNK_BYTES,
    CHUNK_DOCS,
    ChunkSpan,
    InputFormatError,
    InvalidDocument,
    detect_format,
    index_file,
    parse_document,
    scan_json_records,
)
from memllm.annotators.relation_labels import property_labels
from memllm.annotators.write_examples import reference_shuffle_sizes
from memllm.pipeline import index_ahead
from memllm.pipeline.batches import DocumentBatch
from memllm.pipeline.counting import COUNTS, DEAD, CountingDoFn
from memllm.pipeline.errors import InputError

log = logging.getLogger("memllm")


@dataclass(frozen=True)
class InputFile:
    path: str
    fmt: str  # "array" or "lines"
    source: str  # dataset name written to every row (redocred, docred, docred_distant, sample)
    split: str
    stem: str  # file name without extension: prefix of doc ids
    size: int = 0  # bytes


def infer_split(name: str) -> str:
    lowered = name.lower()
    for marker, split in (("train", "train"), ("dev", "validation"), ("valid", "validation"), ("test", "test")):
        if marker in lowered:
            return split
    return "train"


def infer_source(name: str) -> str:
    lowered = name.lower()
    if "distant" in lowered:
        return "docred_distant"
    if "revised" in lowered or "redocred" in lowered:
        return "redocred"
    return "docred"


def json_format(path: str) -> str:
    """'array' or 'lines' for a JSON input file (`InputError` if it is neither)."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        try:
            return detect_format(f)
        except InputFormatError as e:
            raise InputError(f"{path}: {e}") from None


def match_inputs(
    patterns: list[str], split: str | None, source: str | None, detect: Callable[[str], str] = json_format
) -> list[InputFile]:
    """Expand paths/globs and check every file before the pipeline starts (one-line errors, no traceback).

    `detect(path)` names the file's format, raising `InputError` for a file of none it reads."""
    files = []
    for pattern in patterns:
        try:
            matched = FileSystems.match([pattern])[0].metadata_list
        except Exception as e:  # noqa: BLE001 - any filesystem error is a user-facing input problem
            raise InputError(f"{pattern}: cannot be listed ({e})") from None
        if not matched:
            raise InputError(f"{pattern}: no such file")
        for meta in sorted(matched, key=lambda m: m.path):
            path = meta.path
            try:
                fmt = detect(path)
            except OSError as e:
                raise InputError(f"{path}: cannot be read ({e.strerror or e})") from None
            stem = os.path.basename(path).split(".")[0]
            files.append(
                InputFile(path, fmt, source or infer_source(stem), split or infer_split(stem), stem, meta.size_in_bytes)
            )
    stems = [f.stem for f in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(f"two input files share the name {dupes[0]!r}: document ids would collide")
    return files


@dataclass(frozen=True)
class Chunk:
    file: InputFile
    span: ChunkSpan  # byte range, first record's index, record count, reference stream there


def _document(record: object, file: InputFile, index: int, labels):
    return parse_document(
        record,
        doc_id=f"{file.stem}-{index:06d}",
        doc_index=index,
        source=file.source,
        split=file.split,
        relation_labels=labels,
    )


class IndexJsonFile(CountingDoFn):
    """InputFile → Chunk descriptors (+ dead letters for damaged JSON), from `annotators.docred.index_file`.

    With `ahead` (a directory of `pipeline.index_ahead`), the index a helper process made while Beam
    started is taken when there is one for this file (waiting for the helper if it is still at it)."""

    def __init__(
        self,
        chunk_docs: int = CHUNK_DOCS,
        chunk_bytes: int = CHUNK_BYTES,
        seed: int | None = 42,
        ahead: str | None = None,
    ):
        self.chunk_docs = chunk_docs
        self.chunk_bytes = chunk_bytes
        self.seed = seed
        self.ahead = ahead

    def process(self, file: InputFile):
        params = (self.chunk_docs, self.chunk_bytes, self.seed)
        spans = index_ahead.load(self.ahead, file.path, file.fmt, params) if self.ahead else None
        if spans is not None:
            log.info("index of %s: made while the runner started", file.path)
            yield from self._emit(file, spans)
            return
        with FileSystems.open(file.path, compression_type="uncompressed") as f:
            yield from self._emit(file, index_file(f, file.fmt, *params))

    def _emit(self, file: InputFile, spans):
        records = 0
        for span in spans:
            if isinstance(span, ChunkSpan):
                records += span.count
                yield Chunk(file, span)
                continue
            self.count("input.json_errors")
            yield self.reject(
                f"{file.path}@{span.byte_start}", span.text, "read", f"{span.reason} at byte {span.byte_start}"
            )
        self.count("input.records", records)
        log.info("indexed %s: %d records", file.path, records)


class ReadDocumentChunk(CountingDoFn):
    """Chunk → one DocumentBatch of its valid documents (+ dead letters for invalid records)."""

    def process(self, chunk: Chunk):
        labels = property_labels()
        file, span = chunk.file, chunk.span
        docs, skips, skipped = [], [], []
        with FileSystems.open(file.path, compression_type="uncompressed") as f:
            f.seek(span.byte_start)
            records = scan_json_records(f, file.fmt, span.byte_start, span.byte_end)
            for k, rec in enumerate(records):
                index = span.first_index + k
                try:
                    doc = _document(rec.value, file, index, labels)
                except (InvalidDocument, AttributeError) as e:
                    if span.rng_state is not None:  # the index pass drew for this record: the writer skips it
                        skipped += reference_shuffle_sizes(rec.value)
                    yield self.reject(f"{file.path}#{index}", rec.value, "validate", str(e))
                    continue
                docs.append(doc)
                skips.append(skipped)
                skipped = []
                self.count("documents.valid")
                self.count(f"documents.{doc.split}")
        last = span.first_index + span.count - 1
        log.info(
            "read %s #%d-%d: %d valid, %d rejected",
            file.stem,
            span.first_index,
            last,
            len(docs),
            span.count - len(docs),
        )
        if docs:
            yield DocumentBatch(f"{file.stem}@{span.first_index}", docs, span.rng_state, skips)


class ReadDocRED(beam.PTransform):
    """InputFiles → (DocumentBatches, dead letters, counts)."""

    def __init__(
        self, files: list[InputFile], seed: int | None = 42, chunk_docs: int = CHUNK_DOCS, ahead: str | None = None
    ):
        super().__init__()
        self.files = files
        self.seed = seed
        self.chunk_docs = chunk_docs
        self.ahead = ahead  # a `pipeline.index_ahead` directory, for local runs

    def expand(self, pbegin):
        indexed = (
            pbegin
            | "Files" >> beam.Create(self.files)
            | "Index"
            >> beam.ParDo(IndexJsonFile(self.chunk_docs, seed=self.seed, ahead=self.ahead)).with_outputs(
                COUNTS, DEAD, main="chunks"
            )
        )
        read = (
            indexed.chunks
            | "SpreadChunks" >> beam.Reshuffle()
            | "Read"
            >> beam.ParDo(ReadDocumentChunk())
            .with_output_types(DocumentBatch)
            .with_outputs(COUNTS, DEAD, main="documents")
        )
        dead = (indexed[DEAD], read[DEAD]) | "DeadLetters" >> beam.Flatten()
        counts = (indexed[COUNTS], read[COUNTS]) | "Counts" >> beam.Flatten()
        return read.documents, dead, counts


__all__ = ["InputError", "InputFile", "ReadDocRED", "match_inputs", "InputFormatError"]
