"""Evidence assignment: the heuristic on hand-made documents; human evidence untouched."""

import pytest
from memllm.annotators.evidence import Candidate, assign_evidence, judge_scores, validation_set
from memllm.annotators.write_examples import build_write_examples
from memllm.schemas.document import Document, Entity, Mention, Relation


def doc(relations):
    sents = [["A", "met", "B", "."], ["C", "saw", "A", "."], ["B", "and", "C", "."]]
    entities = [
        Entity([Mention("A", 0, 0, 1), Mention("A", 1, 2, 3)]),  # first mentioned in sentence 0
        Entity([Mention("B", 0, 2, 3), Mention("B", 2, 0, 1)]),  # 0
        Entity([Mention("C", 1, 0, 1), Mention("C", 2, 2, 3)]),  # 1
    ]
    return Document("d", 0, "test", "train", "t", sents, entities, relations)


def test_heuristic_is_the_later_first_mention_and_human_evidence_stays():
    d = doc([Relation(0, 1, "P26"), Relation(1, 2, "P26"), Relation(2, 0, "P26", [2]), Relation(0, 2, "P26")])
    out, assigned = assign_evidence(d, "heuristic")
    assert assigned == 3
    assert [r.evidence for r in out.relations] == [[0], [1], [2], [1]]
    assert [r.evidence for r in d.relations] == [[], [], [2], []]  # the input is not modified


def test_keep_changes_nothing_and_unknown_modes_are_refused():
    d = doc([Relation(0, 1, "P26")])
    assert assign_evidence(d, "keep") == (d, 0)
    with pytest.raises(ValueError, match="unknown evidence mode"):
        assign_evidence(d, "guess")


def test_an_evidence_less_fact_is_written_once_instead_of_at_every_sentence(labels):
    d = doc([Relation(0, 1, "P26")])
    sentences_with_triples = lambda x: [e.sent_id for e in build_write_examples(x, labels) if e.triples]  # noqa: E731
    assert sentences_with_triples(d) == [0, 1, 2]  # the reference's treatment: wherever a pair qualifies
    assert sentences_with_triples(assign_evidence(d, "heuristic")[0]) == [0]


def test_judge_scores_by_hand():
    d = doc([Relation(0, 1, "P26", [0])])
    cands = [Candidate(d, 0, 0, True), Candidate(d, 0, 1, False), Candidate(d, 0, 2, False), Candidate(d, 0, 0, True)]
    s = judge_scores(cands, [True, True, False, False])  # tp 1, fp 1, tn 1, fn 1
    assert (s["accuracy"], s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5, 0.5)


def test_validation_set_is_the_papers_and_seeded(dev_docs):
    cands = validation_set(dev_docs, 300, 200, seed=3)
    assert sum(c.is_evidence for c in cands) == 300 and len(cands) == 500
    for c in cands:
        mentioned = {m.sent_id for e in (c.relation.h, c.relation.t) for m in c.doc.entities[e].mentions}
        assert c.relation.evidence and (c.sent_id in c.relation.evidence) == c.is_evidence
        assert c.is_evidence or c.sent_id in mentioned
    again = validation_set(dev_docs, 300, 200, seed=3)
    assert [(c.doc.doc_id, c.label_index, c.sent_id) for c in again] == [
        (c.doc.doc_id, c.label_index, c.sent_id) for c in cands
    ]
