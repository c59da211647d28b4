"""`KnowledgeBase`: the in-memory alias table and fact index the entity linker reads.

Built from `WikidataEntity` records (`from_entities`) or from its two Arrow tables (`from_tables`, the
Parquet form later runs reuse); `entity_table`/`fact_table` give those tables back, sorted, so the same
KB always writes the same bytes. Lookups: alias key → candidate ids, facts between two ids, an id's
neighbours (ids it shares a fact with, either direction), and which time values occur as fact objects.

Aliases are matched by `alias_key`: case-folded, whitespace removed, typographic quotes and thousands
separators normalised. Removing whitespace makes `Wilfried " Willi " Schneider` (DocRED's token-joined
form) and `Wilfried "Willi" Schneider` the same key; the collisions it causes (`Paris is` vs `Parisis`)
the linker tells apart by their words (`alias_words`). Pickling keeps only the rows and rebuilds the
indexes (cheap, and far smaller than pickled dicts). This KB holds everything in one process: fine for a
KB restricted to the entities of a corpus, not for the whole of Wikidata (~100M items), which
`annotators.kb_index.KBIndex` serves from memory-mapped files instead. Both answer `KBLookups`, the
lookups by key or id the linker makes; listing every name (`aliases`, `alias_keys`) is this class's alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Protocol

import pyarrow as pa
from memllm.annotators.wikidata import WikidataEntity

KB_ENTITY_SCHEMA = pa.schema([("id", pa.string()), ("label", pa.string()), ("aliases", pa.list_(pa.string()))])
KB_FACT_SCHEMA = pa.schema([("subject", pa.string()), ("property", pa.string()), ("object", pa.string())])

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_WORD_RUN = re.compile(r"\w+")


def alias_key(text: str) -> str:
    """The lookup key of a surface form: NFKC, case-folded, no whitespace, `’`→`'`, `1,500`→`1500`."""
    return join_token_keys(token_key(text))


def token_key(token: str) -> str:
    """A token's part of an alias key: `join_token_keys` of the concatenated parts of a text's tokens is the
    text's `alias_key` (NFKC does not join characters across token edges in practice), which lets the linker
    build the keys of all n-grams of a document by concatenation."""
    if token.isascii():  # the common case: NFKC and the quote table change nothing, casefold is lower
        return "".join(token.lower().split())
    return "".join(unicodedata.normalize("NFKC", token).translate(_QUOTES).casefold().split())


def alias_words(text: str) -> tuple[str, ...]:
    """The words of a surface form, normalised as in `alias_key`: two forms with one key are taken for one
    name when they also have the same words, as `Wilfried " Willi " Schneider` and `Wilfried "Willi"
    Schneider` do and `Paris is` and `Parisis` do not."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return tuple(_WORD_RUN.findall(_THOUSANDS.sub("", text.casefold())))


def join_token_keys(joined: str) -> str:
    """The alias key of concatenated `token_key`s: thousands separators go only now, when their digits are
    known on both sides (`1` `,` `500`)."""
    return _THOUSANDS.sub("", joined) if "," in joined else joined


def is_time_key(kb_id: str) -> bool:
    """Whether `kb_id` is a time value (`+1963-03-13T00:00:00Z/11`) rather than an item id."""
    return kb_id[:1] in ("+", "-") and "/" in kb_id


def _id_order(entity_id: str) -> tuple[int, str]:
    # Q9 before Q10: numeric order for Wikidata ids, string order as the tie-break.
    return (len(entity_id), entity_id)


class KBLookups(Protocol):
    """What the linker and the annotator ask of a KB: lookups by alias key, surface form or id, never a
    listing of all names, so that a KB too big for memory (`annotators.kb_index.KBIndex`) answers them too."""

    def __contains__(self, entity_id: str) -> bool: ...
    def __len__(self) -> int: ...
    def candidates(self, key: str) -> tuple[str, ...]: ...
    def candidates_many(self, keys: Sequence[str]) -> list[tuple[str, ...]]: ...
    def is_exact_form(self, text: str) -> bool: ...
    def label(self, entity_id: str) -> str | None: ...
    def names(self, entity_id: str) -> tuple[str, ...]: ...
    def facts(self, subject: str) -> tuple[tuple[str, str], ...]: ...
    def facts_between(self, subject: str, obj: str) -> tuple[str, ...]: ...
    def neighbours(self, entity_id: str) -> frozenset[str]: ...
    def has_time(self, key: str) -> bool: ...


class KnowledgeBase:
    """Entities (id, label, aliases) and facts (subject, property, object) with the linker's indexes."""

    def __init__(self, entities: Iterable[tuple[str, str | None, tuple[str, ...]]], facts: Iterable[tuple]):
        self._entities = sorted(
            {e[0]: (e[0], e[1], tuple(e[2])) for e in entities}.values(), key=lambda e: _id_order(e[0])
        )
        self._facts = sorted(set(map(tuple, facts)), key=lambda f: (_id_order(f[0]), f[1], f[2]))
        self._build()

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_entities(cls, entities: Iterable[WikidataEntity]) -> KnowledgeBase:
        rows, facts = [], []
        for e in entities:
            rows.append((e.id, e.label, e.aliases))
            facts.extend((e.id, prop, obj) for prop, obj in e.facts)
        return cls(rows, facts)

    @classmethod
    def from_tables(cls, entities: pa.Table, facts: pa.Table) -> KnowledgeBase:
        ent = entities.select(["id", "label", "aliases"]).to_pydict()
        fac = facts.select(["subject", "property", "object"]).to_pydict()
        return cls(
            zip(ent["id"], ent["label"], [a or () for a in ent["aliases"]]),
            zip(fac["subject"], fac["property"], fac["object"]),
        )

    def entity_table(self) -> pa.Table:
        ids, labels, aliases = zip(*self._entities) if self._entities else ((), (), ())
        return pa.table([list(ids), list(labels), [list(a) for a in aliases]], schema=KB_ENTITY_SCHEMA)

    def fact_table(self) -> pa.Table:
        cols = list(zip(*self._facts)) if self._facts else [(), (), ()]
        return pa.table([list(c) for c in cols], schema=KB_FACT_SCHEMA)

    def __getstate__(self):
        return {"entities": self._entities, "facts": self._facts}

    def __setstate__(self, state):
        self._entities, self._facts = state["entities"], state["facts"]
        self._build()

    def _build(self) -> None:
        self._label: dict[str, str | None] = {}
        self._names: dict[str, tuple[str, ...]] = {}
        index: dict[str, list[str]] = defaultdict(list)
        self._exact_forms: set[str] = set()  # case-preserved, whitespace-free surface forms
        for entity_id, label, aliases in self._entities:
            names = tuple(dict.fromkeys(([label] if label else []) + list(aliases)))
            self._label[entity_id] = label
            self._names[entity_id] = names
            for name in names:
                key = alias_key(name)
                if key and entity_id not in index[key]:
                    index[key].append(entity_id)
                self._exact_forms.add("".join(name.split()))
        self._alias_index = {k: tuple(v) for k, v in index.items()}
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        between: dict[tuple[str, str], list[str]] = defaultdict(list)
        neighbours: dict[str, set[str]] = defaultdict(set)
        self._times: set[str] = set()
        for s, p, o in self._facts:
            out[s].append((p, o))
            between[(s, o)].append(p)
            if s != o:
                neighbours[s].add(o)
                neighbours[o].add(s)
            if is_time_key(o):
                self._times.add(o)
        self._out = {k: tuple(v) for k, v in out.items()}
        self._between = {k: tuple(v) for k, v in between.items()}
        self._neighbours = {k: frozenset(v) for k, v in neighbours.items()}

    # -- lookups ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entities)

    def __contains__(self, entity_id: str) -> bool:
        return entity_id in self._label

    @property
    def num_facts(self) -> int:
        return len(self._facts)

    def label(self, entity_id: str) -> str | None:
        return self._label.get(entity_id)

    def names(self, entity_id: str) -> tuple[str, ...]:
        """Label first, then aliases."""
        return self._names.get(entity_id, ())

    def candidates(self, key: str) -> tuple[str, ...]:
        """Entity ids with a name whose `alias_key` is `key`, in id order."""
        return self._alias_index.get(key, ())

    def candidates_many(self, keys: Sequence[str]) -> list[tuple[str, ...]]:
        """`candidates` of each key, in order: the linker asks for all of a document's spans at once."""
        return list(map(self._alias_index.get, keys, repeat((), len(keys))))

    def alias_keys(self) -> Iterable[str]:
        return self._alias_index.keys()

    def aliases(self) -> Iterable[tuple[str, str]]:
        """(entity id, name) for every name of every entity, in id order."""
        for entity_id, names in self._names.items():
            for name in names:
                yield entity_id, name

    def is_exact_form(self, text: str) -> bool:
        """Whether `text` (whitespace ignored, case kept) is exactly a name of some entity."""
        return "".join(text.split()) in self._exact_forms

    def facts(self, subject: str) -> tuple[tuple[str, str], ...]:
        """(property, object) of every fact of `subject`."""
        return self._out.get(subject, ())

    def facts_between(self, subject: str, obj: str) -> tuple[str, ...]:
        """Properties p with (subject, p, obj) in the KB."""
        return self._between.get((subject, obj), ())

    def neighbours(self, entity_id: str) -> frozenset[str]:
        """Ids that share at least one fact with `entity_id`, in either direction."""
        return self._neighbours.get(entity_id, frozenset())

    def has_time(self, key: str) -> bool:
        """Whether the time value `key` (`TIME/PRECISION`) is the object of some fact."""
        return key in self._times
