"""Wikipedia articles in Beam: read in chunks, annotated into `DocumentBatch`es against the KB.

Input is HF `wikimedia/wikipedia` Parquet (`id, url, title, text`), or JSON lines / a JSON array of objects
with the same fields (handy for a few articles of one's own; the shipped sample is one). As on the DocRED
path (`pipeline.docred_source`) the work is split in two:
1. `IndexArticleFile` cuts a file into chunks of `CHUNK_ARTICLES` articles: from the Parquet footer (row
   groups and their row counts, no data read) or by one streaming scan of a JSON file;
2. after a `Reshuffle` of the chunk descriptors, `AnnotateArticleChunk` reads its articles and runs
   `annotators.wikipedia.WikipediaAnnotator` on them (spaCy through `nlp.pipe`, linking, relations): the
   costly step, spread over every worker. The spaCy pipeline and the KB are loaded once per worker
   process (`shared_nlp`, `pipeline.kb_source.shared_kb`).
An article that cannot be annotated (empty or non-string text, too long, a record that is not an object,
or an error no rule foresaw) is a dead letter with the reason; the rest of its chunk goes on. A missing
spaCy model is the user's to fix, not the articles': `match_article_inputs` refuses the run before it
starts. `doc_index` is the article's position in its file; an article split into several documents keeps
it, and its `doc_id` gets `#k`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from memllm.annotators.docred import Record, scan_json_records
from memllm.annotators.nlp import model_error
from memllm.annotators.wikipedia import AnnotationConfig, ArticleError, WikipediaAnnotator, load_nlp
from memllm.pipeline.batches import DocumentBatch
from memllm.pipeline.counting import COUNTS, DEAD, CountingDoFn
from memllm.pipeline.docred_source import InputFile, json_format, match_inputs
from memllm.pipeline.errors import InputError
from memllm.pipeline.kb_source import shared_kb
from memllm.pipeline.resume import ChunkCache, run_or_replay
from memllm.schemas.article import Article

log = logging.getLogger("memllm")

ARTICLE_COLUMNS = ("id", "url", "title", "text")
CHUNK_ARTICLES = 50  # ~1 s of spaCy on lead sections; enough chunks to keep every worker busy


def _article_format(path: str) -> str:
    if path.endswith(".parquet"):
        with FileSystems.open(path, compression_type="uncompressed") as f:
            try:
                names = pq.ParquetFile(f).schema_arrow.names
            except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a non-Parquet file
                raise InputError(f"{path}: not a Parquet file ({e})") from None
        if "text" not in names:
            raise InputError(f"{path}: no 'text' column (has {', '.join(names)}); expected {ARTICLE_COLUMNS}")
        return "parquet"
    return json_format(path)


def match_article_inputs(patterns: list[str], split: str | None, source: str = "wikipedia") -> list[InputFile]:
    """Expand paths/globs of article files and check each, and that a spaCy model to annotate them with is
    installed, before the pipeline starts (one-line errors)."""
    if error := model_error():
        raise InputError(error)
    return match_inputs(patterns, split, source, detect=_article_format)


@dataclass(frozen=True)
class ArticleChunk:
    file: InputFile
    first_index: int
    count: int
    row_group: int = -1  # Parquet: the row group, and the chunk's first row inside it
    row_start: int = 0
    byte_start: int = 0  # JSON: the chunk's byte range
    byte_end: int = 0


class IndexArticleFile(CountingDoFn):
    """InputFile → ArticleChunks (+ dead letters for damaged JSON regions)."""

    def __init__(self, chunk_articles: int = CHUNK_ARTICLES):
        self.chunk_articles = chunk_articles

    def process(self, file: InputFile):
        n = self.chunk_articles
        if file.fmt == "parquet":
            with FileSystems.open(file.path, compression_type="uncompressed") as f:
                meta = pq.ParquetFile(f).metadata
            index = 0
            for rg in range(meta.num_row_groups):
                rows = meta.row_group(rg).num_rows
                for start in range(0, rows, n):
                    yield ArticleChunk(file, index + start, min(n, rows - start), row_group=rg, row_start=start)
                index += rows
        else:
            index, start, end, first = 0, None, None, 0
            with FileSystems.open(file.path, compression_type="uncompressed") as f:
                for rec in scan_json_records(f, file.fmt):
                    if not isinstance(rec, Record):
                        if start is not None:
                            yield ArticleChunk(file, first, index - first, byte_start=start, byte_end=end)
                            start = None
                        self.count("input.json_errors")
                        yield self.reject(
                            f"{file.path}@{rec.byte_start}", rec.text, "read", f"{rec.reason} at byte {rec.byte_start}"
                        )
                        continue
                    if start is None:
                        start, first = rec.byte_start, index
                    end = rec.byte_end
                    index += 1
                    if index - first >= n:
                        yield ArticleChunk(file, first, index - first, byte_start=start, byte_end=end)
                        start = None
            if start is not None:
                yield ArticleChunk(file, first, index - first, byte_start=start, byte_end=end)
        self.count("input.records", index)
        log.info("indexed %s: %d articles", file.path, index)


def read_chunk_records(chunk: ArticleChunk) -> list[object]:
    """The raw records (dicts, or whatever a JSON file holds) of a chunk, in file order."""
    file = chunk.file
    with FileSystems.open(file.path, compression_type="uncompressed") as f:
        if file.fmt == "parquet":
            pf = pq.ParquetFile(f)
            columns = [c for c in ARTICLE_COLUMNS if c in pf.schema_arrow.names]
            table = pf.read_row_group(chunk.row_group, columns=columns)
            return table.slice(chunk.row_start, chunk.count).to_pylist()
        f.seek(chunk.byte_start)
        return [rec.value for rec in scan_json_records(f, file.fmt, chunk.byte_start, chunk.byte_end)]


def to_article(record: object, file: InputFile, index: int) -> Article:
    """A record as an `Article`; the annotator judges the text (empty, not a string, too long)."""
    if not isinstance(record, dict):
        raise ArticleError(
            "not_object", f"an article must be an object with {', '.join(ARTICLE_COLUMNS)}, got {type(record).__name__}"
        )
    article_id = record.get("id")
    return Article(
        id=str(article_id) if article_id not in (None, "") else f"{file.stem}-{index:06d}",
        url=str(record.get("url") or ""),
        title=str(record.get("title") or ""),
        text=record.get("text"),
        index=index,
    )


_nlp = None
_nlp_lock = threading.Lock()


def shared_nlp():
    """The spaCy pipeline, loaded once per worker process."""
    global _nlp
    with _nlp_lock:
        if _nlp is None:
            _nlp = load_nlp()
        return _nlp


class AnnotateArticleChunk(CountingDoFn):
    """ArticleChunk → one DocumentBatch of its articles' documents (+ a dead letter per rejected article)."""

    def __init__(self, kb_dir: str, config: AnnotationConfig, resume_dir: str | None = None):
        self.kb_dir = kb_dir
        self.config = config
        self.resume_dir = resume_dir

    def setup(self) -> None:
        self.annotator = None  # loaded at the first chunk that is not resumed: a resumed run may need none
        self.cache = ChunkCache(self.resume_dir) if self.resume_dir else None

    def process(self, chunk: ArticleChunk):
        """Annotate the chunk, or replay its saved result (`pipeline.resume`): the same outputs and counts."""
        key = f"{chunk.file.path}@{chunk.first_index}+{chunk.count}"
        yield from run_or_replay(self, self.cache, key, lambda: self._annotate_chunk(chunk))

    def _annotator(self) -> WikipediaAnnotator:
        if self.annotator is None:
            self.annotator = WikipediaAnnotator(shared_kb(self.kb_dir), self.config, nlp=shared_nlp())
        return self.annotator

    def _annotate(self, articles: list[Article], split: str):
        """(article, documents or error) for each; a failure no rule foresaw costs only its article."""
        annotator = self._annotator()  # outside the try: a model that does not load stops the run
        counts: Counter = annotator.counts
        before = counts.copy()
        try:
            return list(annotator.annotate(articles, split=split))
        except Exception:  # noqa: BLE001 - isolate the article it came from, below
            pass
        counts.clear()  # the failed attempt counted some of the articles already: count each once
        counts.update(before)
        results = []
        for article in articles:
            before = counts.copy()
            try:
                results += list(annotator.annotate([article], split=split))
            except Exception as e:  # noqa: BLE001 - a bug or an input no rule foresaw: a dead letter
                counts.clear()
                counts.update(before)
                # counted as the annotator counts the failures it catches itself
                counts.update(("articles", "articles_rejected", "rejected_failed"))
                results.append((article, ArticleError("failed", f"annotation failed: {type(e).__name__}: {e}")))
        return results

    def _annotate_chunk(self, chunk: ArticleChunk):
        file = chunk.file
        articles, records, rejected = [], {}, 0
        for k, record in enumerate(read_chunk_records(chunk)):
            index = chunk.first_index + k
            try:
                article = to_article(record, file, index)
            except ArticleError as e:
                rejected += 1
                yield self.reject(f"{file.path}#{index}", record, "annotate", str(e), file.split)
                continue
            articles.append(article)
            records[index] = record
        docs = []
        for article, result in self._annotate(articles, file.split):
            if isinstance(result, ArticleError):
                rejected += 1
                yield self.reject(
                    f"{file.path}#{article.index}", records[article.index], "annotate", str(result), file.split
                )
                continue
            self.count("articles.annotated")
            self.count("documents.valid", len(result))
            self.count(f"documents.{file.split}", len(result))
            docs += result
        counts: Counter = self._annotator().counts
        for name, n in counts.items():
            self.count(f"annotate.{name}", n)
        counts.clear()
        log.info(
            "annotated %s #%d-%d: %d documents, %d rejected",
            file.stem,
            chunk.first_index,
            chunk.first_index + chunk.count - 1,
            len(docs),
            rejected,
        )
        if docs:
            yield DocumentBatch(f"{file.stem}@{chunk.first_index}", docs)


class ReadWikipedia(beam.PTransform):
    """Article InputFiles → (DocumentBatches, dead letters, counts)."""

    def __init__(
        self,
        files: list[InputFile],
        kb_dir: str,
        config: AnnotationConfig,
        resume_dir: str | None = None,
        chunk_articles: int = CHUNK_ARTICLES,
    ):
        super().__init__()
        self.files = files
        self.kb_dir = kb_dir
        self.config = config
        self.resume_dir = resume_dir
        self.chunk_articles = chunk_articles

    def expand(self, pbegin):
        indexed = (
            pbegin
            | "Files" >> beam.Create(self.files)
            | "Index" >> beam.ParDo(IndexArticleFile(self.chunk_articles)).with_outputs(COUNTS, DEAD, main="chunks")
        )
        annotated = (
            indexed.chunks
            | "SpreadChunks" >> beam.Reshuffle()
            | "Annotate"
            >> beam.ParDo(AnnotateArticleChunk(self.kb_dir, self.config, self.resume_dir))
            .with_output_types(DocumentBatch)
            .with_outputs(COUNTS, DEAD, main="documents")
        )
        dead = (indexed[DEAD], annotated[DEAD]) | "DeadLetters" >> beam.Flatten()
        counts = (indexed[COUNTS], annotated[COUNTS]) | "Counts" >> beam.Flatten()
        return annotated.documents, dead, counts
