"""`memllm fill-memory`: a write model reads a corpus, and the triples it writes become Parquet shards, read
top to bottom (paper arXiv 2404.11672 §3: the memory was filled from Wikipedia; docs/method.md §8.1).

input files → texts (the documents of one input chunk per element) → write model (`ExtractTriples`)
            → `triples/` shards (one row per triple) + dead letters + stats.json, then the dataset card.
`memllm memory build --from OUT/triples` loads the shards into a memory.

Sources. DocRED-format documents are read by the DocRED source (`pipeline.docred_source.ReadDocRED`: the
same chunks, validation and dead letters as `memllm generate`); a sentence is its words joined by single
spaces, as `memllm write` reads them. Wikipedia articles (HF `wikimedia/wikipedia` Parquet, or JSON lines /
arrays with `id, url, title, text`) are cut into chunks and read as the Wikipedia source reads them
(`pipeline.wikipedia_source`), but not annotated: the lead section (or the full text) is split into
DocRED-style sentences by `runtime.text.split_sentences`, as `runtime.write` splits raw text.

The model. `ExtractTriplesFn` holds one `MemLLM` (the base model with the write adapter, no memory) per
worker process, through a `Shared` handle acquired on the first chunk it has to decode (a resumed run
may need none), and runs `runtime.write.extract` on a whole chunk at a time. Why a DoFn and not
`RunInference` with a custom `ModelHandler`:
- Byte-identical shards. Batched decoding pads, and with padding the floats, so now and then a greedy
  choice, can depend on which sentences share a batch. `RunInference` batches with `BatchElements`, whose
  batches follow the runner's bundles, which differ between runners and between runs. Here the unit of
  decoding is the input chunk, fixed by the input file alone (and `--docs-per-chunk`), and `extract`
  sorts its sentences by prompt length into batches of `--batch-size`: the same batches on every runner.
- Resuming. A chunk's result is kept under `OUT/_resume/` once decoded (`pipeline.resume`); a rerun after
  an interruption replays it instead of decoding again. `RunInference` has no place for that.
- Counters and dead letters, as every step of the project (`pipeline.counting`).
`RunInference` would share the model through the same `Shared` handle. A lock makes the threads of one
process decode one chunk at a time: a decoding batch already keeps a GPU (or torch's CPU threads) busy, and
two at once would hold two chunks' activations.

Dead letters: the source's (damaged JSON, invalid documents; articles that are not objects, have no text or
no sentence), and a document whose decoding raised (a chunk that raises is decoded document by document,
so one bad document costs only itself). A model that cannot be loaded stops the run: the CLI checks the
base model and the adapter before the run starts.

Determinism: same input, model, adapter, options and hardware → byte-identical shards on every runner and on
a rerun, resumed or not. Different hardware (a GPU against a CPU, bf16 against float32) may decode
differently; the resume fingerprint covers `--device`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.shared import Shared
from memllm.annotators.articles import SECTIONS, article_text
from memllm.annotators.wikipedia import AnnotationConfig, ArticleError
from memllm.pipeline.batches import DocumentBatch, Rows
from memllm.pipeline.card import render_card
from memllm.pipeline.counting import COUNTS, DEAD, CountingDoFn
from memllm.pipeline.docred_source import InputFile, ReadDocRED, match_inputs
from memllm.pipeline.generate import _command_line, _with_split, clear_previous_output
from memllm.pipeline.resume import ChunkCache, fingerprint, run_or_replay
from memllm.pipeline.resume import prepare as prepare_resume
from memllm.pipeline.sinks import WriteShards, WriteStats, clear_spill
from memllm.pipeline.wikipedia_source import (
    ArticleChunk,
    IndexArticleFile,
    match_article_inputs,
    read_chunk_records,
    to_article,
)
from memllm.runtime.decoding import K
from memllm.runtime.write import MAX_NEW_TOKENS, MAX_SENTS, SentenceWrite, extract
from memllm.schemas.records import ERRORS_SCHEMA, TRIPLES_SCHEMA

log = logging.getLogger("memllm")

TABLE = "triples"
OWN_TABLES = (TABLE, "errors")
DOCS_PER_CHUNK = 100  # a chunk is the unit of decoding and of resuming: ~800 DocRED sentences


@dataclass
class FillConfig:
    inputs: list[str]
    output: str
    model: str  # the base causal LM (directory or hub id)
    adapter: str  # the write adapter directory (`memllm train --task write`)
    source: str = "docred"  # "docred" (DocRED-format JSON) or "wikipedia" (raw articles)
    sections: str = "lead"  # Wikipedia: the lead section (as MemLLM's Wikipedia memory) or the "full" text
    dataset: str | None = None  # the `source` column; inferred from file names when None
    split: str | None = None
    device: str | None = None  # torch device of the workers' model; None: cuda when available, else cpu
    torch_threads: int | None = None  # torch's CPU threads in each worker process; None: torch's default
    batch_size: int = 16  # sentences decoded together
    docs_per_chunk: int = DOCS_PER_CHUNK
    max_sents: int = MAX_SENTS
    max_prompt_tokens: int | None = None
    max_new_tokens: int = MAX_NEW_TOKENS
    k: int = K
    length: str = "output"
    force_non_empty: bool = False
    rows_per_shard: int = 50_000
    resume: bool = True
    beam_args: list[str] = field(default_factory=list)

    def decoding(self) -> dict:
        """The keyword options of `runtime.write.extract` (they change what is decoded)."""
        names = ("max_sents", "max_prompt_tokens", "max_new_tokens", "k", "length", "force_non_empty")
        return {n: getattr(self, n) for n in names}

    def options(self) -> dict:
        """The options the dataset card records."""
        out = {k: v for k, v in self.__dict__.items() if k != "beam_args"}
        out["beam_args"] = list(self.beam_args)
        return out

    def result_options(self) -> dict:
        """What the decoded chunks depend on besides the files (the resume fingerprint's options)."""
        keep = ("source", "sections", "dataset", "split", "model", "adapter", "batch_size", "docs_per_chunk")
        # CPU kernels may sum in another order with another thread count: covered too
        hardware = {"device": self.device or "auto", "torch_threads": self.torch_threads}
        return {k: getattr(self, k) for k in keep} | self.decoding() | hardware


# --- texts -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDocument:
    """One input document as the write model reads it: sentences of DocRED-style words joined by spaces."""

    doc_id: str
    doc_index: int
    title: str
    source: str  # the dataset name (the `source` column)
    split: str
    origin: str  # `<input file>#<record index>`, named by dead letters
    sentences: tuple[str, ...]

    def record(self) -> dict:
        return {"doc_id": self.doc_id, "title": self.title, "sentences": list(self.sentences)}


@dataclass
class TextBatch:
    """The documents of one input chunk, in file order; `key` names the chunk (`<file stem>@<first index>`)."""

    key: str
    docs: list[TextDocument]


def docred_texts(batch: DocumentBatch, paths: dict[str, str]) -> TextBatch:
    """A DocRED-format chunk's documents as texts (words joined by single spaces, as `memllm write` does)."""
    docs = [
        TextDocument(
            d.doc_id,
            d.doc_index,
            d.title,
            d.source,
            d.split,
            f"{paths.get(d.doc_id.rsplit('-', 1)[0], '')}#{d.doc_index}",
            tuple(" ".join(words) for words in d.sents),
        )
        for d in batch.docs
    ]
    return TextBatch(batch.key, docs)


class SplitArticles(CountingDoFn):
    """ArticleChunk → one TextBatch of its articles' sentences (+ a dead letter per unusable article).

    The text kept is `annotators.articles.article_text` (lead section or full text); sentences come from
    `runtime.text.split_sentences` (spaCy, loaded once per worker process)."""

    def __init__(self, sections: str = "lead", max_chars: int = AnnotationConfig.max_chars):
        self.sections = sections
        self.max_chars = max_chars

    def process(self, chunk: ArticleChunk):
        from memllm.runtime.text import split_sentences

        file = chunk.file
        articles, texts = [], []
        for k, record in enumerate(read_chunk_records(chunk)):
            index = chunk.first_index + k
            try:
                article = to_article(record, file, index)
                text = self._text(article.text)
            except ArticleError as e:
                yield self.reject(f"{file.path}#{index}", record, "read_text", str(e), file.split)
                continue
            articles.append((article, record))
            texts.append(text)
        docs = []
        for (article, record), sentences in zip(articles, split_sentences(texts) if texts else []):
            origin = f"{file.path}#{article.index}"
            if not sentences:
                yield self.reject(origin, record, "read_text", "empty: no sentence in the text", file.split)
                continue
            docs.append(
                TextDocument(
                    article.id, article.index, article.title, file.source, file.split, origin, tuple(sentences)
                )
            )
            self.count("documents.valid")
            self.count(f"documents.{file.split}")
        if docs:
            yield TextBatch(f"{file.stem}@{chunk.first_index}", docs)

    def _text(self, text: object) -> str:
        if not isinstance(text, str):
            raise ArticleError("not_string", f"text is a {type(text).__name__}, not a string")
        selected = article_text(text, self.sections)
        if not selected.strip():
            raise ArticleError("empty", f"no prose in the {self.sections} section")
        if len(selected) > self.max_chars:
            raise ArticleError("too_long", f"{len(selected):,} characters, over the cap of {self.max_chars:,}")
        return selected


class ReadTexts(beam.PTransform):
    """InputFiles → (TextBatches, dead letters, counts), from DocRED-format documents or Wikipedia articles."""

    def __init__(self, files: list[InputFile], source: str, docs_per_chunk: int, sections: str = "lead"):
        super().__init__()
        self.files, self.source, self.docs_per_chunk, self.sections = files, source, docs_per_chunk, sections

    def expand(self, pbegin):
        if self.source == "docred":
            # seed=None: no reference random stream to replay (no examples are made here)
            batches, dead, counts = pbegin | "ReadDocRED" >> ReadDocRED(
                self.files, seed=None, chunk_docs=self.docs_per_chunk
            )
            paths = {f.stem: f.path for f in self.files}
            texts = batches | "Sentences" >> beam.Map(docred_texts, paths=paths).with_output_types(TextBatch)
            return texts, dead, counts
        indexed = (
            pbegin
            | "Files" >> beam.Create(self.files)
            | "Index" >> beam.ParDo(IndexArticleFile(self.docs_per_chunk)).with_outputs(COUNTS, DEAD, main="chunks")
        )
        split = (
            indexed.chunks
            | "SpreadChunks" >> beam.Reshuffle()
            | "SplitSentences"
            >> beam.ParDo(SplitArticles(self.sections))
            .with_output_types(TextBatch)
            .with_outputs(COUNTS, DEAD, main="texts")
        )
        dead = (indexed[DEAD], split[DEAD]) | "DeadLetters" >> beam.Flatten()
        counts = (indexed[COUNTS], split[COUNTS]) | "Counts" >> beam.Flatten()
        return split.texts, dead, counts


# --- the write model ---------------------------------------------------------------------------------------


def triple_rows(doc: TextDocument, writes: Sequence[SentenceWrite]) -> list[dict]:
    """One `triples/` row per triple of a document's write calls, in text order; `id` is
    `<doc_id>/s<sentence>t<triple>` (zero-padded: ids sort in text order)."""
    rows = []
    for w in writes:
        for i, (head, relation, tail) in enumerate(w.triples):
            rows.append(
                {
                    "id": f"{doc.doc_id}/s{w.sentence_index:04d}t{i:03d}",
                    "source": doc.source,
                    "split": doc.split,
                    "doc_id": doc.doc_id,
                    "doc_index": doc.doc_index,
                    "title": doc.title,
                    "sent_id": w.sentence_index,
                    "triple_index": i,
                    "head": head,
                    "relation": relation,
                    "tail": tail,
                    "sentence": w.sentence,
                }
            )
    return rows


class _Held:
    """A weak-referenceable holder of a worker's model (`Shared` keeps a weak reference), with the lock that
    lets one chunk at a time decode on it."""

    def __init__(self, mm: Any):
        self.mm = mm
        self.lock = threading.Lock()


def load_write_model(model: str, adapter: str, device: str | None, torch_threads: int | None = None) -> Any:
    """A `MemLLM` with the write adapter and no memory (an in-process `ExactMemory` that stays empty).

    `torch_threads`: torch's CPU threads in this process. Several worker processes on one machine each
    start as many threads as there are cores by default, and competing OpenMP threads slow a step down
    many times over: give each process cores / processes."""
    import torch
    from memllm.runtime.model import MemLLM
    from transformers.utils import logging as hf_logging

    if torch_threads:
        torch.set_num_threads(torch_threads)
    hf_logging.disable_progress_bar()
    return MemLLM.from_pretrained(model, write_adapter=adapter, device=device)


class ExtractTriplesFn(CountingDoFn):
    """TextBatch → one list of `triples/` rows (+ dead letters); each chunk decoded once, or replayed from
    `resume_dir` (`pipeline.resume`) with the same outputs and counts."""

    def __init__(
        self,
        model: str,
        adapter: str,
        device: str | None = None,
        batch_size: int = 16,
        decoding: dict | None = None,
        resume_dir: str | None = None,
        torch_threads: int | None = None,
    ):
        self.model, self.adapter, self.device, self.torch_threads = model, adapter, device, torch_threads
        self.batch_size = batch_size
        self.decoding = dict(decoding or {})
        self.resume_dir = resume_dir
        self._shared = Shared()
        self._held: _Held | None = None

    def setup(self) -> None:
        self._held = None  # acquired on the first chunk that is not resumed: a resumed run may need none
        self.cache = ChunkCache(self.resume_dir) if self.resume_dir else None

    def _model(self) -> _Held:
        if self._held is None:
            tag = f"{self.model}|{self.adapter}|{self.device}"
            load = lambda: _Held(load_write_model(self.model, self.adapter, self.device, self.torch_threads))  # noqa: E731
            self._held = self._shared.acquire(load, tag=tag)
        return self._held

    def process(self, batch: TextBatch):
        key = f"{batch.key}+{len(batch.docs)}"
        yield from run_or_replay(self, self.cache, key, lambda: self._extract_chunk(batch))

    def _extract(self, docs: list[TextDocument]) -> list[list[SentenceWrite]]:
        """Each document's sentence writes, the chunk decoded together."""
        held = self._model()
        with held.lock:
            writes = extract(held.mm, [list(d.sentences) for d in docs], self.batch_size, **self.decoding)
        out: list[list[SentenceWrite]] = [[] for _ in docs]
        for w in writes:
            out[w.text_index].append(w)
        return out

    def _extract_docs(self, docs: list[TextDocument]) -> list[list[SentenceWrite] | Exception]:
        """Each document's writes, or the error decoding it alone raised (a chunk that raises is retried
        document by document, so a bad document costs only itself)."""
        self._model()  # outside the try: a model that does not load stops the run
        try:
            return list(self._extract(docs))
        except Exception:  # noqa: BLE001 - isolate the document it came from, below
            log.warning("decoding chunk of %s failed: retrying document by document", docs[0].doc_id, exc_info=True)
        results: list[list[SentenceWrite] | Exception] = []
        for doc in docs:
            try:
                results.append(self._extract([doc])[0])
            except Exception as e:  # noqa: BLE001 - a document no rule foresaw: a dead letter
                results.append(e)
        return results

    def _extract_chunk(self, batch: TextBatch) -> Iterator:
        started = time.perf_counter()
        self.count("fill.chunks")
        rows = Rows()
        for doc, result in zip(batch.docs, self._extract_docs(batch.docs)):
            if isinstance(result, Exception):
                reason = f"decoding failed: {type(result).__name__}: {result}"
                yield self.reject(doc.origin, doc.record(), "fill", reason, doc.split)
                continue
            doc_rows = triple_rows(doc, result)
            rows.extend(doc_rows)
            self.count("fill.documents")
            self.count("fill.sentences", len(result))
            self.count("fill.sentences_with_triples", sum(1 for w in result if w.triples))
            self.count("fill.triples", len(doc_rows))
        log.info(
            "decoded %s: %d documents, %d triples in %.1f s",
            batch.key,
            len(batch.docs),
            len(rows),
            time.perf_counter() - started,
        )
        if rows:
            yield rows


class ExtractTriples(beam.PTransform):
    """TextBatches → (lists of `triples/` rows, dead letters, counts)."""

    def __init__(self, fn: ExtractTriplesFn):
        super().__init__()
        self.fn = fn

    def expand(self, batches):
        out = batches | "Decode" >> beam.ParDo(self.fn).with_output_types(Rows).with_outputs(COUNTS, DEAD, main="rows")
        return out.rows, out[DEAD], out[COUNTS]


# --- the job -----------------------------------------------------------------------------------------------


def build_pipeline(p: beam.Pipeline, files: list[InputFile], cfg: FillConfig, resume_dir: str | None = None) -> None:
    texts, read_dead, read_counts = p | "ReadTexts" >> ReadTexts(files, cfg.source, cfg.docs_per_chunk, cfg.sections)
    fn = ExtractTriplesFn(
        cfg.model, cfg.adapter, cfg.device, cfg.batch_size, cfg.decoding(), resume_dir, cfg.torch_threads
    )
    rows, fill_dead, fill_counts = texts | "ExtractTriples" >> ExtractTriples(fn)
    written = [rows | "WriteTriples" >> WriteShards(cfg.output, TABLE, cfg.rows_per_shard, TRIPLES_SCHEMA)]
    dead = (read_dead, fill_dead) | "AllDeadLetters" >> beam.Flatten()
    dead_rows = dead | "ErrorSplit" >> beam.Map(_with_split, splits={f.path: f.split for f in files})
    written.append(
        dead_rows | "WriteErrors" >> WriteShards(cfg.output, "errors", cfg.rows_per_shard, ERRORS_SCHEMA, fmt="jsonl")
    )
    counts = (read_counts, fill_counts, *written) | "AllCounts" >> beam.Flatten()
    _ = counts | "WriteStats" >> WriteStats(cfg.output)


def match_files(cfg: FillConfig) -> list[InputFile]:
    if cfg.source == "wikipedia":
        return match_article_inputs(cfg.inputs, cfg.split, cfg.dataset or "wikipedia")
    return match_inputs(cfg.inputs, cfg.split, cfg.dataset)


def model_files(path: str) -> list[str]:
    """Patterns of the files of a local model or adapter directory (a hub id has none here)."""
    return [FileSystems.join(path, "*")] if FileSystems.exists(path) else []


CARD_ABOUT = [
    "Triples a MemLLM write model (arXiv 2404.11672) extracted from a corpus, made by `memllm fill-memory`:",
    "",
    "- `triples`: one row per triple of a sentence's `({MEM_WRITE-->h>>r>>t;...})` call, with its lineage",
    "  (`doc_id`, `doc_index`, `title`, `sent_id`, `triple_index`) and the sentence the model read.",
    "",
    "Load them into a memory with `memllm memory build --from OUT_DIR/triples --memory-path DIR`.",
]


def run(cfg: FillConfig, command: str | None = None) -> dict:
    """Run the job; return the counters (with `_elapsed_seconds`). Raises `InputError` for unusable input."""
    files = match_files(cfg)
    if not FileSystems.exists(cfg.output):
        FileSystems.mkdirs(cfg.output)
    clear_previous_output(cfg.output, OWN_TABLES)
    state = [f.path for f in files] + model_files(cfg.adapter) + model_files(cfg.model)
    resume_dir = prepare_resume(cfg.output, fingerprint(state, None, cfg.result_options()), cfg.resume)
    log.info("memllm fill-memory: %d input file(s) → %s", len(files), cfg.output)
    for f in files:
        log.info("  %s (%s, %s, split %s)", f.path, f.fmt, f.source, f.split)

    started = time.time()
    with beam.Pipeline(options=PipelineOptions(cfg.beam_args)) as p:
        build_pipeline(p, files, cfg, resume_dir)
    clear_spill(cfg.output, OWN_TABLES)
    elapsed = time.time() - started

    with FileSystems.open(FileSystems.join(cfg.output, "stats.json")) as f:
        stats = json.loads(f.read())
    splits = sorted({f.split for f in files})
    tables = {TABLE: [s for s in splits if f"{TABLE}.{s}.rows" in stats]}
    tables = {t: s for t, s in tables.items() if s}
    card = render_card(tables, stats, command or _command_line(), cfg.options(), about=CARD_ABOUT)
    with FileSystems.create(FileSystems.join(cfg.output, "README.md")) as f:
        f.write(card.encode("utf-8"))
    stats["_elapsed_seconds"] = round(elapsed, 1)
    return stats


def summary_table(stats: dict, out: str) -> str:
    """A closing table of the run's counts, with the two balances that must hold."""
    records, valid = stats.get("input.records", 0), stats.get("documents.valid", 0)
    read_rejected = stats.get("validate.rejected", 0) + stats.get("read_text.rejected", 0)
    filled, fill_rejected = stats.get("fill.documents", 0), stats.get("fill.rejected", 0)
    sentences, elapsed = stats.get("fill.sentences", 0), stats.get("_elapsed_seconds", 0)
    rows = [
        ("input records", f"{records:,}"),
        ("  valid documents", f"{valid:,}"),
        ("  rejected (dead letters)", f"{read_rejected:,}"),
        ("damaged JSON regions", f"{stats.get('input.json_errors', 0):,}"),
        ("documents decoded", f"{filled:,}"),
        ("  rejected (dead letters)", f"{fill_rejected:,}"),
        ("sentences", f"{sentences:,}"),
        ("  with at least one triple", f"{stats.get('fill.sentences_with_triples', 0):,}"),
        ("triples", f"{stats.get('fill.triples', 0):,}"),
        ("chunks (of them resumed)", f"{stats.get('fill.chunks', 0):,} ({stats.get('resume.chunks_reused', 0):,})"),
        ("sentences/s (whole run)", f"{sentences / elapsed:,.1f}" if elapsed else "-"),
    ]
    checks = [
        ("records in = valid + rejected", records == valid + read_rejected),
        ("valid = decoded + rejected", valid == filled + fill_rejected),
    ]
    rows += [(name, "ok" if ok else "MISMATCH") for name, ok in checks]
    width = max(len(r[0]) for r in rows)
    lines = [f"{name.ljust(width)}  {value:>15}" for name, value in rows]
    lines.append(f"output: {out}  ({elapsed} s)")
    return "\n".join(lines)


__all__ = [
    "SECTIONS",
    "ExtractTriples",
    "ExtractTriplesFn",
    "FillConfig",
    "ReadTexts",
    "TextBatch",
    "TextDocument",
    "build_pipeline",
    "run",
    "summary_table",
    "triple_rows",
]
