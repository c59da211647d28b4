"""A model-free embedder for tests and benchmarks of the memory machinery (not for real memories).

`HashingEmbedder` hashes character trigrams into `dim` buckets: deterministic, ~10 µs a string, and strings
sharing trigrams (aliases, inflections) get a high cosine. It follows `memllm.memory.embedding.Embedder`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np


class HashingEmbedder:
    """Character-trigram feature hashing: deterministic, no model, ~10 µs a string."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashing-trigrams-{dim}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of norm 1."""
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text} "
            for j in range(len(padded) - 2):
                # crc32, not hash(): the same string must give the same vector in every process
                h = zlib.crc32(padded[j : j + 3].encode())
                out[row, h % self.dim] += 1.0 if h & 0x80000000 else -1.0
        out[~out.any(axis=1), 0] = 1.0  # buckets can cancel out; keep every vector normalisable
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)
