"""`ExactMemory`: triples matched by exact strings, no embedder (the memory the golden data was made with).

An in-process dict from `(known name, relation, direction)` to the names on the other side. It is the
reference for tests and the annotator benchmark; the Beam pipeline performs the same lookup as a join
(`pipeline.examples`) so no worker holds all triples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from memllm.memory.base import RESULT_LIMIT
from memllm.schemas.api import Query

TAIL, HEAD = "tail", "head"  # which side of the triple the query asks for


def query_key(query: Query) -> tuple[str, str, str]:
    """The lookup key of a query: the known name, the relation, and the side that is asked for."""
    if query.is_tail_query:
        return (query.subject, query.relation, TAIL)  # type: ignore[return-value]
    return (query.object, query.relation, HEAD)  # type: ignore[return-value]


def triple_keys(head: str, relation: str, tail: str) -> tuple[tuple[tuple[str, str, str], str], ...]:
    """The two (key, answer) entries one stored triple contributes."""
    return (((head, relation, TAIL), tail), ((tail, relation, HEAD), head))


class ExactMemory:
    def __init__(self, triples: Iterable[tuple[str, str, str]] = ()) -> None:
        self._index: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        # Sorted answers per key, filled as keys are queried: a memory is built once and queried many
        # times (Algorithm 1 asks the same popular keys in document after document); any add clears it.
        self._sorted: dict[tuple[str, str, str], list[str]] = {}
        self.add(triples)

    def add(self, triples: Iterable[tuple[str, str, str]]) -> None:
        self._sorted.clear()
        for h, r, t in triples:
            for key, answer in triple_keys(h, r, t):
                self._index[key].add(answer)

    def query_names(self, queries: Sequence[Query], limit: int = RESULT_LIMIT) -> list[list[str]]:
        out = []
        for q in queries:
            key = query_key(q)
            names = self._sorted.get(key)
            if names is None:
                names = self._sorted[key] = sorted(self._index.get(key, ()))
            out.append(names[:limit])  # a copy: callers own their results
        return out

    def __len__(self) -> int:
        return sum(len(v) for k, v in self._index.items() if k[2] == TAIL)
