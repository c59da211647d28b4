"""Evidence sentences for relations that have none (docs/method.md §5), so each fact is written once.

Memory-write examples place a relation at its evidence sentences; a relation with empty evidence is
considered at *every* sentence (the reference's treatment, `--evidence keep`). Re-DocRED's added relations
and all of DocRED distant have none. Modes:
- `heuristic`: the first sentence at which both entities have been mentioned, i.e. the later of the two
  entities' first mentions. It is the earliest sentence where a reader has seen both arguments, and the
  one sentence where the memory-write builder can always find a mention pair (one mention in the
  sentence, the other at or before it).
- `llm`: an LLM judge with the reference's fallback, in `annotators.evidence_llm` (it needs a model).
Relations that have evidence keep it. Documents are not modified: a new `Document` is returned.

A judge is scored as in the paper (§5 "Validation set"): on human evidence, positives are (focus sentence,
relation) pairs whose sentence is annotated evidence, negatives pairs whose sentence mentions one of the two
entities but is not evidence (`validation_set`, `judge_scores`; `memllm evidence-eval`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from memllm.schemas.document import Document, Relation

EVIDENCE_MODES = ("keep", "heuristic")


def heuristic_evidence(doc: Document, relation: Relation) -> int:
    """The sentence at which both of the relation's entities have first been mentioned."""
    first = [min(m.sent_id for m in doc.entities[e].mentions) for e in (relation.h, relation.t)]
    return max(first)


def assign_evidence(doc: Document, mode: str) -> tuple[Document, int]:
    """`doc` with evidence for every evidence-less relation under `mode`, and how many were assigned."""
    if mode == "keep":
        return doc, 0
    if mode != "heuristic":
        raise ValueError(f"unknown evidence mode {mode!r}; choose one of {', '.join(EVIDENCE_MODES)}")
    relations, assigned = [], 0
    for rel in doc.relations:
        if rel.evidence:
            relations.append(rel)
        else:
            relations.append(replace(rel, evidence=[heuristic_evidence(doc, rel)]))
            assigned += 1
    return (replace(doc, relations=relations) if assigned else doc), assigned


@dataclass(frozen=True)
class Candidate:
    """One judgement to make: does sentence `sent_id` of `doc` express relation `label_index`?"""

    doc: Document
    label_index: int
    sent_id: int
    is_evidence: bool  # the human annotation

    @property
    def relation(self) -> Relation:
        return self.doc.relations[self.label_index]


def validation_set(docs: Iterable[Document], positives: int = 1000, negatives: int = 1000, seed: int = 0):
    """`positives` + `negatives` candidates drawn (seeded) from relations with human evidence."""
    pos, neg = [], []
    for doc in docs:
        for i, rel in enumerate(doc.relations):
            if not rel.evidence:
                continue
            evidence = set(rel.evidence)
            mentioned = {m.sent_id for e in (rel.h, rel.t) for m in doc.entities[e].mentions}
            for s in sorted(evidence | mentioned):
                (pos if s in evidence else neg).append(Candidate(doc, i, s, s in evidence))
    rng = random.Random(seed)
    return rng.sample(pos, min(positives, len(pos))) + rng.sample(neg, min(negatives, len(neg)))


def heuristic_judge(candidates: Sequence[Candidate]) -> list[bool]:
    """Yes exactly at the heuristic's sentence (both entities first seen)."""
    return [c.sent_id == heuristic_evidence(c.doc, c.relation) for c in candidates]


def judge_scores(candidates: Sequence[Candidate], said: Sequence[bool]) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the judge's Yes against the human evidence."""
    tp = sum(c.is_evidence and s for c, s in zip(candidates, said))
    fp = sum(not c.is_evidence and s for c, s in zip(candidates, said))
    fn = sum(c.is_evidence and not s for c, s in zip(candidates, said))
    tn = len(candidates) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (tp + tn) / len(candidates) if candidates else 0.0
    return {"n": len(candidates), "accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}
