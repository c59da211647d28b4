"""Mention detection and entity linking over a spaCy `Doc`: spans → KB ids (Wikidata items or time keys).

Mentions come from three sources, merged without overlap (longest first; at equal length a date beats an
alias match, which beats a bare NER span):
- alias matches: a spaCy `PhraseMatcher` (case-insensitive) over every KB name, plus NER spans whose text
  (minus a leading `the` or trailing `'s`) is a KB name. A lower-case match counts only where the text
  has that exact case in the KB (`manganese`), and names that are stop words (`it`, `us`) only as
  upper-case acronyms (`US`), so pronouns and function words never become entities;
- dates (`annotators.dates`) → time keys at their precision; a bare year inside a longer non-date NER
  span (`2002 Winter Olympics`) is not a date mention;
- the remaining spaCy NER spans (except ORDINAL), linked below or kept unlinked.

Linking, per document (`link`):
1. a span with one KB candidate, and a date whose time value occurs in the KB, are linked as they are;
   the title entity is the candidate of the article title (without its parenthesised qualifier);
2. a span without candidates may be a shorter form of an entity already linked in the document or of the
   title entity (`Obama` for `Barack Obama`: the mention's words end one of its names, or, for a
   non-person, begin it), else a near-miss of a KB name (rapidfuzz `ratio` ≥ `fuzzy_threshold` on alias
   keys, among names sharing a word prefix, with the same digits: `2002 Winter Olympics` never links to
   `2006 …`);
3. a span with several candidates (same name, or a short form as well as a KB name) takes the one with
   the most facts with the document's other entities: weight 2 for entities already linked, 1 for other
   spans' candidates, plus a bonus for the title entity; ties go to a candidate whose label is the
   mention, then to the better connected entity, then to the smaller id (deterministic).
Not done: coreference of pronouns and common nouns (`he`, `the company`), nested mentions (the longest span
wins), entity types from the KB (types come from NER).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from memllm.annotators.dates import find_dates
from memllm.annotators.kb import KnowledgeBase, alias_key, is_time_key
from rapidfuzz import fuzz, process

# spaCy OntoNotes labels → DocRED entity types.
NER_TYPES = {
    "PERSON": "PER",
    "ORG": "ORG",
    "GPE": "LOC",
    "LOC": "LOC",
    "FAC": "LOC",
    "NORP": "MISC",
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "LAW": "MISC",
    "LANGUAGE": "MISC",
    "PRODUCT": "MISC",
    "DATE": "TIME",
    "TIME": "TIME",
    "CARDINAL": "NUM",
    "QUANTITY": "NUM",
    "MONEY": "NUM",
    "PERCENT": "NUM",
}
_DIGITS = re.compile(r"\d+")
_PAREN = re.compile(r"\s*\([^)]*\)\s*$")
_DATE_LABELS = frozenset({"DATE", "TIME"})
_POSSESSIVE = frozenset({"'s", "\u2019s", "'", "\u2019"})


@dataclass(frozen=True)
class LinkingConfig:
    fuzzy: bool = True
    fuzzy_threshold: float = 90.0  # rapidfuzz ratio (0-100) on alias keys
    fuzzy_min_chars: int = 5  # shorter keys are not fuzzy-matched: one edit changes them too much
    fuzzy_max_candidates: int = 20000  # names compared per span at most
    title_bonus: float = 3.0
    partial_names: bool = True


@dataclass
class SpanMention:
    """A detected span of doc tokens [start, end) and what it links to."""

    start: int
    end: int
    text: str
    source: str  # "alias" | "date" | "ner"
    ner: str | None  # spaCy label of the NER span it came from or overlaps
    candidates: tuple[str, ...] = ()
    time: str | None = None  # time key of a date span
    bare: tuple[str, ...] = ()  # candidates of the span without a leading "the" (then also in `candidates`)
    kb_id: str | None = None
    how: str = "unlinked"  # "exact" | "date" | "partial" | "fuzzy" | "context" | "unlinked"

    @property
    def type(self) -> str:
        """DocRED type: TIME for dates and time values, else from the NER label (MISC without one)."""
        if self.source == "date" or is_time_key(self.kb_id or ""):
            return "TIME"
        return NER_TYPES.get(self.ner or "", "MISC")


def title_name(title: str) -> str:
    """`Willi Schneider (skeleton racer)` → `Willi Schneider`."""
    return _PAREN.sub("", title).strip() or title


def _words(text: str) -> tuple[str, ...]:
    return tuple(k for k in (alias_key(w) for w in re.findall(r"\w[\w'.-]*", text)) if k)


class Linker:
    """Detects and links mentions; built once per worker (the PhraseMatcher holds every KB name)."""

    def __init__(self, kb: KnowledgeBase, nlp, config: LinkingConfig = LinkingConfig()):
        from spacy.matcher import PhraseMatcher

        self.kb = kb
        self.config = config
        self.stop_words = frozenset(w.casefold() for w in nlp.Defaults.stop_words)
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        names = sorted({name for _, name in kb.aliases() if self._matchable(name)})
        # One key for all patterns: the span's own alias key finds the candidates afterwards.
        self.matcher.add("KB", list(nlp.tokenizer.pipe(names)))
        self._fuzzy_choices: list[str] | None = None
        self._fuzzy_blocks: dict[str, list[int]] = {}

    def _matchable(self, name: str) -> bool:
        key = alias_key(name)
        if not key:
            return False
        if key in self.stop_words:
            return name.isupper() and len(name) > 1  # acronyms only: US, not us/It/He
        return True

    # -- detection ----------------------------------------------------------------------------------
    def detect(self, doc) -> list[SpanMention]:
        """Non-overlapping candidate mentions of the whole doc, in text order, with their KB candidates."""
        kb = self.kb
        spans: list[tuple[int, int, int, SpanMention]] = []  # (-(length), priority, start, mention)
        ents = [e for e in doc.ents if e.label_ in NER_TYPES]
        ent_label = {}
        for e in ents:
            for i in range(e.start, e.end):
                ent_label[i] = e.label_

        def add(start: int, end: int, priority: int, mention: SpanMention) -> None:
            spans.append((start - end, priority, start, mention))

        for _, start, end in self.matcher(doc):
            span = doc[start:end]
            text = span.text
            key = alias_key(text)
            if not (kb.is_exact_form(text) or (key not in self.stop_words and not text.islower())):
                continue
            candidates, bare = kb.candidates(key), ()
            if end - start > 1 and doc[start].lower_ == "the":
                # "the United States" and "United States" may be different KB entries (Wikidata aliases
                # come with and without the article): both compete, context decides.
                bare = kb.candidates(alias_key(doc[start + 1 : end].text))
                candidates = tuple(dict.fromkeys(candidates + bare))
            if candidates:
                add(start, end, 1, SpanMention(start, end, text, "alias", ent_label.get(start), candidates, bare=bare))
        date_tokens: set[int] = set()
        for d in find_dates(doc.text):
            span = doc.char_span(d.start, d.end, alignment_mode="expand")
            if span is None:
                continue
            label = ent_label.get(span.start)
            if d.precision == 9 and label is not None and label not in _DATE_LABELS:
                # A year inside a longer name ("2002 Winter Olympics") or a count ("1500 people").
                whole = next(e for e in ents if e.start <= span.start < e.end)
                if whole.end - whole.start > span.end - span.start:
                    continue
            candidates = kb.candidates(alias_key(span.text))
            date_tokens.update(range(span.start, span.end))
            add(
                span.start, span.end, 0, SpanMention(span.start, span.end, span.text, "date", "DATE", candidates, d.key)
            )
        for e in ents:
            start, end = e.start, e.end
            if e.label_ in _DATE_LABELS and any(i in date_tokens for i in range(start, end)):
                continue  # "August 20, 1920 – January 16, 1992": the dates inside are the mentions
            if end - start > 1 and doc[start].lower_ == "the":
                start += 1
            if end - start > 1 and doc[end - 1].text in _POSSESSIVE:
                end -= 1
            text = doc[start:end].text
            candidates = kb.candidates(alias_key(text))
            source, priority = ("alias", 1) if candidates else ("ner", 3)
            add(start, end, priority, SpanMention(start, end, text, source, e.label_, candidates))
        spans.sort(key=lambda s: s[:3])
        taken = bytearray(len(doc))
        chosen = []
        for _, _, _, m in spans:
            if any(taken[m.start : m.end]):
                continue
            taken[m.start : m.end] = b"\x01" * (m.end - m.start)
            chosen.append(m)
        chosen.sort(key=lambda m: m.start)
        return chosen

    # -- linking ------------------------------------------------------------------------------------
    def title_candidates(self, title: str) -> tuple[str, ...]:
        keys = dict.fromkeys([alias_key(title_name(title)), alias_key(title)])
        return tuple(dict.fromkeys(c for k in keys for c in self.kb.candidates(k)))

    def link(self, mentions: list[SpanMention], title_ids: tuple[str, ...] = ()) -> str | None:
        """Set `kb_id`/`how` on every mention of one document; returns the title entity chosen."""
        kb, cfg = self.kb, self.config
        fixed: set[str] = set()
        pending: list[SpanMention] = []
        for m in mentions:
            m.kb_id, m.how = None, "unlinked"
            if m.time is not None and (kb.has_time(m.time) or not m.candidates):
                m.kb_id, m.how = m.time, "date"
            elif len(m.candidates) == 1:
                m.kb_id, m.how = m.candidates[0], "exact"
            else:
                pending.append(m)
                continue
            fixed.add(m.kb_id)
        everything = fixed.union(c for m in pending for c in m.candidates)
        title = self._choose(title_ids, fixed, everything) if title_ids else None
        if title is not None:
            fixed.add(title)
        doc_names = self._name_index(fixed, title)
        for m in mentions:
            if m.how == "exact" and cfg.partial_names and m.ner == "PERSON":
                # A surname that is also some other entity's name: the document's own person competes.
                short = self._partial(m, doc_names)
                if short and short != m.kb_id:
                    m.candidates = (m.kb_id, short)
                    fixed.discard(m.kb_id)
                    pending.append(m)
        for m in pending:
            if not m.candidates:
                short = self._partial(m, doc_names) if cfg.partial_names else None
                if short is not None:
                    m.kb_id, m.how = short, "partial"
                    continue
                fuzzy = self._fuzzy(m.text) if cfg.fuzzy and m.time is None else None
                if fuzzy is not None:
                    m.kb_id, m.how = fuzzy, "fuzzy"
                elif m.time is not None:
                    m.kb_id, m.how = m.time, "date"
                continue
            others = everything.difference(m.candidates)
            key = alias_key(m.text)
            m.kb_id = max(
                sorted(m.candidates, key=lambda c: (len(c), c)),  # max keeps the first best: the smaller id
                key=lambda c: (
                    cfg.title_bonus * (c == title) + 2 * len(kb.neighbours(c) & fixed) + len(kb.neighbours(c) & others),
                    alias_key(kb.label(c) or "") == key,
                    len(kb.neighbours(c)),
                ),
            )
            m.how = "context"
        for m in mentions:
            if m.bare and m.kb_id in m.bare and m.kb_id not in self.kb.candidates(alias_key(m.text)):
                m.start += 1  # the mention is the entity's name, as DocRED marks it: without the article
                m.text = m.text.split(None, 1)[1]
        return title

    def _choose(self, ids: Iterable[str], fixed: set[str], everything: set[str]) -> str | None:
        ids = list(ids)
        if len(ids) <= 1:
            return ids[0] if ids else None
        kb = self.kb
        return max(
            sorted(ids, key=lambda c: (len(c), c)),  # max keeps the first best: the smaller id
            key=lambda c: (
                2 * len(kb.neighbours(c) & fixed) + len(kb.neighbours(c) & everything),
                len(kb.neighbours(c)),
            ),
        )

    def _name_index(self, ids: Iterable[str], title: str | None) -> list[tuple[str, tuple[str, ...]]]:
        """(id, name words) for every name of the document's linked items, the title entity first."""
        order = ([title] if title else []) + sorted(
            (i for i in ids if i != title and i[:1] == "Q"), key=lambda c: (len(c), c)
        )
        return [(i, w) for i in order for name in self.kb.names(i) if len(w := _words(name)) > 1]

    def _partial(self, m: SpanMention, doc_names: list[tuple[str, tuple[str, ...]]]) -> str | None:
        """The document entity whose name starts or ends with the mention's words (`Obama`), if any.

        A person is referred to by surname, almost never by first name alone (`Paul` is more often another
        Paul), so for PERSON mentions only the end of a name counts; organisations also by their start.
        """
        if not m.text[:1].isupper() or m.ner not in (None, "PERSON", "ORG", "GPE", "FAC", "LOC", "NORP"):
            return None
        words = _words(m.text)
        n = len(words)
        if not n or alias_key(m.text) in self.stop_words:
            return None
        for entity_id, name in doc_names:
            if len(name) > n and (name[-n:] == words or (m.ner != "PERSON" and name[:n] == words)):
                return entity_id
        return None

    def _fuzzy(self, text: str) -> str | None:
        key = alias_key(text)
        if len(key) < self.config.fuzzy_min_chars:
            return None
        if self._fuzzy_choices is None:
            self._build_fuzzy()
        blocks = {w[:3] for w in _words(text) if len(w) >= 3 and w not in self.stop_words}
        idx = sorted({i for b in blocks for i in self._fuzzy_blocks.get(b, ())})[: self.config.fuzzy_max_candidates]
        if not idx:
            return None
        choices = [self._fuzzy_choices[i] for i in idx]
        digits = _DIGITS.findall(key)
        for choice, _score, _ in process.extract(
            key, choices, scorer=fuzz.ratio, score_cutoff=self.config.fuzzy_threshold, limit=5
        ):
            if _DIGITS.findall(choice) == digits:
                candidates = self.kb.candidates(choice)
                return candidates[0] if len(candidates) == 1 else None
        return None

    def _build_fuzzy(self) -> None:
        blocks: dict[str, list[int]] = defaultdict(list)
        choices = sorted(self.kb.alias_keys())
        words_of = {}
        for _, name in self.kb.aliases():
            words_of.setdefault(alias_key(name), set()).update(_words(name))
        for i, key in enumerate(choices):
            for w in sorted(words_of.get(key, ())):
                if len(w) >= 3 and w not in self.stop_words:
                    blocks[w[:3]].append(i)
        self._fuzzy_choices = choices
        self._fuzzy_blocks = {b: sorted(set(v)) for b, v in blocks.items()}
