"""Mention detection and entity linking over a spaCy `Doc`: spans → KB ids (Wikidata items or time keys).

The linker only looks things up in its KB, by alias key or by id (`annotators.kb.KBLookups`); it never
lists the KB's names. So one code path serves the in-memory `KnowledgeBase` and the memory-mapped
`annotators.kb_index.KBIndex` over all of Wikidata, and building a `Linker` costs nothing.

Mentions come from three sources, merged without overlap (longest first; at equal length a date beats an
alias match, which beats a bare NER span):
- alias matches: token n-grams of the document whose alias key is a KB name, plus NER spans whose text
  (minus a leading `the` or trailing `'s`) is a KB name. The n-grams tried are those of at most
  `max_alias_tokens` tokens (14, the longest dev-KB name found in the dev text; 12 loses a correct fact)
  within one sentence, over no line break, starting and ending on a word or on punctuation that names
  have at an edge (a quote or bracket closed inside the span, a final `!`, `?`, `#`). Their keys (built by
  joining token keys), with those of the NER spans and dates, go to the KB in one `candidates_many` batch
  per document: on Re-DocRED dev 8.4 keys per token, ~1,700 per article, ~60 of them with candidates
  (~1 ms of CPU per article to make and look up in memory; spaCy takes ~16 ms). A hit counts where
  lower-case text has that exact case in the KB (`manganese`, not `salt lake city`), a stop word only as
  an upper-case acronym that is a KB name as written (`US`, not `us` or `It`), so pronouns and function
  words never become entities, and where a candidate's name with that key has the span's words or tokens
  (keys ignore whitespace: `Paris is` is not `Parisis`, `Don't` is `Do n't`).
  Unlike matching the KB's names token by token (a spaCy `PhraseMatcher`, which holds every name), this
  also finds names tokenised otherwise in the text (`8 km` with a no-break space, `I'm Still Alive` for
  `I 'm Still Alive`), and finds no name over a sentence break (the annotator would drop the span) or with
  an unmatched quote or bracket at its edge;
- dates (`annotators.dates`) → time keys at their precision; a bare year inside a longer non-date NER
  span (`2002 Winter Olympics`) is not a date mention;
- the remaining spaCy NER spans (except ORDINAL), linked below or kept unlinked.

Linking, per document (`link`):
1. a span with one KB candidate, and a date whose time value occurs in the KB, are linked as they are;
   the title entity is the candidate of the article title (without its parenthesised qualifier);
2. a span without candidates may be a shorter form of an entity already linked in the document or of the
   title entity (`Obama` for `Barack Obama`: the mention's words end one of its names, or, for a
   non-person, begin it);
3. a span with several candidates (same name, or a short form as well as a KB name) takes the one with
   the most facts with the document's other entities: weight 2 for entities already linked, 1 for other
   spans' candidates, plus a bonus for the title entity; ties go to a candidate whose label is the
   mention, then to the better connected entity, then to the smaller id (deterministic);
4. a span still without an entity may be a near miss of a name in the document's neighbourhood: the names
   of the entities linked so far and of their KB neighbours (not a hub's: over `fuzzy_hub_neighbours`),
   rapidfuzz `ratio` ≥ `fuzzy_threshold` on alias keys, with the same digits (`2002 Winter Olympics`
   never links to `2006 …`), if one neighbourhood entity has the best such name. An entity outside the
   neighbourhood shares no fact with the entities linked otherwise, so it would add no relation: on
   Re-DocRED dev near misses give the same facts as comparing with every name of the KB (+48 / +53
   correct facts on the tuning / held-out halves), with 43 fuzzy links instead of 61 (entity recall
   -0.001); a document with a near miss compares it with ~180 names (median ~115).
Not done: coreference of pronouns and common nouns (`he`, `the company`), nested mentions (the longest span
wins), entity types from the KB (types come from NER).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate, compress

from memllm.annotators.dates import find_dates
from memllm.annotators.kb import KBLookups, alias_key, alias_words, is_time_key, join_token_keys, token_key
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
# Token kinds for the n-grams, ordered so that `<= _END` is where a span may end and `>= _BREAK` needs the
# slow path: a word; a final `!`, `?`, `#`; other punctuation (inside a name only); a space (inside a name
# only: the no-break spaces of `66\xa0km`); a line break (no name goes over it); a quote, an opening and a
# closing bracket (edges only when closed inside the span).
_WORD, _END, _INNER, _SPACE, _BREAK, _QUOTE, _OPEN, _CLOSE = range(8)
_STARTS = frozenset({_WORD, _QUOTE, _OPEN})
_PUNCT_KINDS = {
    **dict.fromkeys("\"'\u2018\u2019\u201c\u201d\u00ab\u00bb", _QUOTE),
    **dict.fromkeys("([{", _OPEN),
    **dict.fromkeys(")]}", _CLOSE),
    **dict.fromkeys("!?#", _END),
}


@dataclass(frozen=True)
class LinkingConfig:
    fuzzy: bool = True
    fuzzy_threshold: float = 90.0  # rapidfuzz ratio (0-100) on alias keys
    fuzzy_min_chars: int = 5  # shorter keys are not fuzzy-matched: one edit changes them too much
    fuzzy_max_candidates: int = 20000  # names of the document's neighbourhood compared at most
    # An entity with more neighbours than this (a country, a big city) does not open its neighbourhood to
    # fuzzy matching: its neighbours say little about the document, and at Wikidata scale they are millions
    # (the dev KB's best connected entity has 297).
    fuzzy_hub_neighbours: int = 2000
    max_alias_tokens: int = 14  # longest token n-gram looked up as a name
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


def _token_kinds(texts: list[str], punct: list[int], space: list[int]) -> list[int]:
    return [
        (_BREAK if "\n" in t else _SPACE) if s else _PUNCT_KINDS.get(t, _INNER) if p else _WORD
        for t, p, s in zip(texts, punct, space)
    ]


def _near_digit(pieces: list[str], i: int) -> bool:
    """Whether token i's key (which has a comma) or the nearest non-empty key on either side has a digit."""
    if any(c.isdigit() for c in pieces[i]):
        return True
    for step in (-1, 1):
        j = i + step
        while 0 <= j < len(pieces) and not pieces[j]:
            j += step
        if 0 <= j < len(pieces) and pieces[j][0 if step > 0 else -1].isdigit():
            return True
    return False


def _sentences(sent_starts: list[int]) -> list[tuple[int, int]]:
    """[start, end) token ranges of the sentences from spaCy's SENT_START column (1: starts a sentence);
    one sentence where the doc has no sentence annotation."""
    starts = [i for i, s in enumerate(sent_starts) if s == 1 or i == 0]
    return list(zip(starts, starts[1:] + [len(sent_starts)]))


def _id_order(entity_id: str) -> tuple[int, str]:
    return (len(entity_id), entity_id)  # Q9 before Q10


def title_name(title: str) -> str:
    """`Willi Schneider (skeleton racer)` → `Willi Schneider`."""
    return _PAREN.sub("", title).strip() or title


def _words(text: str) -> tuple[str, ...]:
    return tuple(k for k in (alias_key(w) for w in re.findall(r"\w[\w'.-]*", text)) if k)


class _NGrams:
    """The alias keys of a document's n-grams (`keys`) and, for a key, its span (`span`). Keys come in
    blocks, one per start token: (index of the block's first key, start token, ends), where ends None
    stands for every edge token (`edges`) from the start on, in order. Spans are made only for the keys
    found in the KB: most are never needed."""

    def __init__(self, edges: list[int]):
        self.keys: list[str] = []
        self.blocks: list[tuple[int, int, list[int] | None]] = []
        self.edges = edges

    def span(self, index: int) -> tuple[int, int]:
        """(start, end) of the span of `keys[index]`."""
        first, start, ends = self.blocks[bisect_right(self.blocks, (index, math.inf)) - 1]
        if ends is not None:
            return start, ends[index - first]
        return start, self.edges[bisect_left(self.edges, start) + index - first] + 1


class Linker:
    """Detects and links mentions against any KB that answers lookups by key and id (`KnowledgeBase`,
    `KBIndex`): it never lists the KB's names, so building one is free and it pickles with its KB."""

    def __init__(self, kb: KBLookups, nlp, config: LinkingConfig = LinkingConfig()):
        self.kb = kb
        self.config = config
        self.stop_words = frozenset(w.casefold() for w in nlp.Defaults.stop_words)
        self.tokenizer = nlp.tokenizer

    def _acceptable(self, text: str, key: str) -> bool:
        """Whether a span whose key is a KB name counts as a mention of it.

        Text that is all lower case only where a KB name has exactly that case (`manganese`, not `salt lake
        city`); a stop word only as an upper-case acronym that is a KB name as written (`US`, not `us`/`It`).
        """
        if key in self.stop_words:
            return len(key) > 1 and text.isupper() and self.kb.is_exact_form(text)
        return not text.islower() or self.kb.is_exact_form(text)

    def _spelt_as_name(self, text: str, key: str, candidates: tuple[str, ...], tokens: list[str]) -> bool:
        """Whether a candidate has a name with the key and the words or the tokens of `text` (the span's
        `tokens`). Keys ignore whitespace, so `Paris is` has the key of `Parisis` but neither its words nor
        its tokens, while `Do n't believe` has the tokens of `Don't believe`, `$856 m` those of `$856m`."""
        words = alias_words(text)
        names = [name for c in candidates for name in self.kb.names(c)]
        if any(alias_words(name) == words and alias_key(name) == key for name in names):
            return True
        # Rarely reached (a contraction, a unit): tokenise the names as the span's text was tokenised.
        keys = [k for k in map(token_key, tokens) if k]
        return any(
            alias_key(name) == key and [k for t in self.tokenizer(name) if (k := token_key(t.text))] == keys
            for name in names
        )

    # -- detection ----------------------------------------------------------------------------------
    def _ngrams(self, texts: list[str], kinds: list[int], sent_starts: list[int]) -> _NGrams:
        """The alias keys of the token spans that may be names: at most `max_alias_tokens` tokens within one
        sentence, over no line break, starting and ending on a word. Punctuation is an edge only where names
        have it: a quote or bracket closed inside the span (`"Stop and Frisk"`, `USS Israel (DD-98)`), a
        final `!`, `?` or `#` (`Yahoo!`, `C#`); never a lone trailing quote (`Bangladesh'`)."""
        # A span's key is its tokens' keys joined (whitespace is no part of a key): one normalisation per
        # distinct token, not one per span.
        cache: dict[str, str] = {}
        pieces = [cache.get(t) or cache.setdefault(t, token_key(t)) for t in texts]
        opens = ["(" in t or "[" in t for t in texts]  # `TSKGV(Turkish`: a bracket opened inside a token
        n = len(texts)
        # Index of the next token, at or after each one, that is a quote, bracket or line break (spans
        # before it take the plain path below), and of the next comma that may be a thousands separator
        # (spans before it need no `join_token_keys`).
        special, commas = [n] * (n + 1), [n] * (n + 1)
        for i in range(n - 1, -1, -1):
            special[i] = i if kinds[i] >= _BREAK or opens[i] else special[i + 1]
            commas[i] = i if "," in pieces[i] and _near_digit(pieces, i) else commas[i + 1]
        edge = [k <= _END for k in kinds]  # a word or a final mark: a span may end there
        grams = _NGrams([i for i, e in enumerate(edge) if e])
        keys, blocks = grams.keys, grams.blocks
        longest = self.config.max_alias_tokens
        for first, last in _sentences(sent_starts):
            for i in range(first, last):
                k = kinds[i]
                if k not in _STARTS:
                    continue
                stop = min(last, i + longest)
                if k == _WORD and special[i] >= stop and commas[i] >= stop:
                    # The common case, at C speed: the key of every prefix of the tokens that ends on an edge.
                    blocks.append((len(keys), i, None))
                    keys += compress(accumulate(pieces[i:stop]), edge[i:stop])
                    continue
                key = ""
                comma = commas[i]
                quotes = opened = closed = 0
                found_keys, found_ends = [], []
                for j in range(i, stop):
                    kj = kinds[j]
                    if kj == _BREAK:
                        break
                    key += pieces[j]
                    quotes += kj == _QUOTE
                    closed += kj == _CLOSE
                    opened += opens[j]
                    if kj <= _END or (kj == _QUOTE and quotes > 1) or (kj == _CLOSE and opened):
                        if k == _WORD or (k == _QUOTE and quotes > 1) or (k == _OPEN and closed):
                            found_keys.append(key if j < comma else join_token_keys(key))
                            found_ends.append(j + 1)
                if found_keys:
                    blocks.append((len(keys), i, found_ends))
                    keys += found_keys
        return grams

    def detect(self, doc) -> list[SpanMention]:
        """Non-overlapping candidate mentions of the whole doc, in text order, with their KB candidates."""
        text = doc.text
        spans: list[tuple[int, int, int, SpanMention]] = []  # (-(length), priority, start, mention)
        ents = [e for e in doc.ents if e.label_ in NER_TYPES]
        ent_label = {}
        for e in ents:
            for i in range(e.start, e.end):
                ent_label[i] = e.label_
        columns = ["IS_PUNCT", "IS_SPACE", "IDX", "LENGTH", "SENT_START"]
        punct, space, starts, lengths, sent_starts = doc.to_array(columns).T.tolist() if len(doc) else [[]] * 5
        ends = [s + n for s, n in zip(starts, lengths)]
        texts = [text[s:e] for s, e in zip(starts, ends)]

        def span_text(start: int, end: int) -> str:
            return text[starts[start] : ends[end - 1]]

        def add(start: int, end: int, priority: int, mention: SpanMention) -> None:
            spans.append((start - end, priority, start, mention))

        # Every span that may be a mention, with its key, so that the KB is asked once per document.
        ngrams = self._ngrams(texts, _token_kinds(texts, punct, space), sent_starts)
        date_tokens: set[int] = set()
        dates = []
        for d in find_dates(text):
            span = doc.char_span(d.start, d.end, alignment_mode="expand")
            if span is None:
                continue
            label = ent_label.get(span.start)
            if d.precision == 9 and label is not None and label not in _DATE_LABELS:
                # A year inside a longer name ("2002 Winter Olympics") or a count ("1500 people").
                whole = next(e for e in ents if e.start <= span.start < e.end)
                if whole.end - whole.start > span.end - span.start:
                    continue
            date_tokens.update(range(span.start, span.end))
            dates.append((span.start, span.end, span.text, alias_key(span.text), d.key))
        named = []
        for e in ents:
            start, end = e.start, e.end
            if e.label_ in _DATE_LABELS and any(i in date_tokens for i in range(start, end)):
                continue  # "August 20, 1920 – January 16, 1992": the dates inside are the mentions
            if end - start > 1 and texts[start].lower() == "the":
                start += 1
            if end - start > 1 and texts[end - 1] in _POSSESSIVE:
                end -= 1
            named.append((start, end, e.label_, alias_key(span_text(start, end))))
        # One batch for the whole document (keys repeat: a batch lookup sorts or dedupes as it needs).
        count = len(ngrams.keys)
        found = self.kb.candidates_many(ngrams.keys + [d[3] for d in dates] + [n[3] for n in named])
        date_found = found[count : count + len(dates)]
        named_found = found[count + len(dates) :]
        for index in compress(range(count), found):  # the n-grams with candidates, in order
            start, end = ngrams.span(index)
            key, candidates = ngrams.keys[index], found[index]
            mention_text = span_text(start, end)
            if not self._acceptable(mention_text, key) or not self._spelt_as_name(
                mention_text, key, candidates, texts[start:end]
            ):
                continue
            bare = ()
            if end - start > 1 and texts[start].lower() == "the":
                # "the United States" and "United States" may be different KB entries (Wikidata aliases
                # come with and without the article): both compete, context decides.
                bare_key = alias_key(span_text(start + 1, end))
                bare = self.kb.candidates(bare_key)
                candidates = tuple(dict.fromkeys(candidates + bare))
            add(
                start,
                end,
                1,
                SpanMention(start, end, mention_text, "alias", ent_label.get(start), candidates, bare=bare),
            )
        for (start, end, date_text, _, time), candidates in zip(dates, date_found):
            add(start, end, 0, SpanMention(start, end, date_text, "date", "DATE", candidates, time))
        for (start, end, label, _), candidates in zip(named, named_found):
            source, priority = ("alias", 1) if candidates else ("ner", 3)
            add(start, end, priority, SpanMention(start, end, span_text(start, end), source, label, candidates))
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
        near_misses = []
        for m in pending:
            if not m.candidates:
                short = self._partial(m, doc_names) if cfg.partial_names else None
                if short is not None:
                    m.kb_id, m.how = short, "partial"
                elif cfg.fuzzy and m.time is None and len(alias_key(m.text)) >= cfg.fuzzy_min_chars:
                    near_misses.append(m)
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
        if near_misses:
            # Near misses last: every other mention is linked by now, and its entity's neighbourhood is where
            # a misspelt name is looked for (linking an entity outside it would give no fact anyway).
            names = self._neighbourhood_names(fixed.union(m.kb_id for m in mentions if m.kb_id))
            for m in near_misses:
                m.kb_id = self._fuzzy(m.text, names)
                if m.kb_id is not None:
                    m.how = "fuzzy"
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

    def _neighbourhood_names(self, linked: Iterable[str]) -> dict[str, list[str]]:
        """The names fuzzy matching compares near misses with, as alias key → ids: those of the document's
        linked items, then of their KB neighbours (a hub's excepted), `fuzzy_max_candidates` at most."""
        kb, cfg = self.kb, self.config
        linked = sorted((i for i in linked if not is_time_key(i)), key=_id_order)
        ids = dict.fromkeys(linked)
        for entity_id in linked:
            around = kb.neighbours(entity_id)
            if len(around) <= cfg.fuzzy_hub_neighbours:
                ids.update(dict.fromkeys(sorted((i for i in around if not is_time_key(i)), key=_id_order)))
        owners: dict[str, list[str]] = {}
        for entity_id in ids:
            for name in kb.names(entity_id):
                key = alias_key(name)
                if key in owners:
                    if entity_id not in owners[key]:
                        owners[key].append(entity_id)
                elif key and len(owners) < cfg.fuzzy_max_candidates:
                    owners[key] = [entity_id]
        return owners

    def _fuzzy(self, text: str, names: dict[str, list[str]]) -> str | None:
        """The neighbourhood entity with a name within `fuzzy_threshold` of `text` and the same numbers, if
        one entity has the best such name."""
        key = alias_key(text)
        digits = _DIGITS.findall(key)
        for choice, _score, _ in process.extract(
            key, list(names), scorer=fuzz.ratio, score_cutoff=self.config.fuzzy_threshold, limit=5
        ):
            if _DIGITS.findall(choice) == digits:
                candidates = names[choice]
                return candidates[0] if len(candidates) == 1 else None
        return None
