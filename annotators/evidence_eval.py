"""`memllm evidence-eval`: score an evidence judge on the paper's validation set (method doc §5).

Builds `positives` + `negatives` candidates from the human evidence of a DocRED-format file (seeded) and
prints accuracy, precision, recall and F1 per judge. Judges: `heuristic` (annotators.evidence). The LLM
judge is not available yet. No Beam: the set is small.
"""

from __future__ import annotations

import argparse
import sys

from annotators.docred import InputFormatError, InvalidDocument, Record, parse_document, scan_json_records
from annotators.evidence import heuristic_judge, judge_scores, validation_set
from annotators.relation_labels import property_labels

JUDGES = {"heuristic": heuristic_judge}


def add_evidence_eval_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evidence-eval", help="score evidence judges on human evidence (paper §5)")
    p.add_argument("--input", required=True, help="DocRED-format JSON with human evidence (e.g. Re-DocRED dev)")
    p.add_argument("--judge", choices=sorted(JUDGES), action="append", help="judge(s) to score (default: all)")
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


def run(args: argparse.Namespace) -> int:
    if args.positives < 1 or args.negatives < 1:
        print("memllm evidence-eval: error: --positives and --negatives must be positive", file=sys.stderr)
        return 2
    candidates = validation_set(load_documents(args.input), args.positives, args.negatives, args.seed)
    print(f"{'judge':<12} {'n':>6} {'accuracy':>9} {'precision':>10} {'recall':>7} {'F1':>6}")
    for name in args.judge or sorted(JUDGES):
        s = judge_scores(candidates, JUDGES[name](candidates))
        figures = f"{s['accuracy']:>9.3f} {s['precision']:>10.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}"
        print(f"{name:<12} {s['n']:>6} {figures}")
    return 0
