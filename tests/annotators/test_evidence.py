"""Evidence assignment: the heuristic on hand-made documents; human evidence untouched."""

import pytest

from annotators.evidence import assign_evidence
from annotators.write_examples import build_write_examples
from schemas.document import Document, Entity, Mention, Relation


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
