"""`memllm generate`: the main job, read top to bottom.

input files → documents (validated, in batches of one input chunk) → memory-write examples
                                                                 → memory-read examples (Algorithm 1, memory joined in)
            → Parquet shards + dead letters + stats.json, then the dataset card and a summary table.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from memllm.annotators.evidence_llm import DEFAULT_BATCH_SIZE, DEFAULT_JUDGE_MODEL, DEFAULT_MAX_NEW_TOKENS
from memllm.annotators.write_examples import reference_stream_seed
from memllm.memory.embedding import CONTRIEVER
from memllm.memory.presets import DEFAULT_PRESET
from memllm.pipeline import index_ahead
from memllm.pipeline.batches import Rows
from memllm.pipeline.card import render_card
from memllm.pipeline.counting import COUNTS
from memllm.pipeline.docred_source import InputFile, ReadDocRED, match_inputs
from memllm.pipeline.errors import InputError
from memllm.pipeline.evidence import JudgeEvidence, JudgeEvidenceFn
from memllm.pipeline.examples import AssignEvidenceFn, BuildReadExamples, BuildWriteExamples, memory_buckets
from memllm.pipeline.memory_reads import BuildReadExamplesWithMemory, ensure_embedding_memory
from memllm.pipeline.output_dir import TABLES
from memllm.pipeline.resume import fingerprint
from memllm.pipeline.resume import prepare as prepare_resume
from memllm.pipeline.sinks import SPILL_DIR, WriteShards, WriteStats, clear_spill
from memllm.schemas.records import (
    DOCUMENTS_SCHEMA,
    ERRORS_SCHEMA,
    EVIDENCE_SCHEMA,
    MEMORY_READ_SCHEMA,
    MEMORY_WRITE_SCHEMA,
)

# the tables `memllm generate` writes (`triples/` belongs to `memllm fill-memory`, which may share OUT)
OWN_TABLES = tuple(t for t in TABLES if t != "triples")

log = logging.getLogger("memllm")


@dataclass
class GenerateConfig:
    inputs: list[str]
    output: str
    source: str = "docred"  # "docred" (DocRED-format JSON) or "wikipedia" (raw articles, annotated here)
    kb: str | None = None  # Wikipedia: a Wikidata JSON dump (built into OUT/kb) or a KB directory
    sections: str = "lead"  # Wikipedia: "lead" section only (as MemLLM's Wikipedia memory) or "full" text
    resume: bool = True  # reuse the articles annotated / batches judged that an earlier same-argument run kept
    dataset: str | None = None  # the `source` column; inferred from file names when None
    split: str | None = None
    memory: str = "exact"  # "exact": a join on the gold triples; "embedding": a stored embedding memory
    memory_path: str | None = None  # embedding memory directory; None: OUT/memory
    embedding_model: str = CONTRIEVER
    memory_preset: str = DEFAULT_PRESET  # thresholds of the embedding memory (memory.presets)
    evidence: str = "keep"
    judge_model: str = DEFAULT_JUDGE_MODEL  # --evidence llm: a causal LM directory or hub id
    judge_batch_size: int = DEFAULT_BATCH_SIZE
    judge_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    seed: int = 42
    rows_per_shard: int = 50_000
    memory_buckets: int | None = None  # exact-memory join buckets; None: from the input size
    write_documents: bool = False
    index_ahead: bool = True  # local runs: index DocRED-format input in a helper while Beam starts
    beam_args: list[str] = field(default_factory=list)

    def options(self) -> dict:
        """The options the dataset card records (`index_ahead` changes how fast, not what is written)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("beam_args", "index_ahead")}
        out["beam_args"] = list(self.beam_args)
        return out


def build_pipeline(
    p: beam.Pipeline,
    files: list[InputFile],
    cfg: GenerateConfig,
    kb_dir: str | None = None,
    resume_dir: str | None = None,
    ahead_dir: str | None = None,
) -> None:
    if cfg.source == "wikipedia":
        from memllm.annotators.wikipedia import AnnotationConfig
        from memllm.pipeline.wikipedia_source import ReadWikipedia

        config = AnnotationConfig(sections=cfg.sections)
        batches, read_dead, read_counts = p | "ReadWikipedia" >> ReadWikipedia(files, kb_dir, config, resume_dir)
    else:
        batches, read_dead, read_counts = p | "ReadDocRED" >> ReadDocRED(
            files, seed=reference_stream_seed(cfg.evidence, cfg.seed), ahead=ahead_dir
        )

    evidence_counts = []
    if cfg.evidence == "llm":
        fn = JudgeEvidenceFn(
            cfg.judge_model, cfg.judge_batch_size, cfg.judge_max_new_tokens, cfg.seed, resume_dir=resume_dir
        )
        batches, evidence_rows, judged_counts = batches | "Evidence" >> JudgeEvidence(fn)
        evidence_counts += [
            judged_counts,
            evidence_rows | "WriteEvidence" >> WriteShards(cfg.output, "evidence", cfg.rows_per_shard, EVIDENCE_SCHEMA),
        ]
    elif cfg.evidence != "keep":
        assigned = batches | "Evidence" >> beam.ParDo(AssignEvidenceFn(cfg.evidence)).with_outputs(
            COUNTS, main="batches"
        )
        batches = assigned.batches
        evidence_counts.append(assigned[COUNTS])

    write_rows, write_dead, write_counts = batches | "MemoryWrite" >> BuildWriteExamples(cfg.seed)
    if cfg.memory == "embedding":
        reads = BuildReadExamplesWithMemory(embedding_memory_path(cfg), cfg.embedding_model, cfg.memory_preset)
    else:
        buckets = cfg.memory_buckets or memory_buckets(sum(f.size for f in files))
        reads = BuildReadExamples(buckets, spill_dir=FileSystems.join(cfg.output, SPILL_DIR, "reads"))
    read_rows, mr_dead, mr_counts = batches | "MemoryRead" >> reads

    written = [
        write_rows
        | "WriteMemoryWrite" >> WriteShards(cfg.output, "memory_write", cfg.rows_per_shard, MEMORY_WRITE_SCHEMA),
        read_rows | "WriteMemoryRead" >> WriteShards(cfg.output, "memory_read", cfg.rows_per_shard, MEMORY_READ_SCHEMA),
    ]
    if cfg.write_documents or cfg.source == "wikipedia":  # raw-text input: the annotation is an output too
        doc_rows = batches | "DocumentRows" >> beam.Map(lambda b: Rows(d.to_row() for d in b.docs)).with_output_types(
            Rows
        )
        written.append(
            doc_rows | "WriteDocuments" >> WriteShards(cfg.output, "documents", cfg.rows_per_shard, DOCUMENTS_SCHEMA)
        )

    dead = (read_dead, write_dead, mr_dead) | "AllDeadLetters" >> beam.Flatten()
    dead_rows = dead | "ErrorSplit" >> beam.Map(_with_split, splits={f.path: f.split for f in files})
    written.append(
        dead_rows | "WriteErrors" >> WriteShards(cfg.output, "errors", cfg.rows_per_shard, ERRORS_SCHEMA, fmt="jsonl")
    )

    counts = (read_counts, *evidence_counts, write_counts, mr_counts, *written) | "AllCounts" >> beam.Flatten()
    _ = counts | "WriteStats" >> WriteStats(cfg.output)


def embedding_memory_path(cfg: GenerateConfig) -> str:
    return cfg.memory_path or FileSystems.join(cfg.output, "memory")


def _with_split(dead: dict, splits: dict[str, str]) -> list[dict]:
    """A dead letter with the split of its input file, as a list of rows for `WriteShards`."""
    path = dead["source"].rsplit("#", 1)[0].rsplit("@", 1)[0]
    return [{**dead, "split": dead.get("split") or splits.get(path, "unknown")}]


def clear_previous_output(out: str, tables: Sequence[str] = OWN_TABLES) -> None:
    """Remove the shards of `tables` from an earlier run (a rerun may use fewer shards) and its stats/card;
    other tables in `out` are left alone."""
    stale = []
    for table in tables:
        for ext in ("parquet", "jsonl", "parquet.tmp", "jsonl.tmp"):
            pattern = FileSystems.join(out, table, f"*-?????-of-?????.{ext}")
            stale += [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    for name in ("stats.json", "README.md"):
        path = FileSystems.join(out, name)
        if FileSystems.exists(path):
            stale.append(path)
    if stale:
        FileSystems.delete(stale)
    clear_spill(out, tables)


def resolve_kb(cfg: GenerateConfig) -> str:
    """The KB directory of a Wikipedia run: `--kb` itself, or OUT/kb built from the dump `--kb` names
    (kept, and reused by a later run given the same dump)."""
    from memllm.pipeline.kb_source import DOCRED_PROPERTIES, build_kb, built_from, dump_marker, is_dump, is_kb_dir

    if cfg.kb is None:
        raise InputError("--source wikipedia needs --kb (a Wikidata JSON dump, or a KB directory built from one)")
    if is_kb_dir(cfg.kb):
        return cfg.kb
    if not FileSystems.exists(cfg.kb):
        raise InputError(f"{cfg.kb}: no such file or KB directory")
    if not is_dump(cfg.kb):
        raise InputError(
            f"{cfg.kb}: neither a KB directory (entities/, facts/) nor a Wikidata JSON dump (.json[.gz|.bz2])"
        )
    kb_dir = FileSystems.join(cfg.output, "kb")
    if built_from(kb_dir) == dump_marker(cfg.kb, DOCRED_PROPERTIES):
        log.info("reusing the KB in %s (built from %s)", kb_dir, cfg.kb)
        return kb_dir
    counts = build_kb(cfg.kb, kb_dir, cfg.beam_args)
    log.info(
        "KB: %s entities, %s facts, %s broken lines",
        f"{counts.get('kb.entities', 0):,}",
        f"{counts.get('kb.facts', 0):,}",
        f"{counts.get('kb.rejected', 0):,}",
    )
    return kb_dir


def run(cfg: GenerateConfig, command: str | None = None, ahead: index_ahead.Helper | None = None) -> dict:
    """Run the job; return the counters. Raises `InputError` for unusable input before starting.

    `ahead`: an index helper the caller started before importing Beam (`index_ahead.start_local`; the
    caller closes it). Without one, a local DocRED-format run starts its own here."""
    kb_dir = None
    if cfg.source == "wikipedia":
        from memllm.pipeline.wikipedia_source import match_article_inputs

        files = match_article_inputs(cfg.inputs, cfg.split, cfg.dataset or "wikipedia")
        if cfg.memory == "embedding":
            raise InputError("--memory embedding is available for DocRED-format input only (for now)")
    else:
        files = match_inputs(cfg.inputs, cfg.split, cfg.dataset)
    FileSystems.mkdirs(cfg.output) if not FileSystems.exists(cfg.output) else None
    clear_previous_output(cfg.output)
    resume_dir = None
    if cfg.source == "wikipedia":
        from memllm.pipeline.kb_source import ensure_kb_index

        kb_dir = resolve_kb(cfg)
        ensure_kb_index(kb_dir)
        options = {"source": cfg.source, "sections": cfg.sections, "dataset": cfg.dataset, "split": cfg.split}
        resume_dir = prepare_resume(cfg.output, fingerprint([f.path for f in files], kb_dir, options), cfg.resume)
    elif cfg.evidence == "llm":  # the judge is the expensive step of the DocRED path: its batches are kept
        options = {k: getattr(cfg, k) for k in ("source", "evidence", "judge_model", "judge_max_new_tokens", "seed")}
        options |= {"dataset": cfg.dataset, "split": cfg.split}
        model_files = [FileSystems.join(cfg.judge_model, "*")] if FileSystems.exists(cfg.judge_model) else []
        resume_dir = prepare_resume(
            cfg.output, fingerprint([f.path for f in files] + model_files, None, options), cfg.resume
        )
    log.info("memllm generate: %d input file(s) → %s", len(files), cfg.output)
    for f in files:
        log.info("  %s (%s, %s, split %s)", f.path, f.fmt, f.source, f.split)

    started = time.time()
    if cfg.memory == "embedding":
        path = embedding_memory_path(cfg)
        if cfg.memory_path is None and FileSystems.exists(path):
            FileSystems.delete([path])  # OUT/memory belongs to the run: an earlier run's input may differ
        counts = ensure_embedding_memory(path, files, cfg.embedding_model)
        log.info("embedding memory: %s triples, %s entities", f"{counts['triples']:,}", f"{counts['entities']:,}")
    options = PipelineOptions(cfg.beam_args)
    own = None
    if not (cfg.index_ahead and cfg.source == "docred"):
        ahead = None
    elif ahead is None:
        runner = options.view_as(StandardOptions).runner
        seed = reference_stream_seed(cfg.evidence, cfg.seed)
        ahead = own = index_ahead.start_local([f.path for f in files], seed, runner)
    try:
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, files, cfg, kb_dir, resume_dir, ahead.directory if ahead else None)
    finally:
        if own is not None:
            own.close()
    clear_spill(cfg.output, OWN_TABLES)
    elapsed = time.time() - started

    with FileSystems.open(FileSystems.join(cfg.output, "stats.json")) as f:
        stats = json.loads(f.read())
    splits = sorted({f.split for f in files})
    tables = {
        t: [s for s in splits if f"{t}.{s}.rows" in stats]
        for t in ("memory_write", "memory_read", "documents", "evidence")
        if any(f"{t}.{s}.rows" in stats for s in splits)
    }
    card = render_card(tables, stats, command or _command_line(), cfg.options())
    with FileSystems.create(FileSystems.join(cfg.output, "README.md")) as f:
        f.write(card.encode("utf-8"))
    stats["_elapsed_seconds"] = round(elapsed, 1)
    return stats


def _command_line() -> str:
    return "memllm " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def summary_table(stats: dict, out: str) -> str:
    """A closing table of the run's counts."""
    records = stats.get("input.records", 0)
    if "articles.annotated" in stats or "annotate.rejected" in stats:  # raw text: records are articles
        valid = stats.get("articles.annotated", 0)
        rejected = stats.get("annotate.rejected", 0)
        head = [
            ("input articles", records),
            ("  annotated", valid),
            ("  rejected (dead letters)", rejected),
            ("documents", stats.get("documents.valid", 0)),
            ("  relations annotated", stats.get("annotate.relations", 0)),
        ]
    else:
        valid = stats.get("documents.valid", 0)
        rejected = stats.get("validate.rejected", 0)
        head = [("input records", records), ("  valid documents", valid), ("  rejected (dead letters)", rejected)]
    rows = [
        *head,
        ("damaged JSON regions", stats.get("input.json_errors", 0)),
        ("memory-write examples", stats.get("memory_write.examples", 0)),
        ("  triples written", stats.get("memory_write.triples", 0)),
        ("  relations unwritten: same names", stats.get("memory_write.relations_not_written_duplicate_triple", 0)),
        ("  relations unwritten: no pair", stats.get("memory_write.relations_not_written_no_mention_pair", 0)),
        ("memory-read examples", stats.get("memory_read.examples", 0)),
        ("dead letters written", sum(v for k, v in stats.items() if k.startswith("errors.") and k.endswith(".rows"))),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{name.ljust(width)}  {value:>10,}" for name, value in rows]
    check = "ok" if records == valid + rejected else "MISMATCH"
    lines.append(f"{'records in = valid + rejected'.ljust(width)}  {check:>10}")
    lines.append(f"output: {out}  ({stats.get('_elapsed_seconds', 0)} s)")
    return "\n".join(lines)
