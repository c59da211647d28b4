"""`memllm evidence-eval`: score an evidence judge on the paper's validation set (method doc §5).

Builds `positives` + `negatives` candidates from the human evidence of a DocRED-format file (seeded) and
prints accuracy, precision, recall and F1 per judge, one row each: `heuristic` (annotators.evidence) and
`llm` (annotators.evidence_llm with `--judge-model`; on CPU use a small subset, e.g. `--positives 50
--negatives 50`). `--generations FILE` keeps the LLM's prompts and answers (JSON lines). No Beam: the set
is small.
"""

from __future__ import annotations

import argparse
import json
import sys

from memllm.annotators.docred import InputFormatError, InvalidDocument, Record, parse_document, scan_json_records
from memllm.annotators.evidence import heuristic_judge, judge_scores, validation_set
from memllm.annotators.evidence_llm import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_JUDGE_MODEL,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SEED,
    JudgeModelError,
    TransformersJudge,
    candidate,
    check_judge_model,
    judge_all,
)
from memllm.annotators.relation_labels import property_labels

JUDGES = ("heuristic", "llm")


def add_judge_arguments(p: argparse.ArgumentParser) -> None:
    """The LLM judge's options, shared by `generate --evidence llm` and `evidence-eval --judge llm`."""
    p.add_argument(
        "--judge-model",
        dest="judge_model",
        default=None,
        metavar="PATH_OR_ID",
        help=f"causal LM of the LLM evidence judge: a transformers directory or hub id (default {DEFAULT_JUDGE_MODEL})",
    )
    p.add_argument("--judge-batch-size", dest="judge_batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"prompts per generate call (default {DEFAULT_BATCH_SIZE})")  # fmt: skip
    p.add_argument("--judge-max-new-tokens", dest="judge_max_new_tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS,
                   help=f"tokens the judge may write per prompt (default {DEFAULT_MAX_NEW_TOKENS})")  # fmt: skip


def judge_options_error(args: argparse.Namespace) -> str | None:
    """Why the judge options cannot work (checked before anything runs), or None."""
    if args.judge_batch_size < 1 or args.judge_max_new_tokens < 1:
        return "--judge-batch-size and --judge-max-new-tokens must be at least 1"
    try:
        check_judge_model(args.judge_model or DEFAULT_JUDGE_MODEL)
    except JudgeModelError as e:
        return f"--judge-model {e}"
    return None


def add_evidence_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evidence-eval", help="score evidence judges on human evidence (paper §5)")
    p.add_argument("--input", required=True, help="DocRED-format JSON with human evidence (e.g. Re-DocRED dev)")
    p.add_argument("--judge", choices=JUDGES, action="append",
                   help="judge(s) to score (default: heuristic, and llm with --judge-model)")  # fmt: skip
    add_judge_arguments(p)
    p.add_argument("--generations", metavar="FILE", help="write the LLM judge's prompts and answers here (JSONL)")
    p.add_argument("--positives", type=int, default=1000, help="candidates whose sentence is evidence")
    p.add_argument("--negatives", type=int, default=1000, help="candidates mentioning an entity, not evidence")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)
    return p


def load_documents(path: str) -> list:
    labels, docs = property_labels(), []
    try:
        with open(path, "rb") as f:
            for i, rec in enumerate(r for r in scan_json_records(f) if isinstance(r, Record)):
                try:
                    docs.append(parse_document(rec.value, doc_id=str(i), doc_index=i, source="", split="",
                                               relation_labels=labels))  # fmt: skip
                except InvalidDocument:
                    continue
    except OSError as e:
        raise SystemExit(f"memllm evidence-eval: error: {path}: {e.strerror or e}") from None
    except InputFormatError as e:
        raise SystemExit(f"memllm evidence-eval: error: {path}: {e}") from None
    return docs


def llm_verdicts(args: argparse.Namespace, candidates: list) -> list[bool]:
    labels = property_labels()
    judge = TransformersJudge(args.judge_model or DEFAULT_JUDGE_MODEL, args.judge_max_new_tokens, args.judge_batch_size)
    judged = judge_all([candidate(c.doc, c.label_index, c.sent_id, labels, DEFAULT_SEED) for c in candidates], judge)
    if args.generations:
        with open(args.generations, "w", encoding="utf-8") as f:
            for c, j in zip(candidates, judged):
                row = {"doc_index": c.doc.doc_index, "label_index": c.label_index, "sent_id": c.sent_id,
                       "is_evidence": c.is_evidence, "prompt": j.prompt, "generation": j.generation,
                       "verdict": j.verdict}  # fmt: skip
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return [j.verdict for j in judged]


def run(args: argparse.Namespace) -> int:
    def fail(message: str) -> int:
        print(f"memllm evidence-eval: error: {message}", file=sys.stderr)
        return 2

    if args.positives < 1 or args.negatives < 1:
        return fail("--positives and --negatives must be positive")
    judges = args.judge or ["heuristic", *(["llm"] if args.judge_model else [])]
    if "llm" in judges and (error := judge_options_error(args)):
        return fail(error)
    candidates = validation_set(load_documents(args.input), args.positives, args.negatives, args.seed)
    verdicts = {"heuristic": heuristic_judge, "llm": lambda cs: llm_verdicts(args, cs)}
    print(f"{'judge':<12} {'n':>6} {'accuracy':>9} {'precision':>10} {'recall':>7} {'F1':>6}")
    for name in sorted(dict.fromkeys(judges)):
        s = judge_scores(candidates, verdicts[name](candidates))
        figures = f"{s['accuracy']:>9.3f} {s['precision']:>10.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}"
        print(f"{name:<12} {s['n']:>6} {figures}", flush=True)
    return 0
