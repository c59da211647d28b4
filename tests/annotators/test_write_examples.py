"""Memory-write examples: hand-checked rules on the shipped sample, and the reference's golden output."""

import dataclasses
import json
import random
from collections import defaultdict

import pytest
from memllm.annotators.evidence import assign_evidence
from memllm.annotators.write_examples import (
    advance_reference_rng,
    build_write_examples,
    content_digest,
    skip_document,
    unwritten_relations,
)
from memllm.schemas.document import Document, Entity, Mention, Relation

from tests.conftest import dev_data, load_documents, reference_write_examples


def by_doc(examples):
    out = defaultdict(dict)
    for ex in examples:
        out[ex.doc.doc_index][ex.sent_id] = ex
    return out


def test_one_example_per_sentence_with_pretext_and_focus(sample_docs, labels):
    doc = sample_docs[0]
    exs = build_write_examples(doc, labels)
    assert [e.sent_id for e in exs] == [0, 1, 2]
    assert exs[0].pretext == ""
    assert exs[2].pretext == "Lumen Vale is a 2019 novel by Carla Fenwick . Fenwick was born in Dunmore , Ireland ."
    assert exs[1].focus == "Fenwick was born in Dunmore , Ireland ."


def test_method_doc_worked_example_relations_and_order(sample_docs, labels):
    # §3.1: at S1 the three evidence-S1 relations, ordered by the in-focus mention (Fenwick@0 or Dunmore@4
    # for place of birth: the later is Dunmore@4; Dunmore→Ireland: Ireland@6; citizenship: Ireland@6).
    # The two at Ireland@6 tie and sort by name: "Carla Fenwick" < "Dunmore" < "Fenwick".
    for seed in range(20):
        ex = build_write_examples(sample_docs[0], labels, seed=seed)[1]
        citizenship = next(t for t in ex.triples if t.relation == "country of citizenship")
        expected = (
            ["place of birth", "country of citizenship", "country"]
            if citizenship.head == "Carla Fenwick"
            else ["place of birth", "country", "country of citizenship"]
        )
        assert [t.relation for t in ex.triples] == expected
        assert ex.triples[0].tail == "Dunmore"


def test_pronoun_only_evidence_is_never_written(sample_docs, labels):
    doc = sample_docs[
        1
    ]  # "She has lived there since 2001 ." is the only evidence of (Marta Quell, residence, Santiago)
    exs = build_write_examples(doc, labels)
    written = {t.label_index for ex in exs for t in ex.triples}
    assert 1 not in written and 0 in written


def test_empty_evidence_is_written_at_every_eligible_sentence(sample_docs, labels):
    doc = sample_docs[2]  # (Orin River, country, Kessland) has no evidence; Orin (alias) is in S1
    exs = build_write_examples(doc, labels)
    at = {ex.sent_id: [(t.head, t.tail) for t in ex.triples if t.label_index == 0] for ex in exs}
    assert at == {0: [("Orin River", "Kessland")], 1: [("Orin", "Kessland")]}


def test_triples_carry_entities_property_and_label_index(sample_docs, labels):
    for doc in sample_docs:
        for ex in build_write_examples(doc, labels):
            for t in ex.triples:
                rel = doc.relations[t.label_index]
                assert (t.head_entity, t.tail_entity, t.relation_id) == (rel.h, rel.t, rel.r)
                assert t.relation == labels[rel.r]
                assert t.head in {m.name for m in doc.entities[rel.h].mentions}
                assert t.tail in {m.name for m in doc.entities[rel.t].mentions}


def test_per_example_seed_is_stable_and_order_independent(sample_docs, labels):
    a = [build_write_examples(d, labels) for d in sample_docs]
    b = [build_write_examples(d, labels) for d in reversed(sample_docs)][::-1]
    assert [[e.to_row() for e in x] for x in a] == [[e.to_row() for e in x] for x in b]


def _raw_records(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("which", ["sample", "dev"])
def test_advance_from_the_raw_record_consumes_exactly_what_building_consumes(which, sample_path, labels):
    path = sample_path if which == "sample" else dev_data().documents
    records = _raw_records(path)
    docs = load_documents(path, labels)
    assert len(records) == len(docs) > 0
    for record, doc in zip(records, docs):
        built, from_raw, from_doc = (random.Random(doc.doc_index) for _ in range(3))
        build_write_examples(doc, labels, rng=built)
        advance_reference_rng(record, from_raw)
        skip_document(doc, from_doc)
        assert built.getstate() == from_raw.getstate() == from_doc.getstate(), doc.doc_id


@pytest.mark.parametrize(
    "record",
    [None, [], {"sents": [["a"]]}, {"sents": [["a"]], "vertexSet": [[{}]], "labels": [{"h": 3, "t": 0}]}, {"sents": 1}],
)
def test_advance_on_a_broken_record_is_the_same_every_time(record):
    a, b = random.Random(1), random.Random(1)
    advance_reference_rng(record, a)
    advance_reference_rng(record, b)
    assert a.getstate() == b.getstate()


def test_golden_reference_reproduced_exactly(dev, dev_docs, labels):
    """Same labels at the same sentence for 100% of sentences; with the reference stream, the same names too."""
    gold = dev.memwrite_lines()
    ours = reference_write_examples(dev_docs, labels)
    assert len(ours) == len(gold) == dev.pick(4110, 476)
    for g, ex in zip(gold, ours):
        assert (g["doc_idx"], g["sent_id"]) == (ex.doc.doc_index, ex.sent_id)
        assert sorted(g["rel_idxes"]) == sorted(t.label_index for t in ex.triples)
        assert [tuple(r) for r in g["relations"]] == [t.names for t in ex.triples]
        assert g["pretext"] == ex.pretext and g["index"] == ex.focus


def test_golden_selection_with_per_example_seed(dev, dev_docs, labels):
    """Without the reference stream the names differ and, where entities share a mention name, a few
    sentences differ in what they can write; every triple still uses mention names of its own entities."""
    gold = dev.memwrite_lines()
    ours = [ex for d in dev_docs for ex in build_write_examples(d, labels)]
    same = sum(sorted(g["rel_idxes"]) == sorted(t.label_index for t in ex.triples) for g, ex in zip(gold, ours))
    # measured (deterministic: the seed is the document's content): 4 of 4,110 on the whole split (documents
    # 176 and 273), none among the shipped subset's 476
    assert len(ours) == len(gold) and len(gold) - same == dev.pick(4, 0)


def test_inlined_shuffle_draws_exactly_like_random_shuffle():
    from memllm.annotators.write_examples import consume_shuffle, shuffled_indices

    # Small products look their permutation up: many seeds each, so most of the 720 outcomes of 6 are met.
    cases = [(n, seed) for n in range(7) for seed in range(4000)]
    cases += [(n, n) for n in list(range(7, 40)) + [97, 128, 1000]]
    for n, seed in cases:
        a, b, c = random.Random(seed), random.Random(seed), random.Random(seed)
        expected = list(range(n))
        a.shuffle(expected)
        assert list(shuffled_indices(b, n)) == expected
        consume_shuffle(c, n)
        assert a.getstate() == b.getstate() == c.getstate()


@pytest.mark.parametrize(
    "evidences,expected",
    [
        # label 0 repeats sentence 1, label 3 repeats sentence 0, label 1 has no evidence: every sentence
        ([[1, 0, 1], [], [2], [0, 0]], [[0, 1, 3], [0, 1], [1, 2]]),
        ([[1, 0, 1], [2], [0, 0]], [[0, 2], [0], [1]]),
        ([[], []], [[0, 1], [0, 1], [0, 1]]),
    ],
)
def test_labels_selected_per_sentence_are_ascending_and_distinct(evidences, expected):
    from memllm.annotators.write_examples import _selected_per_sentence

    assert _selected_per_sentence(3, evidences) == expected


def _content_columns(examples):
    return [
        {k: v for k, v in ex.to_row().items() if k not in ("id", "source", "split", "doc_id", "doc_index")}
        for ex in examples
    ]


def test_per_example_seed_comes_from_the_content_not_the_id_or_position(sample_docs, labels):
    for doc in sample_docs:
        moved = dataclasses.replace(doc, doc_id="elsewhere-000123", doc_index=123, source="x", split="test")
        assert content_digest(moved) == content_digest(doc)
        assert _content_columns(build_write_examples(moved, labels)) == _content_columns(
            build_write_examples(doc, labels)
        )
    # ...and the content does count: one more evidence sentence, or another token, is another document
    doc = sample_docs[0]
    relations = [dataclasses.replace(doc.relations[0], evidence=[*doc.relations[0].evidence, 2])]
    sents = [list(s) for s in doc.sents]
    sents[2][-1] = "!"
    for other in (
        dataclasses.replace(doc, relations=relations + doc.relations[1:]),
        dataclasses.replace(doc, sents=sents),
    ):
        assert content_digest(other) != content_digest(doc)


def test_the_per_example_choice_varies_with_the_seed(sample_docs, labels):
    # The test above can fail: the names do depend on the seed where an entity has several mentions.
    names = {
        seed: [t.names for d in sample_docs for ex in build_write_examples(d, labels, seed=seed) for t in ex.triples]
        for seed in range(5)
    }
    assert len({tuple(v) for v in names.values()}) > 1


def shared_name_document(evidence: bool) -> Document:
    """Berlin / Germany / the Germans: Germany and the Germans share their only mention, "German" (S0), so
    (Berlin, country, German) is the name-triple of relations 0 and 1; relation 2's evidence, S1, names
    neither of its entities ("It has a zoo .")."""
    german = Mention("German", 0, 3, 4)
    entities = [
        Entity([Mention("Berlin", 0, 0, 1)], "LOC"),
        Entity([german], "LOC"),
        Entity([dataclasses.replace(german)], "MISC"),
        Entity([Mention("zoo", 1, 3, 4)], "MISC"),
    ]
    relations = [
        Relation(0, 1, "P17", [0] if evidence else []),
        Relation(0, 2, "P17", [0] if evidence else []),
        Relation(0, 1, "P361", [1]),
    ]
    sents = [["Berlin", "is", "a", "German", "city", "."], ["It", "has", "a", "zoo", "."]]
    return Document("berlin-000000", 0, "docred", "train", "Berlin", sents, entities, relations)


@pytest.mark.parametrize("mode", ["keep", "heuristic"])
@pytest.mark.parametrize("seeded", ["reference stream", "per example"])
def test_a_relation_whose_name_triple_is_already_written_is_counted_not_written_again(mode, seeded, labels):
    doc, assigned = assign_evidence(shared_name_document(evidence=False), mode)
    assert assigned == (2 if mode == "heuristic" else 0)
    rng = random.Random(42) if seeded == "reference stream" else None
    examples = build_write_examples(doc, labels, rng=rng)
    assert [[(t.names, t.label_index) for t in ex.triples] for ex in examples] == [
        [(("Berlin", "country", "German"), 0)],  # relation 1's only pair has the same names: not again
        [],  # S1 names neither Berlin nor Germany
    ]
    assert unwritten_relations(doc, examples) == (1, 1)  # relation 1 (same names), relation 2 (no pair)


def test_a_relation_written_at_another_evidence_sentence_is_not_counted(labels):
    doc = shared_name_document(evidence=True)
    sents = [*doc.sents, ["Berlin", "is", "in", "German", "lands", "."]]
    entities = list(doc.entities)
    entities[2] = Entity([*entities[2].mentions, Mention("German", 2, 3, 4)], "MISC")
    entities[0] = Entity([*entities[0].mentions, Mention("Berlin", 2, 0, 1)], "LOC")
    relations = [doc.relations[0], Relation(0, 2, "P17", [0, 2]), doc.relations[2]]
    doc = dataclasses.replace(doc, sents=sents, entities=entities, relations=relations)
    examples = build_write_examples(doc, labels)
    assert {t.label_index for ex in examples for t in ex.triples} == {0, 1}  # relation 1 at S2
    assert unwritten_relations(doc, examples) == (0, 1)
