"""Scoring evidence judges on the paper's validation set (docs/method.md §5): reading the documents, judging.

`load_documents` reads the valid documents of a DocRED-format file with human evidence; `validation_set`
(annotators.evidence) draws the `positives` + `negatives` candidates from them; `judge_verdicts` gives each
judge's verdicts: `heuristic` (annotators.evidence) and `llm` (annotators.evidence_llm), with
`llm_verdicts` keeping the LLM's prompts and answers when asked. The `memllm evidence-eval` command
(pipeline.evidence_eval_cli) prints `judge_scores` per judge. No Beam: the set is small.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from memllm.annotators.docred import InvalidDocument, Record, parse_document, scan_json_records
from memllm.annotators.evidence import Candidate, heuristic_judge
from memllm.annotators.evidence_llm import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_JUDGE_MODEL,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SEED,
    TransformersJudge,
    candidate,
    judge_all,
)
from memllm.annotators.relation_labels import property_labels
from memllm.schemas.document import Document

JUDGES = ("heuristic", "llm")


def load_documents(path: str) -> list[Document]:
    """The valid documents of a DocRED-format file (invalid records are skipped).

    Raises OSError when the file cannot be read and `InputFormatError` when it is not DocRED-format JSON.
    """
    labels, docs = property_labels(), []
    with open(path, "rb") as f:
        for i, rec in enumerate(r for r in scan_json_records(f) if isinstance(r, Record)):
            try:
                docs.append(parse_document(rec.value, doc_id=str(i), doc_index=i, source="", split="",
                                           relation_labels=labels))  # fmt: skip
            except InvalidDocument:
                continue
    return docs


def llm_verdicts(
    candidates: Sequence[Candidate],
    model: str = DEFAULT_JUDGE_MODEL,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    generations: str | None = None,
) -> list[bool]:
    """The LLM judge's verdict per candidate; with `generations`, its prompts and answers as JSON lines there."""
    labels = property_labels()
    judge = TransformersJudge(model, max_new_tokens, batch_size)
    judged = judge_all([candidate(c.doc, c.label_index, c.sent_id, labels, DEFAULT_SEED) for c in candidates], judge)
    if generations:
        with open(generations, "w", encoding="utf-8") as f:
            for c, j in zip(candidates, judged):
                row = {"doc_index": c.doc.doc_index, "label_index": c.label_index, "sent_id": c.sent_id,
                       "is_evidence": c.is_evidence, "prompt": j.prompt, "generation": j.generation,
                       "verdict": j.verdict}  # fmt: skip
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [j.verdict for j in judged]


def judge_verdicts(name: str, candidates: Sequence[Candidate], **llm_options) -> list[bool]:
    """The verdicts of judge `name` (one of `JUDGES`); `llm_options` go to `llm_verdicts`."""
    if name == "heuristic":
        return heuristic_judge(candidates)
    if name == "llm":
        return llm_verdicts(candidates, **llm_options)
    raise ValueError(f"unknown judge {name!r}; choose one of {', '.join(JUDGES)}")
