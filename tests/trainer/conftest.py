"""Fixtures for the trainer tests: models built once per session, shards built from the schema records.

Models (cached under pytest's session temp dir):
- `tiny_mistral`: a random 2-layer `MistralForCausalLM` (4 M parameters) with the real Mistral-7B-v0.1
  tokenizer, which the `mistral-common` package ships byte-identical as `data/tokenizer.model.v1`.
- `smollm2`: SmolLM2-135M-Instruct (real weights), from `tests/conftest.py` (shared with the evidence tests).
Each skips cleanly when its model package is not installed.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from memllm.schemas import api
from memllm.schemas.records import (
    MEMORY_READ_SCHEMA,
    MEMORY_WRITE_SCHEMA,
    DocRef,
    ReadExample,
    WriteExample,
    WriteTriple,
)

from tests.conftest import import_if_installed
from tests.support.tiny import convert_mistral_tokenizer, mistral_tokenizer_source, save_tiny_mistral

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SCHEMAS = {"memory_write": MEMORY_WRITE_SCHEMA, "memory_read": MEMORY_READ_SCHEMA}


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every trainer test runs torch on one thread (see tests/conftest.py)."""


@pytest.fixture(autouse=True)
def _no_stream_shutdown_sleep(monkeypatch):
    """datasets sleeps 5 s whenever an iteration over several Arrow streams ends (a pyarrow thread-shutdown
    workaround); the streaming tests iterate small data several times."""
    import datasets

    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


@pytest.fixture(scope="session")
def mistral_tokenizer_dir(tmp_path_factory) -> Path:
    source = mistral_tokenizer_source()
    if source is None:
        pytest.skip("mistral-common (Mistral-7B tokenizer data) is not installed")
    import_if_installed("sentencepiece", "converting the Mistral tokenizer")
    work = tmp_path_factory.mktemp("mistral-spm")
    return convert_mistral_tokenizer(source, work, tmp_path_factory.mktemp("mistral-tokenizer"))


@pytest.fixture(scope="session")
def tiny_mistral(tmp_path_factory, mistral_tokenizer_dir) -> Path:
    """A tiny random Mistral-architecture model directory with the real Mistral tokenizer (no pad token)."""
    return save_tiny_mistral(tmp_path_factory.mktemp("tiny-mistral"), mistral_tokenizer_dir)


# --- shards -------------------------------------------------------------------------------------------

WORDS = (
    "river castle novel singer album city founded born award museum painter bridge island film river"
    " station church company league record village school county actor poet opera harbour valley"
).split()
RELATIONS = ["author", "place of birth", "country", "performer", "part of", "located in", "publisher"]


def _sentence(rng: random.Random) -> str:
    return (
        " ".join(rng.choice(WORDS).capitalize() if i == 0 else rng.choice(WORDS) for i in range(rng.randint(5, 12)))
        + " ."
    )


def write_examples(n_docs: int = 4, seed: int = 0, split: str = "train") -> list[WriteExample]:
    rng = random.Random(seed)
    out = []
    for d in range(n_docs):
        doc = DocRef("sample", split, f"{split}-doc{d}", d, f"Doc {d}")
        sents = [_sentence(rng) for _ in range(rng.randint(3, 6))]
        for i, focus in enumerate(sents):
            triples = [
                WriteTriple(
                    rng.choice(WORDS).title(),
                    rng.choice(RELATIONS),
                    rng.choice(WORDS).title(),
                    0,
                    1,
                    "P50",
                    k,
                )
                for k in range(rng.randint(0, 3))
            ]
            out.append(WriteExample(doc, i, " ".join(sents[:i]), focus, triples))
    return out


def read_examples(n_docs: int = 4, seed: int = 0, split: str = "train") -> list[ReadExample]:
    """Reads as Algorithm 1 lays them out: the first example of a document carries its prefix in
    `preapi_text` (trained), later ones in `pre_text` (untrained); the last one ends the document."""
    rng = random.Random(seed)
    out = []
    for d in range(n_docs):
        doc = DocRef("sample", split, f"{split}-doc{d}", d, f"Doc {d}")
        pieces = [_sentence(rng)[:-2] for _ in range(rng.randint(2, 4))]
        targets = [rng.choice(WORDS).title() for _ in pieces]
        for k, piece in enumerate(pieces):
            before = " ".join(f"{p} {t}" for p, t in zip(pieces[:k], targets[:k]))
            before = f"{before} {piece}" if before else piece
            query = api.Query(rng.choice(WORDS).title(), rng.choice(RELATIONS), None)
            results = [[targets[k]] + ([rng.choice(WORDS).title()] if rng.random() < 0.5 else [])]
            eot = k == len(pieces) - 1
            out.append(
                ReadExample(
                    doc,
                    k,
                    len(before.split()),
                    targets[k],
                    pre_text="" if k == 0 else before,
                    preapi_text=before if k == 0 else "",
                    queries=[query],
                    query_results=results,
                    continuation=f"{targets[k]} {'ends here .' if eot else pieces[k + 1]}",
                    eot=eot,
                )
            )
    return out


def write_shards(directory: Path, table: str, split: str, examples: list, n_shards: int = 1) -> Path:
    """Write `examples` as `directory/table/<split>-0000k-of-0000N.parquet`, rows built by `to_row()`."""
    tdir = directory / table
    tdir.mkdir(parents=True, exist_ok=True)
    rows = sorted((ex.to_row() for ex in examples), key=lambda r: r["id"])
    for k in range(n_shards):
        part = rows[k::n_shards]
        pq.write_table(
            pa.Table.from_pylist(part, schema=SCHEMAS[table]),
            tdir / f"{split}-{k:05d}-of-{n_shards:05d}.parquet",
        )
    return directory


@pytest.fixture
def write_data(tmp_path) -> Path:
    out = tmp_path / "out"
    write_shards(out, "memory_write", "train", write_examples(4, seed=1), n_shards=2)
    write_shards(out, "memory_write", "validation", write_examples(2, seed=2, split="validation"))
    return out


@pytest.fixture
def read_data(tmp_path) -> Path:
    out = tmp_path / "out"
    write_shards(out, "memory_read", "train", read_examples(6, seed=3))
    return out
