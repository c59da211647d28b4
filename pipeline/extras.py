"""The optional parts of memllm and the extra that installs each, checked before a command starts.

A base install (`pip install memllm`) has Beam, pyarrow and orjson: `memllm generate` on DocRED-format input
with the exact memory. Everything else needs an extra; `missing_extra(feature)` says which, in one line, so
the commands fail before Beam starts or an output is written instead of ending in a `ModuleNotFoundError`.

Kept free of imports beyond the standard library: the trainer and memory commands use it too.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Feature:
    what: str  # how the message names the feature
    modules: tuple[str, ...]  # top-level modules it imports
    extra: str  # the memllm extra that installs them


FEATURES: dict[str, Feature] = {
    "train": Feature("memllm train", ("torch", "transformers", "peft", "accelerate", "datasets"), "train"),
    "memory": Feature("the embedding memory", ("torch", "transformers", "faiss"), "memory"),
    "wikipedia": Feature("--source wikipedia", ("spacy", "rapidfuzz"), "wikipedia"),
    # accelerate: the judge places a model on GPUs with device_map="auto"; the train extra has all three
    "judge": Feature("the LLM evidence judge (--evidence llm)", ("torch", "transformers", "accelerate"), "train"),
    "dask": Feature("the DaskRunner", ("dask", "distributed"), "dask"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or an import hook that refuses the module
        return False


def missing_extra(*features: str) -> str | None:
    """One line naming the first of `features` whose modules are not all installed and the extra to install,
    or None when every module is there. Looks the modules up without importing them (torch takes seconds)."""
    for name in features:
        feature = FEATURES[name]
        missing = [m for m in feature.modules if not _installed(m)]
        if missing:
            absent = "" if missing == list(feature.modules) else f" ({', '.join(missing)} not installed)"
            return f"{feature.what} needs {', '.join(feature.modules)}{absent}: pip install 'memllm[{feature.extra}]'"
    return None


__all__ = ["FEATURES", "Feature", "missing_extra"]
