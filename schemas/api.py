"""The MemLLM API strings: constants, render and parse functions.

These strings are what the models read and emit (docs/method.md §3). Everything that produces or consumes
API text goes through this module, so the exact bytes live in one place. Parsing is strict where the
format is ours (training data) and lenient where a model produced it (`parse_write_call` keeps only
well-formed `h>>r>>t` items, as the reference controller does).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

START = "({"  # token 2882 in Mistral-7B's vocabulary
END = "})"  # token 1542
WAIT = "-->"  # token 26345
SPECIAL_TOKENS = (START, END, WAIT)

USER_ST = "({USER_ST})"
USER_END = "({USER_END})"
MEM_WRITE = "({MEM_WRITE" + WAIT
MEM_READ = "({MEM_READ("
MEM_READ_QUERY_END = ")" + WAIT
FIELD_SEP = ">>"
ITEM_SEP = ";"
MAX_QUERIES = 3


class APIParseError(ValueError):
    """A string is not a well-formed MemLLM API call or query."""


@dataclass(frozen=True, slots=True)
class Query:
    """One memory query: exactly one of `subject` / `object` is None (the unknown side).

    `(s, r, None)` is a TAIL query ("s>>r>>"), `(None, r, o)` a HEAD query (">>r>>o").
    """

    subject: str | None
    relation: str
    object: str | None
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.subject is None) == (self.object is None):
            raise APIParseError(f"a query needs exactly one unknown side, got {self!r}")
        if not self.relation:
            raise APIParseError(f"a query needs a relation, got {self!r}")
        if not (self.subject or self.object):
            raise APIParseError(f"a query needs a non-empty known entity, got {self!r}")
        # Queries key the memory results that Algorithm 1 looks up ~140 times a document: hash once.
        object.__setattr__(self, "_hash", hash((self.subject, self.relation, self.object)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self):
        # String hashes differ between processes: a pickled query is rebuilt (and re-hashed) where it lands.
        return Query, (self.subject, self.relation, self.object)

    @property
    def is_tail_query(self) -> bool:
        return self.object is None

    @property
    def known(self) -> str:
        return self.subject if self.subject is not None else self.object  # type: ignore[return-value]

    def render(self) -> str:
        return f"{self.subject or ''}{FIELD_SEP}{self.relation}{FIELD_SEP}{self.object or ''}"


def _check_field(value: str, what: str) -> str:
    if not value:
        raise APIParseError(f"empty {what}")
    if FIELD_SEP in value or ITEM_SEP in value:
        raise APIParseError(f"{what} {value!r} contains a separator ('>>' or ';')")
    return value


def parse_query(text: str) -> Query:
    """Parse `s>>r>>` or `>>r>>o` (the API's own query syntax)."""
    parts = text.split(FIELD_SEP)
    if len(parts) != 3:
        raise APIParseError(f"query {text!r} must have the form 's>>r>>' or '>>r>>o'")
    s, r, o = (p.strip() for p in parts)
    if bool(s) == bool(o):
        raise APIParseError(f"query {text!r} must leave exactly one side empty")
    return Query(s or None, _check_field(r, "relation"), o or None)


def render_triple(head: str, relation: str, tail: str) -> str:
    return FIELD_SEP.join((head, relation, tail))


def render_write_call(triples: Iterable[tuple[str, str, str]]) -> str:
    """`({MEM_WRITE-->h>>r>>t;...})`; the empty write is `({MEM_WRITE-->})`."""
    return MEM_WRITE + ITEM_SEP.join(map(FIELD_SEP.join, triples)) + END  # `render_triple` of each, in C


def render_write_context(pretext: str, focus: str) -> str:
    """The memory-write prompt: `pretext({USER_ST})focus({USER_END})`."""
    return f"{pretext}{USER_ST}{focus}{USER_END}"


def parse_write_call(text: str, strict: bool = False) -> list[tuple[str, str, str]]:
    """Triples of the last `({MEM_WRITE-->...})` call in `text`.

    Lenient by default, like the reference controller: the text after the last `-->` up to the first `})`,
    split on `;` then `>>`, keeping 3-part items with no empty field. `strict=True` raises instead of
    skipping, for checking our own training data.
    """
    at = text.rfind(MEM_WRITE)
    if at < 0:
        raise APIParseError(f"no {MEM_WRITE!r} in {text[:80]!r}")
    body = text[at + len(MEM_WRITE) :]
    end = body.find(END)
    if end < 0:
        if strict:
            raise APIParseError(f"write call not closed by {END!r}")
    else:
        body = body[:end]
    triples = []
    for item in body.split(ITEM_SEP) if body else []:
        parts = item.split(FIELD_SEP)
        if len(parts) == 3 and all(parts):
            triples.append((parts[0], parts[1], parts[2]))
        elif strict:
            raise APIParseError(f"malformed triple {item!r}")
    return triples


def render_read_call(queries: Sequence[Query]) -> str:
    """`({MEM_READ(q1;q2)-->` (the part the read model generates before the results)."""
    if not 1 <= len(queries) <= MAX_QUERIES:
        raise APIParseError(f"a read has 1..{MAX_QUERIES} queries, got {len(queries)}")
    return MEM_READ + ITEM_SEP.join([q.render() for q in queries]) + MEM_READ_QUERY_END


def union_results(query_results: Sequence[Sequence[str]]) -> list[str]:
    """The read's result list: the union over all queries, first occurrence wins.

    The reference joins a Python `set` (order differs per process, docs/method.md §11.8); we keep the order of
    the queries and of each (sorted) result list so the same example always renders the same bytes.
    """
    return list(dict.fromkeys(itertools.chain.from_iterable(query_results)))


def render_read_results(query_results: Sequence[Sequence[str]]) -> str:
    return ITEM_SEP.join(union_results(query_results))


def parse_read_call(text: str) -> tuple[list[Query], list[str]]:
    """Queries and results of the last complete `({MEM_READ(...)-->...})` call in `text`."""
    at = text.rfind(MEM_READ)
    if at < 0:
        raise APIParseError(f"no {MEM_READ!r} in {text[:80]!r}")
    body = text[at + len(MEM_READ) :]
    q_end = body.find(MEM_READ_QUERY_END)
    if q_end < 0:
        raise APIParseError(f"read call has no {MEM_READ_QUERY_END!r}")
    queries = [parse_query(q) for q in body[:q_end].split(ITEM_SEP)]
    rest = body[q_end + len(MEM_READ_QUERY_END) :]
    r_end = rest.find(END)
    if r_end < 0:
        raise APIParseError(f"read call not closed by {END!r}")
    results = rest[:r_end].split(ITEM_SEP) if rest[:r_end] else []
    return queries, results
