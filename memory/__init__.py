"""The explicit memory: the query interface, the exact-match memory and the embedding memory.

`ExactMemory` needs nothing beyond the standard library; `EmbeddingMemory` (SQLite tables + faiss indexes +
an embedder) is imported lazily, so `import memllm.memory` does not pull faiss or torch.
"""

from memllm.memory.base import Q_THR, RESULT_LIMIT, Memory
from memllm.memory.errors import MemoryUsageError
from memllm.memory.exact import ExactMemory
from memllm.memory.presets import PRESETS, Thresholds, get_preset
from memllm.memory.store import TripleStore

__all__ = [
    "PRESETS",
    "Q_THR",
    "RESULT_LIMIT",
    "EmbeddingMemory",
    "ExactMemory",
    "Hit",
    "Memory",
    "MemoryUsageError",
    "Thresholds",
    "TripleStore",
    "get_preset",
]


def __getattr__(name: str):
    # lazy: `EmbeddingMemory` imports numpy and (when used) faiss; the exact path must stay light
    if name in ("EmbeddingMemory", "Hit"):
        from memllm.memory import embedding_memory

        return getattr(embedding_memory, name)
    raise AttributeError(f"module 'memllm.memory' has no attribute {name!r}")
