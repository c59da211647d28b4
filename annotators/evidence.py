"""Evidence sentences for relations that have none (method doc §5), so each fact is written once.

Memory-write examples place a relation at its evidence sentences; a relation with empty evidence is
considered at *every* sentence (the reference's treatment, `--evidence keep`). Re-DocRED's added relations
and all of DocRED distant have none. Modes:
- `heuristic`: the first sentence at which both entities have been mentioned, i.e. the later of the two
  entities' first mentions. It is the earliest sentence where a reader has seen both arguments, and the
  one sentence where the memory-write builder can always find a mention pair (one mention in the
  sentence, the other at or before it).
- `llm` (an LLM judge, with the reference's fallback) is not here yet.
Relations that have evidence keep it. Documents are not modified: a new `Document` is returned.
"""

from __future__ import annotations

from dataclasses import replace

from schemas.document import Document, Relation

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
