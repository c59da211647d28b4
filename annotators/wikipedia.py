"""The Wikipedia path per article: raw text → spaCy sentences, tokens and NER → linked mentions → `Document`s.

`WikipediaAnnotator.annotate` takes a batch of `Article`s and yields, in input order, either the
article's documents or an `ArticleError` (empty or non-string text, text over the size cap, a failure
while annotating): a bad article never stops the batch. Texts go through `nlp.pipe` in batches; the KB is
anything answering `annotators.kb.KBLookups` (the in-memory `KnowledgeBase`, or the memory-mapped
`annotators.kb_index.KBIndex` the pipeline uses), asked by key and id only.

Per article: the lead section (or full text, `AnnotationConfig.sections`) is tokenized and split into
sentences; sentences are grouped into documents of at most `max_words` words (`#k` ids when split);
mentions are detected and linked per document (`annotators.linking`); mentions with the same KB id form
one entity; relations are every KB fact between two entities of the document (DocRED-style distant
supervision). Evidence rule: the first sentence that mentions both entities, else the sentence at which
both have first been mentioned (the later first mention; `annotators.evidence.heuristic_evidence`'s
rule). One sentence per fact because the memory-write builder writes a fact at each evidence sentence:
the first co-occurrence is where the text states the fact, and a fact spread over two sentences (a
pronoun in the second) is written once, where the reader has seen both arguments.

Not done here: pronoun coreference, relation classification (a KB fact is asserted whenever both
entities occur, as in DocRED's distant data), the LLM evidence judge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from memllm.annotators.articles import SECTIONS, article_text, chunk_sentences
from memllm.annotators.kb import KBLookups, alias_key
from memllm.annotators.linking import Linker, LinkingConfig, SpanMention
from memllm.annotators.nlp import load_nlp
from memllm.schemas.article import Article
from memllm.schemas.document import Document, Entity, Mention, Relation

__all__ = ["AnnotationConfig", "Article", "ArticleError", "WikipediaAnnotator", "load_nlp"]


@dataclass(frozen=True)
class AnnotationConfig:
    sections: str = "lead"  # "lead" | "full"
    max_words: int = 512  # per document; DocRED documents have ~200 words, at most ~500
    max_chars: int = 1_000_000  # longer (selected) texts are rejected: spaCy's own default limit
    batch_size: int = 64  # texts per nlp.pipe batch
    fuzzy: bool = True
    fuzzy_threshold: float = 90.0  # rapidfuzz ratio, 0-100
    fuzzy_min_chars: int = 5
    title_bonus: float = 3.0
    partial_names: bool = True
    keep_unlinked: bool = True  # unlinked NER mentions stay in the document as entities without kb_id

    def __post_init__(self):
        if self.sections not in SECTIONS:
            raise ValueError(f"sections must be one of {', '.join(SECTIONS)}, not {self.sections!r}")
        if self.max_words < 1 or self.max_chars < 1 or self.batch_size < 1:
            raise ValueError("max_words, max_chars and batch_size must be positive")
        if not 0 <= self.fuzzy_threshold <= 100:
            raise ValueError(f"fuzzy_threshold is a rapidfuzz score in [0, 100], not {self.fuzzy_threshold}")

    def linking(self) -> LinkingConfig:
        return LinkingConfig(
            fuzzy=self.fuzzy,
            fuzzy_threshold=self.fuzzy_threshold,
            fuzzy_min_chars=self.fuzzy_min_chars,
            title_bonus=self.title_bonus,
            partial_names=self.partial_names,
        )


class ArticleError(ValueError):
    """An article that gives no documents; `kind` is a short counter name, the message the reason."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


class WikipediaAnnotator:
    """Annotates articles against one KB. Build once per worker: it holds the spaCy model."""

    def __init__(self, kb: KBLookups, config: AnnotationConfig = AnnotationConfig(), nlp=None):
        self.kb = kb
        self.config = config
        self.nlp = nlp if nlp is not None else load_nlp()
        self.nlp.max_length = max(self.nlp.max_length, config.max_chars + 1)
        self.linker = Linker(kb, self.nlp, config.linking())
        self.counts: Counter = Counter()

    def _text(self, article: Article) -> str:
        text = article.text
        if not isinstance(text, str):
            raise ArticleError("not_string", f"text is a {type(text).__name__}, not a string")
        if not text.strip():
            raise ArticleError("empty", "empty text")
        selected = article_text(text, self.config.sections)
        if not selected:
            raise ArticleError("empty", f"no prose in the {self.config.sections} section")
        if len(selected) > self.config.max_chars:
            raise ArticleError(
                "too_long", f"{len(selected):,} characters to annotate, over the cap of {self.config.max_chars:,}"
            )
        return selected

    def annotate(
        self, articles: Sequence[Article], source: str = "wikipedia", split: str = "train"
    ) -> Iterator[tuple[Article, list[Document] | ArticleError]]:
        """One (article, documents or error) per input article, in input order."""
        checked: list[str | ArticleError] = []
        for article in articles:
            try:
                checked.append(self._text(article))
            except ArticleError as e:
                checked.append(e)
        parsed = self.nlp.pipe((t for t in checked if isinstance(t, str)), batch_size=self.config.batch_size)
        for article, text in zip(articles, checked):
            self.counts["articles"] += 1
            result: list[Document] | ArticleError
            if isinstance(text, ArticleError):
                result = text
            else:
                doc = next(parsed)
                try:
                    result = self._documents(article, doc, source, split)
                except Exception as e:  # a bug on one article must not lose the batch: dead-letter it
                    result = ArticleError("failed", f"annotation failed: {type(e).__name__}: {e}")
            if isinstance(result, ArticleError):
                self.counts["articles_rejected"] += 1
                self.counts[f"rejected_{result.kind}"] += 1
            yield article, result

    # -- one article --------------------------------------------------------------------------------
    def _documents(self, article: Article, doc, source: str, split: str) -> list[Document]:
        counts = self.counts
        sents: list[list[str]] = []
        sent_of: list[int] = [-1] * len(doc)  # token → sentence (-1: whitespace)
        pos: list[int] = [-1] * len(doc)  # token → position in its sentence's token list
        for sent in doc.sents:
            tokens: list[str] = []
            for tok in sent:
                if not tok.is_space:
                    sent_of[tok.i] = len(sents)
                    pos[tok.i] = len(tokens)
                    tokens.append(tok.text)
            if tokens:
                sents.append(tokens)
        if not sents:
            raise ArticleError("empty", "no tokens")
        words = [len(s) for s in sents]
        counts["words"] += sum(words)
        counts["sentences"] += len(sents)

        by_sentence: list[list[SpanMention]] = [[] for _ in sents]
        for m in self.linker.detect(doc):
            last = m.end - 1
            while last > m.start and pos[last] < 0:
                last -= 1
            if pos[m.start] < 0 or sent_of[m.start] != sent_of[last]:
                counts["mentions_cross_sentence"] += 1  # a span over a sentence break: not a DocRED mention
                continue
            m.end = last + 1
            by_sentence[sent_of[m.start]].append(m)

        title = article.title if isinstance(article.title, str) else ""
        title_ids = self.linker.title_candidates(title) if title else ()
        chunks = chunk_sentences(words, self.config.max_words)
        documents = []
        for k, chunk in enumerate(chunks):
            doc_id = article.id if len(chunks) == 1 else f"{article.id}#{k}"
            mentions = [m for s in chunk for m in by_sentence[s]]
            self.linker.link(mentions, title_ids)
            chunk_sents = [sents[s] for s in chunk]
            documents.append(
                self._document(doc_id, article, source, split, chunk_sents, chunk.start, mentions, sent_of, pos)
            )
        counts["documents"] += len(documents)
        return documents

    def _document(self, doc_id, article, source, split, sents, first_sent, mentions, sent_of, pos) -> Document:
        counts = self.counts
        groups: dict[tuple, list[SpanMention]] = {}
        for m in mentions:
            counts["mentions"] += 1
            counts[f"mentions_{m.how}"] += 1
            if m.kb_id is None and not self.config.keep_unlinked:
                continue
            key = ("kb", m.kb_id) if m.kb_id is not None else ("text", alias_key(m.text))
            groups.setdefault(key, []).append(m)
        entities: list[Entity] = []
        index: dict[str, int] = {}
        for (kind, key), group in groups.items():
            types = Counter(m.type for m in group)
            etype = max(sorted(types), key=lambda t: (types[t], t != "MISC"))
            entities.append(
                Entity(
                    [
                        Mention(
                            " ".join(m.text.split()), sent_of[m.start] - first_sent, pos[m.start], pos[m.end - 1] + 1
                        )
                        for m in group
                    ],
                    etype,
                    key if kind == "kb" else None,
                )
            )
            if kind == "kb":
                index[key] = len(entities) - 1
        counts["entities"] += len(entities)
        counts["entities_linked"] += len(index)
        relations = []
        sent_sets = [{m.sent_id for m in e.mentions} for e in entities]
        for kb_id, h in index.items():
            for prop, obj in self.kb.facts(kb_id):
                t = index.get(obj)
                if t is None or t == h:
                    continue
                both = sent_sets[h] & sent_sets[t]
                evidence = min(both) if both else max(min(sent_sets[h]), min(sent_sets[t]))
                relations.append(Relation(h, t, prop, [evidence]))
        relations.sort(key=lambda r: (r.h, r.t, r.r))
        counts["relations"] += len(relations)
        return Document(
            doc_id=doc_id,
            doc_index=article.index,
            source=source,
            split=split,
            title=article.title if isinstance(article.title, str) else "",
            sents=sents,
            entities=entities,
            relations=relations,
        )
