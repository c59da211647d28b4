"""Embedders for entity and relation strings: L2-normalised float32 vectors, so inner product = cosine.

- `TransformerEmbedder`: the reference's Contriever embedding (docs/method.md §2.1): masked mean pooling over
  the last hidden state of any transformers encoder, inputs truncated to 128 tokens, batched. Real runs use
  `facebook/contriever-msmarco` (loaded with `from_pretrained`, from the HF cache or a local copy); tests use
  the all-MiniLM-L6-v2 directory. We normalise (the reference lets hnswlib's cosine space do it), which
  leaves cosine distances unchanged.
- `CachedEmbedder`: embeds each distinct string once (LRU), and a whole batch with one model call.

Every embedder has a `name` (for messages) and a `fingerprint()`: the embedding of a fixed probe string,
which a stored memory keeps and compares when reopened, so a memory opened with another model (or another
version of it) fails with a clear error whatever path the model was loaded from.
What this module doesn't do: storage, vector search, thresholds.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from memllm.memory.errors import MemoryUsageError

CONTRIEVER = "facebook/contriever-msmarco"
MAX_LENGTH = 128  # the reference truncates to 128 tokens when generating data and filling the memory
_PROBE = "MemLLM memory embedder fingerprint: Lumen Vale>>author>>Carla Fenwick"


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of norm 1."""
        ...


def fingerprint(embedder: Embedder) -> list[float]:
    """The probe embedding, rounded for storage as JSON (compare with `same_embedder`, not `==`)."""
    return [round(float(x), 6) for x in embedder.embed([_PROBE])[0]]


def same_embedder(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two fingerprints come from the same model: cosine ≥ 0.999 (tolerates CPU/GPU/BLAS noise)."""
    va, vb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return va.shape == vb.shape and float(va @ vb) / (np.linalg.norm(va) * np.linalg.norm(vb) + 1e-12) >= 0.999


def _offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(f in ("1", "ON", "YES", "TRUE") for f in flags)


def check_model_available(model: str | Path) -> None:
    """Raise `MemoryUsageError` unless `model` can be loaded without waiting on a network that is not there:
    a local model directory, or a hub id in the local Hugging Face cache. Else, unless the hub is offline
    (HF_HUB_OFFLINE), the hub is asked once; a failed load would retry for about a minute before failing."""
    local = Path(model)
    text = str(model)
    if local.is_absolute() or local.exists() or text.startswith((".", "~")) or text.count("/") > 1:
        if not local.is_dir():
            raise MemoryUsageError(f"embedding model directory not found: {text}")
        return  # a directory that is not a model fails at loading, with the loader's reason
    from huggingface_hub import hf_hub_url, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(text, "config.json"), str):
        return
    hint = (
        f"download it once where the hub is reachable (`hf download {text} --local-dir DIR`) and pass "
        "--embedding-model DIR"
    )
    if _offline():
        raise MemoryUsageError(f"embedding model {text!r} is not in the local Hugging Face cache (offline): {hint}")
    from huggingface_hub import get_session

    try:  # one request, no retries: the model's config is the cheapest proof that the weights can be had
        status = get_session().head(hf_hub_url(text, "config.json"), timeout=10, follow_redirects=True).status_code
    except Exception as e:  # noqa: BLE001  (any transport error means the same: no hub from here)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MemoryUsageError(
            f"embedding model {text!r} is not in the local Hugging Face cache and the hub cannot be reached "
            f"({first}): {hint}"
        ) from None
    if status >= 400:
        raise MemoryUsageError(
            f"embedding model {text!r}: not in the local cache, and the hub answers {status}: {hint}"
        )


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class TransformerEmbedder:
    """Masked mean pooling of a transformers encoder (Contriever's pooling), batched, on CPU or GPU."""

    def __init__(
        self,
        model: str | Path = CONTRIEVER,
        batch_size: int = 128,
        max_length: int = MAX_LENGTH,
        device: str = "cpu",
    ) -> None:
        import torch  # imported here: the store and the exact memory must not need torch
        from transformers import AutoModel, AutoTokenizer

        local = Path(model)
        check_model_available(model)
        try:
            self._tok = AutoTokenizer.from_pretrained(str(model))
            self._enc = AutoModel.from_pretrained(str(model)).eval().to(device)
        except (OSError, ValueError) as e:  # missing files, offline hub, a directory that is not a model
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MemoryUsageError(f"cannot load embedding model {model!r}: {first}") from None
        self._torch, self._device = torch, device
        self.batch_size, self.max_length = batch_size, max_length
        self.dim = int(self._enc.config.hidden_size)
        self.name = self._model_name(model, local)

    @staticmethod
    def _model_name(model: str | Path, local: Path) -> str:
        # a hub id names itself; for a directory use the name its config records (paths differ per machine)
        if not local.is_dir():
            return str(model)
        try:
            recorded = json.loads((local / "config.json").read_text()).get("_name_or_path", "")
        except (OSError, ValueError):
            recorded = ""
        return recorded if recorded and not Path(recorded).is_absolute() else local.name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), np.float32)
        # longest first, so each batch holds similar lengths and pads little
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with self._torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self._tok(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self._device)
                hidden = self._enc(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out[idx] = pooled.float().cpu().numpy()
        return _normalise(out)


class CachedEmbedder:
    """Wraps an embedder: each distinct string is embedded once; misses of one call go in one batch."""

    def __init__(self, inner: Embedder, max_entries: int = 200_000) -> None:
        self.inner, self.max_entries = inner, max_entries
        self.name, self.dim = inner.name, inner.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.calls = 0  # strings actually sent to the inner embedder (tests check the caching)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = self.inner.embed(missing)
            if vectors.shape != (len(missing), self.dim):
                raise MemoryUsageError(
                    f"embedder {self.name} returned shape {vectors.shape}, expected ({len(missing)}, {self.dim})"
                )
            self.calls += len(missing)
            self._cache.update(zip(missing, vectors))
        if not texts:
            return np.empty((0, self.dim), np.float32)
        out = np.stack([self._cache[t] for t in texts])
        for t in texts:  # LRU: recently used strings go to the end, the oldest are evicted first
            self._cache.move_to_end(t)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return out
