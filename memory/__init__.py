"""The explicit memory: the query interface, the exact-match memory (and, later, the embedding store)."""

from memory.base import Q_THR, RESULT_LIMIT, Memory
from memory.exact import ExactMemory

__all__ = ["Q_THR", "RESULT_LIMIT", "ExactMemory", "Memory"]
