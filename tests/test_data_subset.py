"""The test data: the shipped Re-DocRED dev subset stands in for the whole split, and CI's switch turns a
skip for missing data into a failure."""

import dataclasses
import json

import pytest

from tests import conftest
from tests.conftest import DATA, FULL_DEV, SUBSET_DEV, dev_data, shared_file


def test_missing_data_skips_or_with_the_switch_fails(monkeypatch):
    monkeypatch.delenv(conftest.REQUIRE_SHARED_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-file"):
        shared_file("no-such-file.json")
    monkeypatch.setenv(conftest.REQUIRE_SHARED_ENV, "0")
    with pytest.raises(pytest.skip.Exception):
        shared_file("no-such-file.json")
    monkeypatch.setenv(conftest.REQUIRE_SHARED_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no-such-file.json missing .* MEMLLM_REQUIRE_SHARED_DATA"):
        shared_file("no-such-file.json")


def test_without_the_whole_split_the_subset_is_used_unless_required(monkeypatch, tmp_path):
    gone = dataclasses.replace(FULL_DEV, documents=conftest.SHARED / "redocred" / "no-such-split.json")
    monkeypatch.setattr(conftest, "FULL_DEV", gone)
    monkeypatch.delenv(conftest.REQUIRE_SHARED_ENV, raising=False)
    assert dev_data() is SUBSET_DEV
    monkeypatch.setenv(conftest.REQUIRE_SHARED_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no-such-split.json"):
        dev_data()


def test_the_subset_is_self_consistent():
    """50 documents; the reference outputs cover exactly those; the memory documents carry only relations
    (no evidence), and none of the 50 documents is among them."""
    docs = json.loads(SUBSET_DEV.documents.read_text(encoding="utf-8"))
    carriers = json.loads(SUBSET_DEV.memory_documents.read_text(encoding="utf-8"))
    assert len(docs) == 50
    assert {g["doc_idx"] for g in SUBSET_DEV.memwrite_lines()} == set(range(50))
    assert {g["data_idx"] for g in SUBSET_DEV.memread_examples()} <= set(range(50))
    assert carriers and all(lab["evidence"] == [] for c in carriers for lab in c["labels"])
    assert not {d["title"] for d in docs} & {c["title"] for c in carriers}
    assert sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file()) < 1_000_000


def test_make_subset_cuts_the_shipped_files_from_the_whole_split(tmp_path):
    import importlib.util

    full = (FULL_DEV.documents, FULL_DEV.memwrite, FULL_DEV.memread)
    paths = [shared_file(*p.relative_to(conftest.SHARED).parts) for p in full]
    spec = importlib.util.spec_from_file_location("make_subset", DATA / "make_subset.py")
    make_subset = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_subset)
    make_subset.main([*map(str, paths), "--out", str(tmp_path)])
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(made) == 4
    for rel in made:
        assert (tmp_path / rel).read_bytes() == (DATA / rel).read_bytes(), rel
