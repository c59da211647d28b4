"""The knowledge base in Beam: a Wikidata JSON dump → Parquet tables, and loading those tables back.

The dump (`latest-all.json.gz` / `.bz2`: a JSON array, one entity per line, ~100 GB compressed) is read
line by line (`ReadFromText` decompresses by extension), lines are batched and spread over the workers
with a `Reshuffle` (a compressed file cannot be split, but parsing is the expensive part), and each
batch is parsed by `annotators.wikidata.parse_dump_line` into entity rows (id, English label, aliases) and
fact rows (subject, property, object), written by the same deterministic shard writer as the examples:

    KB/entities/kb-0000k-of-0000N.parquet     KB/facts/kb-0000k-of-0000N.parquet     KB/_SOURCE.json

Broken lines become dead letters (`KB/errors/`), claims of unknown shape are counted. `_SOURCE.json` names
the dump and its size, so a later run given the same dump reuses the tables instead of reading 100 GB
again. Nothing holds the dump in one process, and no worker holds the KB: `ensure_kb_index` (on the driver,
before the annotation pipeline) turns the tables into `KB/index/` (`annotators.kb_index`, built in bounded
memory, reused while the tables are unchanged), and `shared_kb` (once per worker) memory-maps it, so a
worker's heap does not grow with the KB. A KB directory on remote storage (`gs://…`) is read through a local
copy of its index, made once per worker (`KB/index/` is written by a driver with a local KB directory).
"""

from __future__ import annotations

import json
import logging
import threading

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from memllm.annotators.kb import KB_ENTITY_SCHEMA, KB_FACT_SCHEMA, KBLookups, KnowledgeBase
from memllm.annotators.wikidata import DOCRED_PROPERTIES, DumpLineError, parse_dump_line
from memllm.pipeline.counting import COUNTS, DEAD, CountingDoFn
from memllm.pipeline.errors import InputError
from memllm.pipeline.sinks import WriteShards, WriteStats
from memllm.schemas.records import ERRORS_SCHEMA

log = logging.getLogger("memllm")

KB_SPLIT = "kb"  # the shard-name prefix of the KB tables
KB_TABLES = ("entities", "facts", "errors")
SOURCE_MARKER = "_SOURCE.json"
DUMP_SUFFIXES = (".json", ".json.gz", ".json.bz2", ".jsonl", ".jsonl.gz", ".jsonl.bz2")
LINES_PER_BATCH = 1000
ROWS_PER_SHARD = 1_000_000
INDEX_DIR = "index"  # KB/index/: `annotators.kb_index`, next to the tables
INDEX_MEMORY_MB = 1024  # the index build's memory budget (its peak is about this + 150 MB)


def is_dump(path: str) -> bool:
    return path.endswith(DUMP_SUFFIXES)


def is_kb_dir(path: str) -> bool:
    return FileSystems.exists(FileSystems.join(path, "entities")) and FileSystems.exists(
        FileSystems.join(path, "facts")
    )


def dump_marker(dump: str, properties: frozenset[str] | None) -> dict:
    size = FileSystems.match([dump])[0].metadata_list[0].size_in_bytes
    return {"dump": dump, "size": size, "properties": sorted(properties) if properties is not None else None}


def built_from(kb_dir: str) -> dict | None:
    """The marker of the dump a KB directory was built from, or None."""
    path = FileSystems.join(kb_dir, SOURCE_MARKER)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return json.loads(f.read())


class ParseDumpLines(CountingDoFn):
    """A list of dump lines → (entity rows, fact rows) per batch, dead letters for broken lines."""

    def __init__(self, dump: str, properties: frozenset[str] | None):
        self.dump = dump
        self.properties = properties

    def process(self, lines: list[bytes]):
        entities, facts = [], []
        for line in lines:
            try:
                entity = parse_dump_line(line, self.properties)
            except DumpLineError as e:
                text = line.decode("utf-8", "replace")
                yield self.reject(self.dump, text, "kb", str(e), split=KB_SPLIT)
                continue
            if entity is None:
                continue
            entities.append({"id": entity.id, "label": entity.label, "aliases": list(entity.aliases)})
            facts += [{"subject": entity.id, "property": p, "object": o} for p, o in entity.facts]
            self.count("kb.claims_skipped", entity.skipped_claims)
        self.count("kb.entities", len(entities))
        self.count("kb.facts", len(facts))
        if entities:
            yield entities
        if facts:
            yield beam.pvalue.TaggedOutput("facts", facts)


class BuildKB(beam.PTransform):
    """PBegin → the KB tables written under `kb_dir`; outputs the counts."""

    def __init__(self, dump: str, kb_dir: str, properties: frozenset[str] | None = DOCRED_PROPERTIES):
        super().__init__()
        self.dump = dump
        self.kb_dir = kb_dir
        self.properties = properties

    def expand(self, pbegin):
        parsed = (
            pbegin
            # Bytes, not text: a line that is not UTF-8 is one dead letter (`parse_dump_line`), not a crash.
            | "ReadDump" >> beam.io.ReadFromText(self.dump, coder=beam.coders.BytesCoder())
            | "BatchLines" >> beam.BatchElements(min_batch_size=LINES_PER_BATCH, max_batch_size=LINES_PER_BATCH)
            | "SpreadLines" >> beam.Reshuffle()
            | "ParseLines"
            >> beam.ParDo(ParseDumpLines(self.dump, self.properties)).with_outputs(
                "facts", COUNTS, DEAD, main="entities"
            )
        )
        written = [
            parsed.entities
            | "WriteEntities" >> WriteShards(self.kb_dir, "entities", ROWS_PER_SHARD, KB_ENTITY_SCHEMA, split=KB_SPLIT),
            parsed.facts
            | "WriteFacts"
            >> WriteShards(
                self.kb_dir,
                "facts",
                ROWS_PER_SHARD,
                KB_FACT_SCHEMA,
                key=("subject", "property", "object"),
                split=KB_SPLIT,
            ),
            parsed[DEAD]
            | "ErrorRows" >> beam.Map(lambda dead: [dead])
            | "WriteErrors" >> WriteShards(self.kb_dir, "errors", ROWS_PER_SHARD, ERRORS_SCHEMA, fmt="jsonl"),
        ]
        return (parsed[COUNTS], *written) | "KBCounts" >> beam.Flatten()


def build_kb(dump: str, kb_dir: str, beam_args: list[str], properties=DOCRED_PROPERTIES) -> dict:
    """Run `BuildKB` as a pipeline of its own (the examples pipeline needs the finished tables)."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from memllm.pipeline.sinks import clear_spill

    clear_spill(kb_dir, KB_TABLES)
    for table in (*KB_TABLES, INDEX_DIR):  # the index of older tables goes with them
        stale = FileSystems.match([FileSystems.join(kb_dir, table, "*")])[0].metadata_list
        if stale:
            FileSystems.delete([m.path for m in stale])
    log.info("building the KB from %s → %s", dump, kb_dir)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        _ = p | "BuildKB" >> BuildKB(dump, kb_dir, properties) | "WriteKBStats" >> WriteStats(kb_dir)
    clear_spill(kb_dir, KB_TABLES)
    with FileSystems.create(FileSystems.join(kb_dir, SOURCE_MARKER)) as f:
        f.write(json.dumps(dump_marker(dump, properties), indent=2).encode("utf-8"))
    with FileSystems.open(FileSystems.join(kb_dir, "stats.json")) as f:
        return json.loads(f.read())


def _read_tables(kb_dir: str, table: str, schema: pa.Schema) -> pa.Table:
    pattern = FileSystems.join(kb_dir, table, "*.parquet")
    paths = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    parts = []
    for path in paths:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            parts.append(pq.read_table(f))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def load_kb(kb_dir: str) -> KnowledgeBase:
    """The KB tables under `kb_dir` as one in-memory `KnowledgeBase` (small KBs and tests; the pipeline maps
    the index instead: `shared_kb`)."""
    return KnowledgeBase.from_tables(
        _read_tables(kb_dir, "entities", KB_ENTITY_SCHEMA), _read_tables(kb_dir, "facts", KB_FACT_SCHEMA)
    )


def _is_local(path: str) -> bool:
    return FileSystems.get_scheme(path) in (None, "file")


def ensure_kb_index(kb_dir: str, memory_mb: int = INDEX_MEMORY_MB) -> dict:
    """Build `kb_dir/index` from the KB tables, or reuse it when it was built from the same files; returns its
    manifest. A remote `kb_dir` must already hold an index (built where the KB directory was local)."""
    from memllm.annotators.kb_index import build_kb_index

    if not _is_local(kb_dir):
        manifest = FileSystems.join(kb_dir, INDEX_DIR, "manifest.json")
        if not FileSystems.exists(manifest):
            raise InputError(
                f"--kb {kb_dir}: no {INDEX_DIR}/ in this remote KB directory; build it where the directory is "
                "local (memllm generate --source wikipedia --kb DIR on a local copy), then copy it there"
            )
        with FileSystems.open(manifest) as f:
            return json.loads(f.read())
    log.info("indexing the KB in %s", kb_dir)
    return build_kb_index(kb_dir, memory_mb=memory_mb)


def _local_index(kb_dir: str) -> str:
    """`kb_dir/index` as a local directory: itself, or a copy made once per worker of a remote one."""
    index = FileSystems.join(kb_dir, INDEX_DIR)
    if _is_local(kb_dir):
        return index
    import hashlib
    import shutil
    import tempfile
    from pathlib import Path

    local = Path(tempfile.gettempdir()) / f"memllm-kb-{hashlib.sha1(index.encode()).hexdigest()[:12]}"
    if not (local / "manifest.json").is_file():
        partial = Path(tempfile.mkdtemp(prefix=local.name + "-", dir=local.parent))
        for m in FileSystems.match([FileSystems.join(index, "*")])[0].metadata_list:
            with (
                FileSystems.open(m.path, compression_type="uncompressed") as src,
                open(partial / m.path.rsplit("/", 1)[-1], "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 24)
        if not local.exists():
            partial.rename(local)  # whole or absent: another process may have won the race
    return str(local)


_opened: dict[str, KBLookups] = {}
_opening = threading.Lock()


def shared_kb(kb_dir: str) -> KBLookups:
    """The KB of `kb_dir` for the annotators, once per worker process: its index, memory-mapped (every DoFn
    instance and thread of a worker shares it; the OS shares its pages between worker processes)."""
    from memllm.annotators.kb_index import KBIndex

    with _opening:
        if kb_dir not in _opened:
            _opened[kb_dir] = KBIndex.open(_local_index(kb_dir))
        return _opened[kb_dir]
