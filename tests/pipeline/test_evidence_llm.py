"""`--evidence llm` in the pipeline: the DoFn with a hand-written judge, the CLI's checks, and an end-to-end
`memllm generate` with the real SmolLM2-135M on documents of the shipped sample."""

import json
from collections import defaultdict

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from memllm.annotators.evidence_llm import STOP, parse_verdict
from memllm.pipeline.batches import DocumentBatch
from memllm.pipeline.evidence import JudgeEvidence, JudgeEvidenceFn
from memllm.schemas.document import Document, Entity, Mention, Relation
from memllm.schemas.records import EVIDENCE_SCHEMA

from tests.pipeline.test_generate import generate

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def yes_at_first_sentence(prompts):
    """Yes when the main sentence is the document's first (no context), else No."""
    first = [p.rsplit(STOP, 1)[1].startswith("Context:\nMain Sentence:") for p in prompts]
    return ["The answer is Yes." if f else "The answer is No." for f in first]


def two_sentence_doc(doc_id: str, evidence: list[int]) -> Document:
    sents = [["Ann", "met", "Bo", "."], ["Bo", "saw", "Ann", "."]]
    entities = [Entity([Mention("Ann", 0, 0, 1), Mention("Ann", 1, 2, 3)]), Entity([Mention("Bo", 0, 2, 3)])]
    return Document(doc_id, 0, "test", "train", "t", sents, entities, [Relation(0, 1, "P26", evidence)])


def test_dofn_assigns_counts_and_writes_one_row_per_candidate():
    batch = DocumentBatch("f@0", [two_sentence_doc("a", []), two_sentence_doc("b", [1])])
    with BeamTestPipeline(argv=["--runner=FnApiRunner"]) as p:
        batches, rows, counts = (
            p | beam.Create([batch]) | JudgeEvidence(JudgeEvidenceFn("unused", judge=yes_at_first_sentence))
        )
        evidence = batches | "Evidence" >> beam.FlatMap(lambda b: [(d.doc_id, d.relations[0].evidence) for d in b.docs])
        assert_that(evidence, equal_to([("a", [0]), ("b", [1])]), label="evidence")
        flat = rows | beam.FlatMap(lambda rs: [(r["id"], r["sent_id"], r["verdict"], r["fallback"]) for r in rs])
        assert_that(flat, equal_to([("a/e0000s0000", 0, True, False), ("a/e0000s0001", 1, False, False)]), label="rows")
        totals = counts | beam.CombinePerKey(sum)
        expected = [("evidence.llm.candidates", 2), ("evidence.llm.yes", 1), ("evidence.llm.no", 1)]
        assert_that(totals, equal_to([*expected, ("evidence.llm.assigned", 1)]), label="counts")


def test_cli_refuses_a_missing_model_before_the_pipeline_starts(tmp_path, capsys):
    out = tmp_path / "out"
    assert generate("--output", str(out), "--evidence", "llm", "--judge-model", str(tmp_path / "nope")) == 2
    assert generate("--output", str(out), "--evidence", "llm", "--judge-model", str(tmp_path)) == 2
    assert generate("--output", str(out), "--evidence", "llm") == 2  # the default hub id, offline in tests
    assert generate("--output", str(out), "--judge-model", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("memllm: error: --judge-model") for line in err)
    assert "no such model directory" in err[0] and "no config.json" in err[1]
    assert "mistralai/Mixtral-8x7B-Instruct-v0.1" in err[2] and "needs --evidence llm" in err[3]
    assert not out.exists()


def test_generate_with_smollm2_judge_end_to_end(tmp_path, smollm2, sample_path):
    raw = json.loads(sample_path.read_text(encoding="utf-8"))
    # Two documents stripped of evidence (as in DocRED distant) and one that keeps its human evidence.
    docs = [{**d, "labels": [{**lab, "evidence": []} for lab in d["labels"]]} for d in raw[1:3]] + [raw[3]]
    path = tmp_path / "docs.json"
    path.write_text(json.dumps(docs), encoding="utf-8")
    out = tmp_path / "out"
    model_args = ["--judge-model", str(smollm2), "--judge-max-new-tokens", "4", "--judge-batch-size", "4"]
    args = ["--input", str(path), "--output", str(out), "--split", "train", "--write_documents"]
    assert generate(*args, "--evidence", "llm", *model_args) == 0

    stats = json.loads((out / "stats.json").read_text())
    table = pq.read_table(out / "evidence")
    assert table.schema.remove_metadata() == EVIDENCE_SCHEMA
    rows = table.to_pylist()
    assert len(rows) == len({r["id"] for r in rows}) == stats["evidence.llm.candidates"] == stats["evidence.train.rows"]
    yes_no = stats.get("evidence.llm.yes", 0) + stats.get("evidence.llm.no", 0)  # a zero count is not written
    assert yes_no == len(rows) == 5  # candidates, counted by hand
    judged = defaultdict(list)
    for r in sorted(rows, key=lambda r: r["sent_id"]):
        assert r["verdict"] == parse_verdict(r["generation"]) and r["prompt"].endswith("\nEvidence:")
        judged[(r["doc_index"], r["label_index"])].append(r)

    documents = {d["doc_index"]: d for d in pq.read_table(out / "documents").to_pylist()}
    evidence_less = [(i, j) for i, d in enumerate(docs) for j, lab in enumerate(d["labels"]) if not lab["evidence"]]
    assert sorted(judged) == evidence_less and stats["evidence.llm.assigned"] == len(evidence_less) == 4
    fallbacks = 0
    for (i, j), rs in judged.items():
        evidence = documents[i]["relations"][j]["evidence"]
        yes = [r["sent_id"] for r in rs if r["verdict"]]
        assert evidence and evidence == (yes or [rs[-1]["sent_id"]])
        assert [r["fallback"] for r in rs] == [False] * (len(rs) - 1) + [not yes]
        fallbacks += not yes
    assert stats.get("evidence.llm.fallback", 0) == fallbacks
    assert [r["evidence"] for r in documents[2]["relations"]] == [lab["evidence"] for lab in docs[2]["labels"]]

    # Each judged fact is written only at its evidence sentences.
    for row in pq.read_table(out / "memory_write").to_pylist():
        for t in row["triples"]:
            key = (row["doc_index"], t["label_index"])
            assert row["sent_id"] in documents[row["doc_index"]]["relations"][t["label_index"]]["evidence"], key
    assert "config_name: evidence" in (out / "README.md").read_text()


def test_a_rerun_reuses_the_judged_batches_with_the_same_outputs_and_counts(tmp_path):
    """`--evidence llm` is resumable (pipeline.resume): a batch judged once is replayed, not judged again."""
    batches = [
        DocumentBatch("f@0", [two_sentence_doc("a", []), two_sentence_doc("b", [1])]),
        DocumentBatch("f@2", [two_sentence_doc("c", [])]),
    ]
    calls = tmp_path / "calls"  # the DoFn runs on a copy of the judge: count through a file

    def counting_judge(prompts):
        with open(calls, "a") as f:
            f.write(f"{len(prompts)}\n")
        return yes_at_first_sentence(prompts)

    def never(prompts):
        raise AssertionError("a resumed batch must not be judged again")

    def run(judge, reused: int):
        with BeamTestPipeline(argv=["--runner=FnApiRunner"]) as p:
            fn = JudgeEvidenceFn("unused", judge=judge, resume_dir=str(tmp_path / "cache"))
            judged, rows, counts = p | beam.Create(batches) | JudgeEvidence(fn)
            evidence = judged | "Ev" >> beam.FlatMap(lambda b: [(d.doc_id, d.relations[0].evidence) for d in b.docs])
            assert_that(evidence, equal_to([("a", [0]), ("b", [1]), ("c", [0])]), label="evidence")
            flat = rows | "Rows" >> beam.FlatMap(lambda rs: [(r["id"], r["verdict"]) for r in rs])
            expected_rows = [
                ("a/e0000s0000", True),
                ("a/e0000s0001", False),
                ("c/e0000s0000", True),
                ("c/e0000s0001", False),
            ]
            assert_that(flat, equal_to(expected_rows), label="rows")
            expected = [("evidence.llm.candidates", 4), ("evidence.llm.yes", 2), ("evidence.llm.no", 2)]
            expected += [("evidence.llm.assigned", 2)] + ([("resume.chunks_reused", reused)] if reused else [])
            assert_that(counts | beam.CombinePerKey(sum), equal_to(expected), label="counts")

    run(counting_judge, reused=0)
    assert sum(map(int, calls.read_text().split())) == 4
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one file per judged batch
    run(never, reused=2)
