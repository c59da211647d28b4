"""A synthetic Wikidata JSON dump of N items with a given KB embedded, for measuring the Wikipedia path at scale.

Why: the Wikipedia path links mentions against a KB built from a Wikidata dump. A dev KB of a few thousand
items (the Re-DocRED dev KB in the Wikidata dump format) makes linking look easy: most names have one
candidate. The real Wikidata (~100M items) is full of homonyms (many "John Smith", several "Paris", people
sharing a famous person's surname), and its size decides the memory and speed of building and querying the
KB. This script writes a dump of N items (e.g. 1M or 10M) that embeds a small KB unchanged among generated
items whose names collide with the embedded ones at a chosen rate, so linking quality, memory and speed can
be measured as the KB grows while the embedded entities (and the gold links to them) stay the same.

    python benchmarks/make_wikidata_dump.py --items 1000000 --embed KB.json --output dump_1m.json.gz

What it writes: the dump format (`latest-all.json.gz`): `[` on the first line, one entity object per line,
each line ending with `,` except the last, then `]`; gzip when the output ends in `.gz`, plain otherwise.
- The embedded items: every line of `--embed` (same format), byte for byte (less its trailing comma), at
  seeded random positions spread through the file.
- Generated items `Q1`, `Q2`, ... (skipping the embedded ids), N in all with the embedded ones, of six
  kinds: people (given name, sometimes a middle name or initial, surname), places ("Korvale", "Lake
  Korvale", "Korvale County"), organisations ("University of Korvale", "Velisa Records"), works ("The Salt
  Road"-like titles), events ("1998 Korvale Open", "Battle of Korvale") and a few countries. A generated
  item's kind is a function of its id (see `Kinds`), so a claim can point at a random item of the right
  kind without remembering any item: the script streams, in memory bounded by the embedded KB and the name
  vocabulary (capped), never by N.
- Names: each generated item is a homonym of the embedded KB with probability `--homonym-rate`: its label
  is an embedded label (an exact homonym: another "Paris", another person of the same name) or contains a
  name word of one (a partial homonym: an embedded person's surname with another given name, "Lake Galway",
  "University of Galway"). Name parts come from the embedded KB (first and last words of its person
  labels, its one-word place names, its labels of each kind), chosen with a skew so that some names recur
  often, as common names do. The dump has no types: an embedded item's kind is guessed from the properties
  it is the subject or object of (P569 → person, object of P17 → country, ...) and the shape of its label.
  The other items take their names from a generated vocabulary of pronounceable made-up words that
  contains no word of the embedded labels, plus fixed English template words (`FIXED_WORDS`: "University",
  "River", "Night", ...), and never equal an embedded label. So the homonym share is measurable from the
  output: the share of generated labels that equal an embedded label or contain one of its words (letters
  only, 3 or more, not a fixed word).
- Aliases: 10-60% of the items of a kind (`ALIAS_SHARE`) get 1-3 English aliases: surname alone, initials
  ("C. Fenwick"), acronyms, short forms, alternative spellings.
- Claims: only the 96 DocRED properties (`DOCRED_PROPERTIES`), with per-kind shapes (`CLAIMS`): people
  P27/P19/P20/P569/P570/P69/P108/P26..., places P17/P131/P206..., organisations P17/P159/P571/P112...,
  works P577/P50/P57/P161/P175/P495..., events P585/P17/P276/P710/P155... Objects are generated items of a
  fitting kind or, for a share `--embed-link-rate` of item-valued claims (half of the country-valued ones),
  embedded items of that kind, as real items link to famous ones. Languages, continents, religions, genres,
  awards and positions exist only as the embedded KB's objects of those properties (a few hundred items in
  the real Wikidata): such claims point there, and are left out when the embedded KB has none. Dates are
  `time` values in the dump's exact shape (day, month, year, decade or century precision; year precision
  written both as `+1963-00-00` and `+1963-01-01`; a few BCE years).
- Shapes the parser must skip, on a share `--odd-rate` of the generated items (one claim each, in turn):
  a `somevalue` snak and a `novalue` snak in a DocRED property (counted as skipped claims), a string-valued
  external identifier (P214, VIAF; dropped by the property filter, counted as skipped when all properties
  are kept) and a deprecated-rank DocRED claim (ignored). The summary gives the counts, so a reader can check
  its skip counts exactly.

Options: `--items N` (total, embedded included), `--embed KB.json`, `--output PATH`, `--seed` (default 0),
`--homonym-rate` (default 0.3), `--embed-link-rate` (default 0.05), `--odd-rate` (default 0.01),
`--compresslevel` (gzip level, default 6), `--json PATH` (the summary as JSON). The same arguments give a
byte-identical file (gzip header without name or time; no iteration over unordered sets) with the same
JSON encoder (orjson when installed, else json; the two agree on these values but that is not promised).

Not modelled: statement ids, qualifiers, references, descriptions, sitelinks, labels in other languages and
the many non-DocRED claims (external ids, images, coordinates) that make real lines ~10-20x longer, so
reading this dump is faster per item than reading the real one; the share of kinds (real Wikidata is
mostly scholarly articles, taxa and the like, which never match a DocRED mention); consistency between
facts (a spouse's spouse, a work published before its author's birth, a place in two countries), gaps in
the id sequence. The made-up words look alike more than real names do, and the homonyms come only from
the names chosen here, not from the much longer tail of real ones.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout that was never installed

from memllm.annotators.kb import alias_key  # noqa: E402
from memllm.annotators.wikidata import DOCRED_PROPERTIES, parse_dump_line  # noqa: E402

try:
    import orjson

    ENCODER = "orjson"

    def dumps(obj: dict) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # orjson is a base dependency; json is the fallback for a bare environment
    ENCODER = "json"
    _JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)

    def dumps(obj: dict) -> bytes:
        return _JSON.encode(obj).encode("utf-8")


# -- kinds and their shares -------------------------------------------------------------------------------
# Shares of the generated items, modelled on the named-entity part of Wikidata and DocRED's mix of types
# (people and places most, then works and organisations); countries are rare, as there are few.
KIND_SHARE: dict[str, float] = {
    "person": 0.38,
    "place": 0.25,
    "work": 0.16,
    "org": 0.14,
    "event": 0.0698,
    "country": 0.0002,
}
KINDS: tuple[str, ...] = tuple(KIND_SHARE)
# Share of each kind's items with 1-3 English aliases (people and organisations often have short forms).
ALIAS_SHARE: dict[str, float] = {"person": 0.3, "place": 0.15, "work": 0.1, "org": 0.35, "event": 0.25, "country": 0.6}
# Objects that exist only as the embedded KB's objects of these properties (few in the real Wikidata).
ROLE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "language": ("P1412", "P37", "P364"),
    "continent": ("P30",),
    "religion": ("P140",),
    "genre": ("P136",),
    "award": ("P166",),
    "position": ("P39",),
    "ethnic group": ("P172",),
}
EMBEDDED_COUNTRY_SHARE = 0.5  # of country-valued claims: the embedded KB's countries, when it has some

# Claims per kind: (property, probability, object, most values). Objects: a kind (a generated item of it, or
# an embedded one), a role (embedded only) or a time: "birth", "death" (after birth), "date" (1800-2025),
# "early" (inceptions, from 500 BCE). Only DocRED properties (P106 occupation, P31 human are not).
CLAIMS: dict[str, tuple[tuple[str, float, str, int], ...]] = {
    "person": (
        ("P569", 0.85, "birth", 1),
        ("P570", 0.35, "death", 1),
        ("P27", 0.8, "country", 2),
        ("P19", 0.5, "place", 1),
        ("P20", 0.25, "place", 1),
        ("P69", 0.2, "org", 2),
        ("P108", 0.15, "org", 2),
        ("P102", 0.06, "org", 1),
        ("P54", 0.08, "org", 3),
        ("P463", 0.05, "org", 2),
        ("P26", 0.08, "person", 1),
        ("P22", 0.05, "person", 1),
        ("P25", 0.04, "person", 1),
        ("P40", 0.06, "person", 3),
        ("P3373", 0.05, "person", 2),
        ("P1412", 0.2, "language", 2),
        ("P140", 0.03, "religion", 1),
        ("P172", 0.02, "ethnic group", 1),
        ("P166", 0.06, "award", 2),
        ("P39", 0.04, "position", 2),
        ("P551", 0.05, "place", 1),
        ("P937", 0.05, "place", 1),
        ("P800", 0.08, "work", 2),
        ("P1344", 0.04, "event", 2),
        ("P607", 0.02, "event", 1),
    ),
    "place": (
        ("P17", 0.9, "country", 1),
        ("P131", 0.7, "place", 2),
        ("P30", 0.15, "continent", 1),
        ("P206", 0.1, "place", 1),
        ("P706", 0.05, "place", 1),
        ("P150", 0.08, "place", 4),
        ("P571", 0.08, "early", 1),
        ("P37", 0.03, "language", 1),
    ),
    "country": (
        ("P30", 0.9, "continent", 1),
        ("P36", 0.8, "place", 1),
        ("P150", 0.7, "place", 5),
        ("P37", 0.8, "language", 2),
        ("P571", 0.5, "early", 1),
        ("P6", 0.4, "person", 1),
        ("P35", 0.4, "person", 1),
        ("P463", 0.3, "org", 3),
    ),
    "org": (
        ("P17", 0.8, "country", 1),
        ("P159", 0.5, "place", 1),
        ("P131", 0.2, "place", 1),
        ("P571", 0.6, "date", 1),
        ("P576", 0.08, "date", 1),
        ("P112", 0.2, "person", 2),
        ("P488", 0.08, "person", 1),
        ("P749", 0.08, "org", 1),
        ("P127", 0.08, "org", 1),
        ("P355", 0.05, "org", 3),
        ("P740", 0.08, "place", 1),
        ("P118", 0.04, "org", 1),
        ("P527", 0.04, "person", 4),
    ),
    "work": (
        ("P577", 0.85, "date", 1),
        ("P495", 0.5, "country", 1),
        ("P50", 0.3, "person", 1),
        ("P57", 0.2, "person", 1),
        ("P161", 0.2, "person", 4),
        ("P175", 0.25, "person", 1),
        ("P86", 0.08, "person", 1),
        ("P58", 0.08, "person", 1),
        ("P162", 0.08, "person", 1),
        ("P264", 0.15, "org", 1),
        ("P123", 0.12, "org", 1),
        ("P272", 0.08, "org", 1),
        ("P449", 0.04, "org", 1),
        ("P364", 0.2, "language", 1),
        ("P136", 0.2, "genre", 1),
        ("P155", 0.1, "work", 1),
        ("P156", 0.1, "work", 1),
        ("P179", 0.04, "work", 1),
        ("P361", 0.04, "work", 1),
        ("P674", 0.03, "person", 3),
        ("P840", 0.03, "place", 1),
    ),
    "event": (
        ("P585", 0.6, "date", 1),
        ("P580", 0.2, "date", 1),
        ("P17", 0.7, "country", 1),
        ("P276", 0.6, "place", 1),
        ("P710", 0.3, "person", 4),
        ("P155", 0.3, "event", 1),
        ("P156", 0.3, "event", 1),
        ("P361", 0.08, "event", 1),
        ("P1001", 0.03, "country", 1),
    ),
}
if _outside := sorted({c[0] for claims in CLAIMS.values() for c in claims} - DOCRED_PROPERTIES):
    raise ValueError(f"not DocRED properties: {_outside}")  # the parser's default filter would drop them
TIME_OBJECTS = ("birth", "death", "date", "early")
ODD_SHAPES = ("somevalue", "novalue", "string", "deprecated")
STRING_PROPERTY = "P214"  # VIAF ID: an external identifier, a string value, not a DocRED property
CALENDAR = "http://www.wikidata.org/entity/Q1985727"  # the proleptic Gregorian calendar

# -- name templates ---------------------------------------------------------------------------------------
# `{p}` a place word, `{s}` a surname, `{w}` any name word, `{n}` a title noun, `{a}` a title adjective,
# `{y}` a year. The words written here are `FIXED_WORDS`: never counted as names shared with the embedded KB.
PLACE_TEMPLATES = ("{p}", "{p}", "{p}", "New {p}", "{p} River", "Lake {p}", "{p} County", "North {p}",
                   "{p} Heights", "Port {p}", "{p} Valley", "Mount {p}", "{p} Springs", "San {p}",
                   "{p} Township", "{p} Island")  # fmt: skip
ORG_TEMPLATES = ("University of {p}", "{w} Records", "{p} Football Club", "{w} Group", "{s} & Sons",
                 "{p} City Council", "{w} Airlines", "{w} Party", "{p} Institute of Technology",
                 "{w} Pictures", "{s} and {s}", "{w} Press", "{p} United", "{w} Foundation",
                 "Bank of {p}", "{w} Motors")  # fmt: skip
WORK_TEMPLATES = ("{n}", "The {n}", "{a} {n}", "The {a} {n}", "{n} of {w}", "The {w} {n}", "{n} in {p}",
                  "Return to {p}", "The {s} Affair", "{a} {n}s", "{w}")  # fmt: skip
EVENT_TEMPLATES = ("{y} {p} Open", "{y} {p} Marathon", "Battle of {p}", "{y} {w} Championships",
                   "Siege of {p}", "{y} {p} Film Festival", "{y} {p} general election", "{y} Summer Games",
                   "Treaty of {p}", "{y} {w} Cup", "{y} Winter Olympics", "{p} Grand Prix")  # fmt: skip
COUNTRY_TEMPLATES = ("{p}", "{p}", "Republic of {p}", "Kingdom of {p}", "{p} Republic")
TITLE_NOUNS = ("Night", "Road", "River", "Heart", "Storm", "Garden", "Shadow", "Letter", "Island", "Song",
               "Dream", "Fire", "Winter", "Summer", "Kingdom", "Stranger", "House", "Mirror", "Journey",
               "Promise", "Secret", "Angel", "Silence", "Harbor", "Machine", "Crown", "Ghost", "Empire",
               "Daughter", "Voyage", "Horizon", "Rain", "Light", "Memory", "Bridge", "Echo", "Wolf",
               "Forest", "Tide", "Mountain", "Story", "Sky", "Game", "Love", "World", "Way", "Time")  # fmt: skip
TITLE_ADJECTIVES = ("Blue", "Silent", "Last", "Lost", "Golden", "Broken", "Hidden", "Wild", "Little",
                    "Dark", "Endless", "Burning", "Quiet", "Second", "Red", "Cold", "Secret", "Long",
                    "Crimson", "Distant", "Bright", "Empty", "Final", "Sweet", "Black", "White")  # fmt: skip
PERSON_PARTICLES = ("de", "van", "von", "da", "di", "del", "der", "la", "le", "bin", "al", "ibn", "y")
# Alternative spellings of a name word: the first rule that applies (in a seeded order) gives the variant.
SPELLINGS = (("ph", "f"), ("c", "k"), ("k", "c"), ("y", "i"), ("ie", "y"), ("ou", "u"), ("ss", "s"),
             ("ll", "l"), ("er", "re"), ("v", "w"), ("th", "t"), ("ei", "ai"))  # fmt: skip

_WORD = re.compile(r"[^\W\d_]+")
_FIELD = re.compile(r"\{(\w)\}")


def _template_words() -> frozenset[str]:
    texts = PLACE_TEMPLATES + ORG_TEMPLATES + WORK_TEMPLATES + EVENT_TEMPLATES + COUNTRY_TEMPLATES
    texts += TITLE_NOUNS + TITLE_ADJECTIVES + tuple(n + "s" for n in TITLE_NOUNS) + ("City of {p}",)
    return frozenset(w.casefold() for t in texts for w in _WORD.findall(_FIELD.sub(" ", t)))


FIXED_WORDS: frozenset[str] = _template_words()


def name_words(text: str) -> list[str]:
    """The words of a label that count as a name: letters only, 3 or more, case-folded, not a fixed word."""
    return [w for w in (m.casefold() for m in _WORD.findall(text)) if len(w) >= 3 and w not in FIXED_WORDS]


def skewed(rng: random.Random, seq: Sequence[str], power: float) -> str:
    """An element of `seq`, the first ones far more often (power 3: the first 1% take ~20% of the draws):
    common names recur, as they do in the real world."""
    return seq[int(len(seq) * rng.random() ** power)]


# -- the embedded KB --------------------------------------------------------------------------------------
# Evidence of an embedded item's kind (the dump has no types): properties it is the subject or object of.
PERSON_SUBJECT = frozenset(
    "P27 P569 P570 P19 P20 P26 P22 P25 P40 P3373 P69 P1412 P54 P102 P108 P937 P551 P39 P172".split()
)
PERSON_OBJECT = frozenset("P26 P22 P25 P40 P3373 P50 P57 P58 P86 P162 P170 P161 P6 P35 P488 P112 P674".split())
COUNTRY_OBJECT = frozenset("P17 P27 P495".split())
PLACE_SUBJECT = frozenset("P17 P131 P30 P706 P206 P150 P36 P1376 P403".split())
PLACE_OBJECT = frozenset("P19 P20 P131 P276 P740 P159 P551 P937 P706 P206 P150 P36 P1376 P840".split())
ORG_OBJECT = frozenset("P69 P108 P102 P54 P463 P118 P264 P123 P272 P749 P355 P178 P449 P176 P1056".split())
ORG_SUBJECT = frozenset("P159 P112 P488 P749 P355 P118".split())
WORK_SUBJECT = frozenset("P577 P50 P57 P175 P161 P86 P58 P162 P136 P364 P449 P264 P123 P272 P179 P400 P674".split())
WORK_OBJECT = frozenset("P800 P1441 P179".split())
EVENT_SUBJECT = frozenset("P585 P710 P580 P582".split())
EVENT_OBJECT = frozenset("P1344 P607".split())


def _person_shaped(label: str) -> bool:
    words = label.split()
    if not 2 <= len(words) <= 4 or any(c.isdigit() for c in label):
        return False
    return all(w[:1].isupper() or w in PERSON_PARTICLES for w in words)


@dataclass
class EmbeddedKB:
    """The KB to embed: its lines as they are, its ids, and the names and items the generator draws on."""

    lines: list[bytes] = field(default_factory=list)  # entity lines, without the trailing comma
    numeric_ids: set[int] = field(default_factory=set)  # of its `Q…` ids, which generated ids skip
    label_keys: set[str] = field(default_factory=set)  # `alias_key` of every label
    words: set[str] = field(default_factory=set)  # `name_words` of every label
    labels: dict[str, list[str]] = field(default_factory=dict)  # kind → labels (exact homonyms)
    given: list[str] = field(default_factory=list)  # first words of person labels, most frequent first
    surnames: list[str] = field(default_factory=list)  # last words of person labels, most frequent first
    place_words: list[str] = field(default_factory=list)
    any_words: list[str] = field(default_factory=list)
    pools: dict[str, list[str]] = field(default_factory=dict)  # kind or role → ids (link targets)

    @classmethod
    def read(cls, path: Path) -> EmbeddedKB:
        kb = cls()
        entities = []
        with open(path, "rb") as f:
            for raw in f:
                line = raw.rstrip(b"\r\n").rstrip()
                if line.endswith(b","):
                    line = line[:-1].rstrip()
                if line in (b"", b"[", b"]"):
                    continue
                kb.lines.append(line)
                entity = parse_dump_line(line, properties=None)
                if entity is None:
                    continue
                if entity.id[1:].isdigit():
                    kb.numeric_ids.add(int(entity.id[1:]))
                entities.append(entity)
        objects_of: dict[str, set[str]] = {}
        for e in entities:
            for prop, obj in e.facts:
                objects_of.setdefault(obj, set()).add(prop)
        kinds: dict[str, list] = {k: [] for k in KINDS}
        given, surnames, place_words, label_words = Counter(), Counter(), Counter(), Counter()
        roles: dict[str, list[str]] = {r: [] for r in ROLE_PROPERTIES}
        for e in entities:
            if e.label is None:
                continue
            kb.label_keys.add(alias_key(e.label))
            words = name_words(e.label)
            kb.words.update(words)
            label_words.update(words)
            subject = {p for p, _ in e.facts}
            obj = objects_of.get(e.id, set())
            for role, props in ROLE_PROPERTIES.items():
                if obj.intersection(props):
                    roles[role].append(e.id)
            kind = _kind_of(e.label, subject, obj)
            if kind is None:
                continue
            kinds[kind].append(e)
            tokens = e.label.split()
            if kind == "person":
                first, last = _name_word(tokens[0]), _name_word(tokens[-1])
                if first:
                    given[first] += 1
                if last and not _ROMAN.match(last):  # "George V", "Louis XIII": no surname
                    surnames[last] += 1
            elif kind in ("place", "country") and len(tokens) == 1 and not e.label.endswith(DEMONYM_ENDINGS):
                # Place words: one-word place names ("Galway", "Siberia"), not the generic words of
                # longer ones ("National", "Park"), nor demonyms, which DocRED links to countries.
                word = _name_word(tokens[0])
                if word:
                    place_words[word] += 1
        kb.labels = {k: sorted({e.label for e in v if not any(c.isdigit() for c in e.label)}) for k, v in kinds.items()}
        kb.pools = {k: [e.id for e in v] for k, v in kinds.items()} | roles

        def rank(counts: Counter) -> list[str]:
            # Common first: how often a word occurs in all the labels ("Paris" in "Paris Commune" too).
            return sorted(counts, key=lambda w: (-label_words[w.casefold()] - counts[w], w))

        kb.given, kb.surnames, kb.place_words = rank(given), rank(surnames), rank(place_words)
        kb.any_words = list(dict.fromkeys(kb.surnames + kb.place_words + kb.given))
        if not kb.any_words:  # no person or place names: any capitalised name word of a label
            kb.any_words = sorted({w for e in entities if e.label for w in _WORD.findall(e.label) if _name_word(w)})
        return kb


_ROMAN = re.compile(r"^[IVXLCDM]+$")
DEMONYM_ENDINGS = ("an", "ans", "ese", "ish", "ch", "ic", "men")


def _name_word(token: str) -> str | None:
    """`token` when it is one capitalised name word (no punctuation, not a fixed word), else None."""
    words = _WORD.findall(token)
    if len(words) == 1 and words[0] == token.strip("\"'.,()") and token[:1].isupper() and name_words(words[0]):
        return words[0]
    return None


def _kind_of(label: str, subject: set[str], obj: set[str]) -> str | None:
    """The kind of an embedded item from the properties around it; None when nothing says."""
    if any(c.isdigit() for c in label) and not (subject & (WORK_SUBJECT | EVENT_SUBJECT)):
        return None  # dates and numbers ("13 March 1963", "1,500")
    if (subject & PERSON_SUBJECT or obj & PERSON_OBJECT) and _person_shaped(label):
        return "person"
    if obj & COUNTRY_OBJECT:
        return "country"
    if subject & WORK_SUBJECT or obj & WORK_OBJECT:
        return "work"
    if subject & EVENT_SUBJECT or obj & EVENT_OBJECT:
        return "event"
    if obj & ORG_OBJECT or subject & ORG_SUBJECT:
        return "org"
    if subject & PLACE_SUBJECT or obj & PLACE_OBJECT:
        return "place"
    return None


# -- generated names --------------------------------------------------------------------------------------
_ONSETS = (
    "b c d f g h j k l m n p r s t v w z b d l m n r s t " * 2 + "br ch cl dr fl gr kr pr sh st tr bl gl th"
).split()
_VOWELS = "a e i o u a e i o a e o ai ea ie ou".split()
_CODAS = ([""] * 3 + "n r l s m nd rt st ll th".split(), [""] * 4 + "n r l".split())  # word end, inside


class Vocabulary:
    """Made-up given names, surnames and place words (none a word of the embedded labels or a fixed word),
    sizes growing with N up to a cap, most frequent first (the order `skewed` favours)."""

    def __init__(self, rng: random.Random, items: int, avoid: set[str]) -> None:
        taken = set(avoid) | set(FIXED_WORDS)
        self.given = self._words(rng, _clamp(items // 200, 500, 20_000), taken, (2, 2, 3), ("a", "o", "e", ""))
        self.surnames = self._words(rng, _clamp(items // 10, 2_000, 300_000), taken, (2, 2, 3), ("", "son", "er"))
        self.places = self._words(rng, _clamp(items // 10, 2_000, 300_000), taken, (2, 3, 3), ("", "ia", "ford"))

    @staticmethod
    def _words(rng: random.Random, n: int, taken: set[str], syllables: tuple, endings: tuple) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            count = rng.choice(syllables)
            parts = [
                rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS[i < count - 1]) for i in range(count)
            ]
            stem, ending = "".join(parts), rng.choice(endings)
            if stem[-1] in "aeiou" and ending[:1] in ("a", "e", "o"):
                ending = ""  # "Monoer", "Denzaa": hard to say
            word = (stem + ending).capitalize()
            if 4 <= len(word) <= 10 and word.casefold() not in taken:
                taken.add(word.casefold())
                out.append(word)
        return out


def _clamp(x: int, low: int, high: int) -> int:
    return max(low, min(high, x))


def spelling_variant(rng: random.Random, word: str) -> str | None:
    """Another spelling of `word`: without diacritics if it has some, else a seeded sound-alike rewrite."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    if plain != word:
        return plain
    lower = word.lower()
    start = rng.randrange(len(SPELLINGS))
    for old, new in SPELLINGS[start:] + SPELLINGS[:start]:
        i = lower.find(old, 1)  # not the first letter, so the variant keeps its capital
        if i > 0:
            return word[:i] + new + word[i + len(old) :]
    return None


# -- kinds of generated ids -------------------------------------------------------------------------------
class Kinds:
    """A generated item's kind is `table[id % period]`: a claim picks an item of a kind by drawing a block
    and one of that kind's residues, without remembering which items exist (memory does not grow with N)."""

    def __init__(self, rng: random.Random, max_id: int, embedded: set[int]) -> None:
        self.max_id, self.embedded = max_id, embedded
        self.period = max(1, min(10_000, max_id))
        counts = {k: max(1, round(KIND_SHARE[k] * self.period)) for k in KINDS}
        counts["person"] += self.period - sum(counts.values())  # rounding slack goes to the largest kind
        table = [k for k in KINDS for _ in range(counts[k])]
        table += ["person"] * (self.period - len(table))  # tiny dumps: fewer ids than kinds
        rng.shuffle(table)
        self.table = table[: self.period]
        self.residues = {k: [r for r, t in enumerate(self.table) if t == k] for k in KINDS}

    def kind(self, qid: int) -> str:
        return self.table[qid % self.period]

    def pick(self, rng: random.Random, kind: str) -> int | None:
        """A random generated id of `kind`; None when a few draws find none (tiny dumps)."""
        residues, blocks = self.residues[kind], self.max_id // self.period
        for _ in range(20):
            qid = rng.randint(0, blocks) * self.period + rng.choice(residues) if residues else 0
            if 0 < qid <= self.max_id and qid not in self.embedded:
                return qid
        return None


def last_generated_id(generated: int, embedded: set[int]) -> int:
    """The largest id of `generated` items numbered from 1, skipping the embedded ids."""
    qid = generated
    for e in sorted(embedded):
        if e <= qid:
            qid += 1
        else:
            break
    return qid


# -- items ------------------------------------------------------------------------------------------------
@dataclass
class Stats:
    generated: int = 0
    embedded: int = 0
    claims: int = 0  # statements written in generated items, odd shapes included
    item_claims: int = 0
    time_claims: int = 0
    links_to_embedded: int = 0
    odd: Counter = field(default_factory=Counter)  # odd shape → statements
    aliases: int = 0
    items_with_aliases: int = 0
    homonyms_exact: int = 0  # generated labels equal to an embedded label (alias_key)
    homonyms_partial: int = 0  # other generated labels with a word of an embedded label
    kinds: Counter = field(default_factory=Counter)
    embedded_labels_shared: set[str] = field(default_factory=set)  # embedded label keys a generated one has


def _item_value(prop: str, qid: int) -> dict:
    return {
        "mainsnak": {
            "snaktype": "value",
            "property": prop,
            "datavalue": {
                "value": {"entity-type": "item", "id": f"Q{qid}", "numeric-id": qid},
                "type": "wikibase-entityid",
            },
            "datatype": "wikibase-item",
        },
        "type": "statement",
        "rank": "normal",
    }


def _time_value(prop: str, time_text: str, precision: int) -> dict:
    value = {
        "time": time_text,
        "timezone": 0,
        "before": 0,
        "after": 0,
        "precision": precision,
        "calendarmodel": CALENDAR,
    }
    return {
        "mainsnak": {
            "snaktype": "value",
            "property": prop,
            "datavalue": {"value": value, "type": "time"},
            "datatype": "time",
        },
        "type": "statement",
        "rank": "normal",
    }


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class ItemMaker:
    """Generated items as JSON-ready dicts, one at a time, from one seeded `random.Random`."""

    def __init__(self, args: argparse.Namespace, kb: EmbeddedKB, max_id: int, stats: Stats) -> None:
        self.rng = random.Random(f"{args.seed}:items")
        self.kb, self.stats = kb, stats
        self.homonym_rate, self.embed_link_rate, self.odd_rate = args.homonym_rate, args.embed_link_rate, args.odd_rate
        self.vocab = Vocabulary(random.Random(f"{args.seed}:vocabulary"), args.items, kb.words)
        self.kinds = Kinds(random.Random(f"{args.seed}:kinds"), max_id, kb.numeric_ids)
        self.odd_turn = 0
        # Embedded labels shuffled: `skewed` then favours some of them (common names) by chance, not by
        # their order in the embedded file.
        shuffler = random.Random(f"{args.seed}:labels")
        self.dev_labels = {k: shuffler.sample(v, len(v)) for k, v in sorted(kb.labels.items())}
        self.dev_given = kb.given or kb.any_words
        self.dev_surnames = kb.surnames or kb.any_words
        self.dev_places = kb.place_words or kb.any_words
        self.dev_words = kb.any_words
        self.has_dev_names = bool(kb.any_words)
        self.names: dict[str, Callable[[bool], tuple[str, list[str]]]] = {
            "person": self._person,
            "place": lambda dev: self._templated(PLACE_TEMPLATES, dev, "place"),
            "org": lambda dev: self._templated(ORG_TEMPLATES, dev, "org"),
            "work": lambda dev: self._templated(WORK_TEMPLATES, dev, "work"),
            "event": lambda dev: self._templated(EVENT_TEMPLATES, dev, "event"),
            "country": lambda dev: self._templated(COUNTRY_TEMPLATES, dev, "country"),
        }
        # Templates a homonym can use: those with a field an embedded name can fill.
        self.dev_templates = {
            t: tuple(x for x in t if set(_FIELD.findall(x)) & set("psw"))
            for t in (PLACE_TEMPLATES, ORG_TEMPLATES, WORK_TEMPLATES, EVENT_TEMPLATES, COUNTRY_TEMPLATES)
        }

    # names: (label, parts used for aliases)
    def _person(self, dev: bool) -> tuple[str, list[str]]:
        rng, v = self.rng, self.vocab
        if dev:
            r = rng.random()
            exact = self.dev_labels.get("person")
            if r < 0.3 and exact:
                # A milder skew than for name parts: a whole name recurs less than a surname does.
                label = skewed(rng, exact, 1.5)
                return label, label.split()
            # The rest: an embedded surname with another given name (relatives, unrelated namesakes), an
            # embedded given name with another surname, or an embedded given name and surname recombined.
            given = skewed(rng, self.dev_given, 3.0) if r >= 0.65 else skewed(rng, v.given, 4.0)
            surname = skewed(rng, self.dev_surnames, 3.0) if r < 0.65 or r >= 0.85 else skewed(rng, v.surnames, 3.0)
        else:
            given, surname = skewed(rng, v.given, 4.0), skewed(rng, v.surnames, 3.0)
        r = rng.random()
        if r < 0.12:
            parts = [given, skewed(rng, v.given, 4.0), surname]
        elif r < 0.22:
            parts = [given, rng.choice("ABCDEFGHJKLMNPRSTW") + ".", surname]
        else:
            parts = [given, surname]
        return " ".join(parts), parts

    def _templated(self, templates: Sequence[str], dev: bool, kind: str) -> tuple[str, list[str]]:
        rng, v = self.rng, self.vocab
        if dev:
            exact = self.dev_labels.get(kind)
            share = {"place": 0.5, "work": 0.5, "org": 0.2, "event": 0.15, "country": 0.3}[kind]
            if exact and rng.random() < share:
                label = skewed(rng, exact, 1.5)
                return label, [label]
        template = rng.choice(self.dev_templates[templates] if dev else templates)
        fields = _FIELD.findall(template)
        # A homonym takes one of its fields from the embedded KB.
        dev_field = rng.choice([i for i, f in enumerate(fields) if f in "psw"]) if dev else -1
        values = []
        for i, f in enumerate(fields):
            if f == "p":
                values.append(skewed(rng, self.dev_places, 2.5) if i == dev_field else skewed(rng, v.places, 2.5))
            elif f == "s":
                values.append(skewed(rng, self.dev_surnames, 3.0) if i == dev_field else skewed(rng, v.surnames, 3.0))
            elif f == "w":
                if i == dev_field:
                    values.append(skewed(rng, self.dev_words, 2.5))
                else:
                    values.append(skewed(rng, v.places if rng.random() < 0.5 else v.surnames, 2.5))
            elif f == "n":
                values.append(rng.choice(TITLE_NOUNS))
            elif f == "a":
                values.append(rng.choice(TITLE_ADJECTIVES))
            else:  # "y"
                values.append(str(2025 - int(150 * rng.random() ** 1.5)))
        it = iter(values)
        label = _FIELD.sub(lambda _: next(it), template)
        return label, values

    def _aliases(self, kind: str, label: str, parts: list[str]) -> list[str]:
        rng = self.rng
        out: list[str] = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            alias = self._alias(kind, label, parts)
            if alias and alias != label and alias not in out:
                out.append(alias)
        return out

    def _alias(self, kind: str, label: str, parts: list[str]) -> str | None:
        rng = self.rng
        words = label.split()
        r = rng.random()
        if kind == "person" and len(words) >= 2:
            if r < 0.35:
                return words[-1]  # the surname alone, as text refers to people
            if r < 0.7:
                initials = [w if w.endswith(".") else w[0] + "." for w in words[:-1] if w[:1].isalpha()]
                return " ".join(initials + [words[-1]])
            if r < 0.85 and len(words) > 2:
                return f"{words[0]} {words[-1]}"
        if kind in ("org", "event", "country") and r < 0.5:
            initials = "".join(w[0] for w in words if w[:1].isupper())
            if len(initials) >= 2:
                return initials
        if kind == "event" and words[0].isdigit():
            return " ".join(words[1:] + words[:1])  # "Korvale Open 1998"
        if kind == "country" and " of " in label:
            return label.split(" of ", 1)[1]
        if kind == "work" and words[0] == "The" and len(words) > 1:
            return " ".join(words[1:])
        if kind == "place" and r < 0.3 and len(words) == 1:
            return f"City of {label}"
        # An alternative spelling of one name word.
        candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha() and w.casefold() not in FIXED_WORDS]
        if not candidates:
            return None
        i = rng.choice(candidates)
        variant = spelling_variant(rng, words[i])
        return " ".join(words[:i] + [variant] + words[i + 1 :]) if variant else None

    # objects and values
    def _object(self, target: str, subject: int) -> tuple[int | None, bool]:
        """An item id for a claim's object, and whether it is embedded; (None, False) when there is none."""
        rng, pools = self.rng, self.kb.pools
        if target in ROLE_PROPERTIES:
            pool = pools.get(target)
            return (int(rng.choice(pool)[1:]), True) if pool else (None, False)
        pool = pools.get(target)
        share = EMBEDDED_COUNTRY_SHARE if target == "country" else self.embed_link_rate
        if pool and rng.random() < share:
            return int(rng.choice(pool)[1:]), True
        qid = self.kinds.pick(rng, target)
        if qid is None or qid == subject:
            return (int(rng.choice(pool)[1:]), True) if pool else (None, False)
        return qid, False

    def _time(self, target: str, born: int | None) -> tuple[str, int, int]:
        """(Wikidata time string, precision, year) for a time object."""
        rng = self.rng
        if target == "birth":
            year = 2008 - int(420 * rng.random() ** 2)
        elif target == "death":
            year = min(2025, (born or 1900) + 20 + int(rng.random() * 70))
        elif target == "early":
            year = 2020 - int(2520 * rng.random() ** 3)  # down to 500 BCE, mostly recent
        else:
            year = 2025 - int(225 * rng.random() ** 2)
        r = rng.random()
        sign = "-" if year <= 0 else "+"
        y = f"{sign}{abs(year - 1) if year <= 0 else year:04d}"  # no year 0: 1 BCE is -0001
        if year <= 0 or r < 0.02:
            return f"{y}-00-00T00:00:00Z", (7 if year <= 0 and r < 0.5 else 9), year
        if r < 0.05:
            return f"{y}-00-00T00:00:00Z", 8, year  # a decade
        if r < 0.2:
            return f"{y}-00-00T00:00:00Z", 9, year
        if r < 0.3:
            return f"{y}-01-01T00:00:00Z", 9, year  # year precision as January 1st: the dump has both
        month = rng.randint(1, 12)
        if r < 0.36:
            return f"{y}-{month:02d}-00T00:00:00Z", 10, year
        day = rng.randint(1, _MONTH_DAYS[month - 1])
        return f"{y}-{month:02d}-{day:02d}T00:00:00Z", 11, year

    def _odd(self, kind: str, claims: dict[str, list]) -> None:
        """One claim of a shape the parser must skip, the shapes in turn."""
        shape = ODD_SHAPES[self.odd_turn % len(ODD_SHAPES)]
        self.odd_turn += 1
        item_props = [p for p, _, t, _ in CLAIMS[kind] if t not in TIME_OBJECTS and t not in ROLE_PROPERTIES]
        prop = self.rng.choice(item_props)
        if shape in ("somevalue", "novalue"):  # e.g. an unknown place of birth, no children
            snak = {"snaktype": shape, "property": prop, "datatype": "wikibase-item"}
            claim = {"mainsnak": snak, "type": "statement", "rank": "normal"}
        elif shape == "string":
            prop = STRING_PROPERTY
            value = {"value": str(self.rng.randrange(10**7, 10**9)), "type": "string"}
            snak = {"snaktype": "value", "property": prop, "datavalue": value, "datatype": "external-id"}
            claim = {"mainsnak": snak, "type": "statement", "rank": "normal"}
        else:  # a wrong value, marked deprecated: the parser must not keep it
            qid = self.kinds.pick(self.rng, "place") or 1
            claim = _item_value(prop, qid)
            claim["rank"] = "deprecated"
        claims.setdefault(prop, []).append(claim)
        self.stats.odd[shape] += 1
        self.stats.claims += 1

    def item(self, qid: int) -> dict:
        rng, stats = self.rng, self.stats
        kind = self.kinds.kind(qid)
        stats.kinds[kind] += 1
        dev = self.has_dev_names and rng.random() < self.homonym_rate
        label, parts = self.names[kind](dev)
        key = alias_key(label)
        if not dev:  # a made-up name may still spell an embedded label with fixed words only ("Blue Night")
            for _ in range(10):
                if key not in self.kb.label_keys:
                    break
                label, parts = self.names[kind](False)
                key = alias_key(label)
        entity: dict = {"type": "item", "id": f"Q{qid}", "labels": {"en": {"language": "en", "value": label}}}
        aliases = self._aliases(kind, label, parts) if rng.random() < ALIAS_SHARE[kind] else []
        entity["aliases"] = {"en": [{"language": "en", "value": a} for a in aliases]} if aliases else {}
        if aliases:
            stats.aliases += len(aliases)
            stats.items_with_aliases += 1
        claims: dict[str, list] = {}
        born = None
        for prop, p, target, most in CLAIMS[kind]:
            if rng.random() >= p:
                continue
            if target in TIME_OBJECTS:
                if target == "death" and born is None:
                    continue
                text, precision, year = self._time(target, born)
                if target == "birth":
                    born = year
                claims[prop] = [_time_value(prop, text, precision)]
                stats.time_claims += 1
                continue
            values, seen = [], set()
            for _ in range(1 if most == 1 else rng.randint(1, most)):
                obj, embedded = self._object(target, qid)
                if obj is None or obj in seen:
                    continue
                seen.add(obj)
                values.append(_item_value(prop, obj))
                stats.links_to_embedded += embedded
            if values:
                claims[prop] = values
                stats.item_claims += len(values)
        stats.claims += stats_claims(claims)
        if rng.random() < self.odd_rate:
            self._odd(kind, claims)
        entity["claims"] = claims
        self._count_homonym(label, key)
        return entity

    def _count_homonym(self, label: str, key: str) -> None:
        # Measured on the label written, the way a reader of the dump would measure it.
        if key in self.kb.label_keys:
            self.stats.homonyms_exact += 1
            self.stats.embedded_labels_shared.add(key)
        elif any(w in self.kb.words for w in name_words(label)):
            self.stats.homonyms_partial += 1


def stats_claims(claims: dict[str, list]) -> int:
    return sum(len(v) for v in claims.values())


# -- writing ----------------------------------------------------------------------------------------------
def open_output(path: Path, level: int) -> tuple[BinaryIO, BinaryIO]:
    """(stream to write, underlying file): gzip without a file name or time in its header (same bytes for
    the same content wherever and whenever written) when the path ends in .gz, else the plain file."""
    raw = open(path, "wb")
    if path.suffix == ".gz":
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0), raw
    return raw, raw


def dump_lines(args: argparse.Namespace, kb: EmbeddedKB, stats: Stats) -> Iterator[bytes]:
    """The entity lines of the dump, without separators, in file order."""
    n, embedded = args.items, len(kb.lines)
    generated = n - embedded
    max_id = last_generated_id(generated, kb.numeric_ids)
    maker = ItemMaker(args, kb, max_id, stats) if generated else None
    # Embedded lines at random positions, in their own order: spread through the file, as a real KB's
    # items would be, so no reader sees them all in its first batch.
    positions = iter(sorted(random.Random(f"{args.seed}:positions").sample(range(n), embedded)))
    next_embedded, embedded_lines = next(positions, -1), iter(kb.lines)
    qid = 0
    for pos in range(n):
        if pos == next_embedded:
            next_embedded = next(positions, -1)
            stats.embedded += 1
            yield next(embedded_lines)
            continue
        qid += 1
        while qid in kb.numeric_ids:
            qid += 1
        stats.generated += 1
        yield dumps(maker.item(qid))


def write_dump(args: argparse.Namespace) -> dict:
    kb = EmbeddedKB.read(args.embed)
    if args.items < len(kb.lines):
        raise SystemExit(f"--items {args.items} is fewer than the {len(kb.lines)} items of {args.embed}")
    stats = Stats()
    start = time.perf_counter()
    out, raw = open_output(args.output, args.compresslevel)
    written = 0
    with raw, out:
        buffer = [b"[\n"]
        for i, line in enumerate(dump_lines(args, kb, stats)):
            if i:
                buffer.append(b",\n")
            buffer.append(line)
            if len(buffer) >= 4096:  # write in ~MB chunks: one write per line costs more than the JSON
                written += out.write(b"".join(buffer))
                buffer = []
        buffer.append(b"\n]\n")
        written += out.write(b"".join(buffer))
    seconds = time.perf_counter() - start
    file_bytes = args.output.stat().st_size
    generated = max(1, stats.generated)
    summary = {
        "output": str(args.output),
        "items": stats.generated + stats.embedded,
        "generated": stats.generated,
        "embedded": stats.embedded,
        "kinds": dict(sorted(stats.kinds.items())),
        "claims": stats.claims,
        "item_claims": stats.item_claims,
        "time_claims": stats.time_claims,
        "links_to_embedded": stats.links_to_embedded,
        "odd_claims": dict(sorted(stats.odd.items())),
        "items_with_aliases": stats.items_with_aliases,
        "aliases": stats.aliases,
        "homonyms_exact": stats.homonyms_exact,
        "homonyms_partial": stats.homonyms_partial,
        "homonym_share": round((stats.homonyms_exact + stats.homonyms_partial) / generated, 4),
        "embedded_labels_shared": len(stats.embedded_labels_shared),
        "embedded_labels": len(kb.label_keys),
        "uncompressed_bytes": written,
        "bytes": file_bytes,
        "bytes_per_item": round(file_bytes / max(1, args.items), 1),
        "seconds": round(seconds, 2),
        "items_per_second": round(args.items / seconds) if seconds else None,
        "encoder": ENCODER,
    }
    return summary


def print_summary(s: dict) -> None:
    g = max(1, s["generated"])
    print(f"wrote {s['output']}: {s['items']:,} items ({s['generated']:,} generated, {s['embedded']:,} embedded)")
    print("  kinds: " + ", ".join(f"{k} {v:,}" for k, v in s["kinds"].items()))
    print(
        f"  claims: {s['claims']:,} ({s['claims'] / g:.2f} per generated item; {s['item_claims']:,} item-valued, "
        f"{s['time_claims']:,} time-valued, {s['links_to_embedded']:,} pointing at embedded items)"
    )
    print("  claims the parser skips: " + (", ".join(f"{k} {v:,}" for k, v in s["odd_claims"].items()) or "none"))
    print(f"  aliases: {s['aliases']:,} on {s['items_with_aliases']:,} items")
    print(
        f"  names shared with the embedded KB: {s['homonyms_exact'] + s['homonyms_partial']:,} generated labels "
        f"({s['homonym_share']:.1%}): {s['homonyms_exact']:,} equal to an embedded label, "
        f"{s['homonyms_partial']:,} containing a word of one; {s['embedded_labels_shared']:,} of the "
        f"{s['embedded_labels']:,} embedded labels have a generated homonym"
    )
    print(
        f"  {s['bytes']:,} bytes ({s['bytes_per_item']} per item; {s['uncompressed_bytes']:,} uncompressed) in "
        f"{s['seconds']} s: {s['items_per_second']:,} items/s ({s['encoder']})"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--items", type=int, required=True, help="items in the dump, the embedded ones included")
    ap.add_argument("--embed", type=Path, required=True, help="a KB in the dump format to embed unchanged")
    ap.add_argument("--output", type=Path, required=True, help="the dump to write (gzip when it ends in .gz)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--homonym-rate",
        type=float,
        default=0.3,
        help="share of generated items whose label equals an embedded label or contains one of its words",
    )
    ap.add_argument(
        "--embed-link-rate",
        type=float,
        default=0.05,
        help="share of item-valued claims pointing at an embedded item of a fitting kind (countries: 0.5)",
    )
    ap.add_argument(
        "--odd-rate",
        type=float,
        default=0.01,
        help="share of generated items with one claim the parser skips (somevalue, novalue, string, deprecated)",
    )
    ap.add_argument("--compresslevel", type=int, default=6, help="gzip level (1 fastest, 9 smallest)")
    ap.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = ap.parse_args(argv)
    for name in ("homonym_rate", "embed_link_rate", "odd_rate"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            ap.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.items < 1:
        ap.error("--items must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    summary = write_dump(args)
    print_summary(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
