"""The logic behind `memllm evidence-eval`: reading DocRED-format files and dispatching to a judge."""

import json

import pytest
from memllm.annotators.docred import InputFormatError
from memllm.annotators.evidence import Candidate, heuristic_judge
from memllm.annotators.evidence_eval import judge_verdicts, load_documents

DOC = {
    "title": "Lumen Vale",
    "sents": [["Lumen", "Vale", "is", "a", "novel", "by", "Carla", "Fenwick", "."]],
    "vertexSet": [
        [{"name": "Lumen Vale", "sent_id": 0, "pos": [0, 2], "type": "MISC"}],
        [{"name": "Carla Fenwick", "sent_id": 0, "pos": [6, 8], "type": "PER"}],
    ],
    "labels": [{"h": 0, "t": 1, "r": "P50", "evidence": [0]}],
}


def test_load_documents_skips_invalid_records_and_refuses_non_json(tmp_path):
    path = tmp_path / "docs.json"
    path.write_text(json.dumps([DOC, {"title": 1}, DOC]))
    docs = load_documents(str(path))
    assert [d.doc_index for d in docs] == [0, 2] and docs[0].relations[0].evidence == [0]
    (tmp_path / "broken.json").write_text("title: Lumen Vale\n")
    with pytest.raises(InputFormatError):
        load_documents(str(tmp_path / "broken.json"))
    with pytest.raises(OSError):
        load_documents(str(tmp_path / "missing.json"))


def test_judge_verdicts_dispatches_by_name(tmp_path):
    path = tmp_path / "docs.json"
    path.write_text(json.dumps([DOC]))
    cands = [Candidate(load_documents(str(path))[0], 0, 0, True)]
    assert judge_verdicts("heuristic", cands) == heuristic_judge(cands) == [True]
    with pytest.raises(ValueError, match="unknown judge 'guess'"):
        judge_verdicts("guess", cands)
