"""`memllm evidence-eval`: score evidence judges on the paper's validation set (docs/method.md §5).

Builds `positives` + `negatives` candidates from the human evidence of a DocRED-format file (seeded) and
prints accuracy, precision, recall and F1 per judge, one row each: `heuristic` and `llm` (with
`--judge-model`; on CPU use a small subset, e.g. `--positives 50 --negatives 50`). `--generations FILE`
keeps the LLM's prompts and answers (JSON lines). The logic lives in `memllm.annotators.evidence_eval`; this
module is its argparse front end, and also holds the LLM judge's options that `memllm generate` shares.
A user's mistake prints one line on stderr and returns exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from memllm.annotators.docred import InputFormatError
from memllm.annotators.evidence import judge_scores, validation_set
from memllm.annotators.evidence_eval import JUDGES, judge_verdicts, load_documents
from memllm.annotators.evidence_llm import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_JUDGE_MODEL,
    DEFAULT_MAX_NEW_TOKENS,
    JudgeModelError,
    check_judge_model,
)


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
    """Add `evidence-eval` to an argparse subparsers object; it sets `func` to `cmd_evidence_eval`."""
    p = subparsers.add_parser("evidence-eval", help="score evidence judges on human evidence (paper §5)")
    p.add_argument("--input", required=True, help="DocRED-format JSON with human evidence (e.g. Re-DocRED dev)")
    p.add_argument("--judge", choices=JUDGES, action="append",
                   help="judge(s) to score (default: heuristic, and llm with --judge-model)")  # fmt: skip
    add_judge_arguments(p)
    p.add_argument("--generations", metavar="FILE", help="write the LLM judge's prompts and answers here (JSONL)")
    p.add_argument("--positives", type=int, default=1000, help="candidates whose sentence is evidence")
    p.add_argument("--negatives", type=int, default=1000, help="candidates mentioning an entity, not evidence")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evidence_eval)
    return p


def cmd_evidence_eval(args: argparse.Namespace) -> int:
    """Print one row of scores per judge; 2 on a user's mistake."""

    def fail(message: str) -> int:
        print(f"memllm evidence-eval: error: {message}", file=sys.stderr)
        return 2

    if args.positives < 1 or args.negatives < 1:
        return fail("--positives and --negatives must be positive")
    judges = args.judge or ["heuristic", *(["llm"] if args.judge_model else [])]
    if "llm" in judges and (error := judge_options_error(args)):
        return fail(error)
    try:
        docs = load_documents(args.input)
    except OSError as e:
        return fail(f"{args.input}: {e.strerror or e}")
    except InputFormatError as e:
        return fail(f"{args.input}: {e}")
    candidates = validation_set(docs, args.positives, args.negatives, args.seed)
    llm_options = {
        "model": args.judge_model or DEFAULT_JUDGE_MODEL,
        "max_new_tokens": args.judge_max_new_tokens,
        "batch_size": args.judge_batch_size,
        "generations": args.generations,
    }
    print(f"{'judge':<12} {'n':>6} {'accuracy':>9} {'precision':>10} {'recall':>7} {'F1':>6}")
    for name in sorted(dict.fromkeys(judges)):
        verdicts = judge_verdicts(name, candidates, **(llm_options if name == "llm" else {}))
        s = judge_scores(candidates, verdicts)
        figures = f"{s['accuracy']:>9.3f} {s['precision']:>10.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}"
        print(f"{name:<12} {s['n']:>6} {figures}", flush=True)
    return 0
