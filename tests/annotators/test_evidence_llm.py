"""The LLM evidence judge: candidates, prompt, verdict parse and assignment with hand-written judges, then
the real SmolLM2-135M as a judge (plumbing, parse and fallback; not accuracy)."""

from dataclasses import replace

import pytest
from memllm.annotators.evidence_llm import (
    DEMONSTRATIONS,
    FEW_SHOT,
    STOP,
    EvidenceCandidate,
    Judgement,
    TransformersJudge,
    assign,
    candidate_sentences,
    candidates,
    judge_all,
    judge_documents,
    mention_pair,
    parse_verdict,
    prompt,
)
from memllm.schemas.document import Document, Entity, Mention, Relation

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py

SENTS = [["Ann", "Lee", "met", "Bo", "."], ["Cy", "saw", "Lee", "."], ["Bo", "Kim", "and", "Cy", "Ray", "."]]


def tiny(relations=None) -> Document:
    """Three sentences; A first seen in 0, B in 0, C in 1. Relation 2 has human evidence."""
    entities = [
        Entity([Mention("Ann Lee", 0, 0, 2), Mention("Lee", 1, 2, 3)]),  # A: sentences 0, 1
        Entity([Mention("Bo", 0, 3, 4), Mention("Bo Kim", 2, 0, 2)]),  # B: 0, 2
        Entity([Mention("Cy", 1, 0, 1), Mention("Cy Ray", 2, 3, 5)]),  # C: 1, 2
    ]
    if relations is None:
        relations = [Relation(0, 1, "P26"), Relation(1, 2, "P26"), Relation(2, 0, "P26", [2]), Relation(0, 2, "P40")]
    return Document("d", 0, "test", "train", "t", SENTS, entities, relations)


def said_yes_at(*sentences: str):
    """A judge that says Yes exactly when the main sentence is one of `sentences`."""

    def judge(prompts):
        out = []
        for p in prompts:
            main = p.rsplit("Main Sentence: ", 1)[1].split("\n", 1)[0]
            out.append(" Reasoning. The answer is Yes." if main in sentences else " Reasoning. The answer is No.")
        return out

    return judge


def test_candidates_by_hand(labels):
    cands = candidates(tiny(), labels)
    # r0 (A, B): both seen at 0, mentions in 0, 1, 2; r1 (B, C): both seen at 1, mentions in 1, 2 (B's
    # mention in 0 comes before C's first); r2 has evidence; r3 (A, C): both seen at 1, mentions in 1, 2.
    assert [(c.label_index, c.sent_id) for c in cands] == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (3, 1), (3, 2)]
    assert candidate_sentences(tiny(), 2) == [1, 2]  # evidence or not; `candidates` skips it
    by = {(c.label_index, c.sent_id): c for c in cands}
    # Only one pair qualifies (one mention in the sentence, both at or before it) at these:
    assert (by[0, 0].head, by[0, 0].tail) == ("Ann Lee", "Bo")
    assert (by[0, 1].head, by[0, 1].tail) == ("Lee", "Bo")
    assert (by[1, 1].head, by[1, 1].tail) == ("Bo", "Cy")
    assert (by[3, 1].relation, by[3, 1].relation_id) == ("child", "P40")
    c = by[0, 1]
    assert (c.context, c.sentence, c.relation, c.head_entity, c.tail_entity) == (
        "Ann Lee met Bo .",
        "Cy saw Lee .",
        "spouse",
        0,
        1,
    )


def test_mention_pair_is_seeded_and_always_qualifies():
    d = tiny()
    # At sentence 2, relation 1 (B, C) has three qualifying pairs: the seed picks one, the same every time.
    qualifying = {("Bo", "Cy Ray"), ("Bo Kim", "Cy"), ("Bo Kim", "Cy Ray")}
    picks = {}
    for seed in range(40):
        h, t = mention_pair(d, 1, 2, seed)
        assert (h.name, t.name) in qualifying
        assert (h.name, t.name) == tuple(m.name for m in mention_pair(d, 1, 2, seed))
        picks[seed] = (h.name, t.name)
    assert set(picks.values()) == qualifying
    # A sentence with no mention at all (a validation candidate): a pair seen before it, else any pair.
    no_mention = replace(d, sents=[*SENTS, ["It", "rained", "."]])
    assert {m.sent_id for m in mention_pair(no_mention, 1, 3)} <= {0, 1, 2}


def test_prompt_fields_and_demonstrations(labels):
    cands = candidates(tiny(), labels)
    p = prompt(cands[1])
    assert p.startswith(FEW_SHOT) and p.endswith(
        'Context: Ann Lee met Bo .\nMain Sentence: Cy saw Lee .\nRelation: ("Lee", "spouse", "Bo")\nEvidence:'
    )
    first = 'Context:\nMain Sentence: Ann Lee met Bo .\nRelation: ("Ann Lee", "spouse", "Bo")\nEvidence:'
    assert prompt(cands[0]).endswith(first)  # no context: the field stays, empty
    # 8 demonstrations, 4 Yes and 4 No, each ending with the verdict after its reasoning, separated by STOP.
    verdicts = [d[3].rsplit("The answer is ", 1)[1] for d in DEMONSTRATIONS]
    assert sorted(verdicts) == ["No."] * 4 + ["Yes."] * 4
    assert all(d[3].count("The answer is") == 1 for d in DEMONSTRATIONS)
    assert FEW_SHOT.count(STOP) == 9 and FEW_SHOT.count("\nEvidence: ") == 8
    only_in_context = [d for d in DEMONSTRATIONS if d[3].endswith("No.") and d[2][2] in d[0] and d[2][2] not in d[1]]
    pronoun = [d for d in DEMONSTRATIONS if d[3].endswith("Yes.") and d[2][0] not in d[1] and d[2][0] in d[0]]
    assert only_in_context and pronoun


@pytest.mark.parametrize(
    "generation, verdict",
    [
        (" The relation means X. The main sentence says X. The answer is Yes.", True),
        (" The answer is Yes", True),  # cut off after the verdict
        (" The answer is No.", False),
        (" The answer is yes.", False),  # exact case
        (" Yes.", False),
        ("", False),
        (" The answer is No. On second thought, The answer is Yes.", False),  # the first verdict counts
        (" The answer is Yes. The answer is No.", True),
        (" Unsure." + STOP + "Context: x\nEvidence: The answer is Yes.", False),  # after the stop string
        (" Unsure.\nContext: x\nMain Sentence: y\nEvidence: The answer is Yes.", False),  # a made-up block
    ],
)
def test_verdict_parse_is_strict(generation, verdict):
    assert parse_verdict(generation) is verdict


def test_yes_sentences_become_evidence_and_no_yes_falls_back_to_the_last_candidate(labels):
    d = tiny()
    [(out, judged)] = judge_documents([d], said_yes_at("Cy saw Lee ."), labels)
    assert [r.evidence for r in out.relations] == [[1], [1], [2], [1]]
    assert not any(j.fallback for j in judged)

    [(out, judged)] = judge_documents([d], said_yes_at("Ann Lee met Bo .", "Bo Kim and Cy Ray ."), labels)
    assert [r.evidence for r in out.relations] == [[0, 2], [2], [2], [2]]

    [(out, judged)] = judge_documents([d], said_yes_at(), labels)  # all No: the last candidate sentence
    assert [r.evidence for r in out.relations] == [[2], [2], [2], [2]]
    assert [(j.candidate.label_index, j.candidate.sent_id) for j in judged if j.fallback] == [(0, 2), (1, 2), (3, 2)]
    assert len(judged) == 7 and not any(j.verdict for j in judged)


def test_only_evidence_less_relations_change(labels):
    d = tiny()
    [(out, _)] = judge_documents([d], said_yes_at("Ann Lee met Bo ."), labels)
    assert out.relations[2] == d.relations[2] == Relation(2, 0, "P26", [2])  # human evidence, kept
    assert [r.evidence for r in d.relations] == [[], [], [2], []]  # the input is not modified
    assert [(r.h, r.t, r.r) for r in out.relations] == [(r.h, r.t, r.r) for r in d.relations]
    # Every evidence-less relation gets at least one sentence, whatever the judge says.
    assert all(r.evidence for r in out.relations)
    # A judgement about a relation with evidence is a caller's bug.
    c = EvidenceCandidate(2, 1, "Cy", "spouse", "Lee", 2, 0, "P26", "", "")
    with pytest.raises(ValueError, match="has evidence"):
        assign(d, [Judgement(c, "p", "g", True)])


def test_documents_share_one_judge_call_and_a_judge_must_answer_every_prompt(labels):
    calls = []

    def judge(prompts):
        calls.append(len(prompts))
        return ["The answer is No."] * len(prompts)

    nothing_to_judge = tiny([Relation(0, 1, "P26", [0])])
    results = judge_documents([tiny(), nothing_to_judge, tiny()], judge, labels)
    assert calls == [14]
    assert [len(j) for _, j in results] == [7, 0, 7]
    assert results[1][0] is nothing_to_judge
    judge_documents([nothing_to_judge], judge, labels)
    assert calls == [14]  # no candidates: the judge is not called
    with pytest.raises(ValueError, match="1 generations for 7 prompts"):
        judge_documents([tiny()], lambda prompts: ["The answer is Yes."], labels)


# --- the real model --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_judge(smollm2):
    # Few new tokens: the model cannot reach a verdict, so this checks the plumbing and the fallback.
    return TransformersJudge(str(smollm2), max_new_tokens=5, batch_size=2)


def test_smollm2_judges_a_document_and_falls_back(smollm2_judge, labels):
    d = tiny([Relation(0, 1, "P26"), Relation(2, 0, "P26", [2])])  # 3 candidates, 1 relation with evidence
    [(out, judged)] = judge_documents([d], smollm2_judge, labels)
    assert [(j.candidate.label_index, j.candidate.sent_id) for j in judged] == [(0, 0), (0, 1), (0, 2)]
    for j in judged:
        assert j.prompt == prompt(j.candidate) and isinstance(j.generation, str) and j.generation.strip()
        assert STOP not in j.generation and j.verdict == parse_verdict(j.generation)
    yes = [j.candidate.sent_id for j in judged if j.verdict]
    assert out.relations[0].evidence == (yes or [2])
    assert [j.fallback for j in judged] == [False, False, not yes]
    assert out.relations[1] == d.relations[1]


def test_smollm2_prefix_cache_gives_what_the_whole_prompt_gives(smollm2_judge, labels):
    # Two prompts of different lengths in one batch: pads sit between the cached prefix and the question.
    cands = candidates(tiny(), labels)
    prompts = [prompt(cands[0]), prompt(cands[4])]
    assert len({len(ids) for ids in smollm2_judge.tokenizer(prompts).input_ids}) == 2
    cached = smollm2_judge(prompts)
    prefix, smollm2_judge.prefix_ids = smollm2_judge.prefix_ids, []
    try:
        whole = smollm2_judge(prompts)
    finally:
        smollm2_judge.prefix_ids = prefix
    assert cached == whole
    assert judge_all(cands[:1], smollm2_judge)[0].generation == cached[0]
