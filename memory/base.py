"""The memory interface Algorithm 1 and inference code query, whatever stores the triples.

A memory answers MemLLM queries `(s, r, ?)` / `(?, r, o)` with the names on the unknown side. Every
implementation (the exact-match memory here, the embedding memory) returns, per query, the distinct names
sorted, so results never depend on hash order. `limit` mirrors the reference's SQL `LIMIT Q_thr + 1`: a
result longer than Q_thr is over-broad whatever its true size, so nothing needs more than Q_thr + 1 names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from memllm.schemas.api import Query

Q_THR = 30  # the paper's Q_thr: a query with more results than this is unspecific (docs/method.md §2.2)
RESULT_LIMIT = Q_THR + 1


class Memory(Protocol):
    def query_names(self, queries: Sequence[Query], limit: int = RESULT_LIMIT) -> list[list[str]]:
        """For each query, the sorted distinct names of its unknown side (at most `limit` of them)."""
        ...
