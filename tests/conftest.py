"""Shared fixtures: the `../shared` data (tests skip cleanly without it) and the shipped sample."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path.name} not available (needs ../shared)")
    return path


@pytest.fixture(scope="session")
def labels():
    from annotators.relation_labels import property_labels

    return property_labels()


@pytest.fixture(scope="session")
def sample_path() -> Path:
    from pipeline.cli import sample_path

    return Path(sample_path())


def load_documents(path: Path, labels, split: str = "validation", source: str = "redocred"):
    from annotators.docred import parse_document, scan_json_records

    with open(path, "rb") as f:
        return [
            parse_document(
                rec.value,
                doc_id=f"{path.stem}-{i:06d}",
                doc_index=i,
                source=source,
                split=split,
                relation_labels=labels,
            )
            for i, rec in enumerate(scan_json_records(f))
        ]


@pytest.fixture(scope="session")
def sample_docs(sample_path, labels):
    return load_documents(sample_path, labels, split="train", source="sample")


@pytest.fixture(scope="session")
def dev_docs(labels):
    return load_documents(shared_file("redocred", "dev_revised.json"), labels)


def gold_memory(docs, labels):
    """The exact-match memory the golden data was made with: every gold triple, every mention-name pair."""
    from annotators.read_examples import gold_triples
    from memory.exact import ExactMemory

    return ExactMemory(t for d in docs for t in gold_triples(d, labels))


def reference_write_examples(docs, labels):
    """Memory-write examples with the reference's seeded stream carried through the file in order."""
    from annotators.write_examples import build_write_examples

    rng = random.Random(42)
    return [ex for d in docs for ex in build_write_examples(d, labels, rng=rng)]


def read_json_lines(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]
