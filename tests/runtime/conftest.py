"""Fixtures for the runtime tests: the tiny random Mistral (real Mistral-7B tokenizer) of the trainer tests,
the MiniLM embedder directory of the memory tests, and LoRA adapters trained on the tiny model for a few
steps by `memllm train`'s recipe (once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.memory import conftest as memory_fixtures
from tests.trainer import conftest as trainer_fixtures
from tests.trainer.conftest import read_examples, write_examples, write_shards

# The trainer tests' model fixtures, shared with this directory.
mistral_tokenizer_dir = trainer_fixtures.mistral_tokenizer_dir
tiny_mistral = trainer_fixtures.tiny_mistral
minilm_dir = memory_fixtures.minilm_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every runtime test runs torch on one thread (see tests/conftest.py)."""


def train_adapter(tmp: Path, model: Path, task: str, steps: int = 2) -> Path:
    """A LoRA adapter for `task` from `steps` optimizer steps of `memllm train` (not trained to be good)."""
    from memllm.trainer.config import DataSource, TrainConfig
    from memllm.trainer.recipe import train

    table, examples = (
        ("memory_write", write_examples(2, seed=5)) if task == "write" else ("memory_read", read_examples(2, seed=5))
    )
    data = write_shards(tmp / "data", table, "train", examples)
    out = tmp / f"{task}-adapter"
    train(
        TrainConfig(
            data=[DataSource(data)],
            task=task,
            model=str(model),
            output=out,
            batch_size=2,
            micro_batch_size=2,
            max_steps=steps,
            learning_rate=1e-3,
            save_every=1000,
            eval_split="none",
            progress=False,
            report_to=[],
            cache_dir=str(tmp / "cache"),
        )
    )
    return out


@pytest.fixture(scope="session")
def write_adapter(tmp_path_factory, tiny_mistral) -> Path:
    return train_adapter(tmp_path_factory.mktemp("write-adapter"), tiny_mistral, "write")


@pytest.fixture(scope="session")
def read_adapter(tmp_path_factory, tiny_mistral) -> Path:
    return train_adapter(tmp_path_factory.mktemp("read-adapter"), tiny_mistral, "read")
