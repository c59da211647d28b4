"""Per-step timings of the DocRED path, for comparing two versions of the code side by side.

Times, per document of Re-DocRED dev replicated to N (default 2,000), best of `--repeat` passes:
scanning the JSON, `parse_document`, the memory-write builder with `to_row`, Algorithm 1 with an in-process
`ExactMemory` and `to_row`, the reader's stream replay (`advance_reference_rng` over every record), and the
shard writer (`write_parquet_file` on the memory-write rows, as a shard gets them: slices of chunks in
shuffled order). A shared machine's speed can drift by ±15% within minutes, so with several `--code` checkouts the
runs alternate, round after round, each in its own process importing that checkout's modules.

    python benchmarks/bench_steps.py [--input DATA/redocred/dev_revised.json]   # this checkout
    git worktree add OLD_CHECKOUT COMMIT
    python benchmarks/bench_steps.py --code OLD_CHECKOUT --code . --rounds 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Runs this script (the script itself may not exist in the checkout) with the checkout's modules: `memllm`
# becomes a package over the checkout's folders, so `memllm.annotators` is the checkout's `annotators/` and
# not the installed (possibly editable) copy; checkouts from before the `memllm` package layout use the
# top-level names, first on sys.path.
BOOT = """import os, runpy, sys, types
root = sys.argv[1]
sys.path.insert(0, root)
package = types.ModuleType("memllm")
package.__path__ = [os.path.join(root, "memllm"), root]
sys.modules["memllm"] = package
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], init_globals={"CHECKOUT": root}, run_name="__main__")
"""
STEPS = ("scan", "parse", "write+row", "read+row", "replay", "shard")


def measure(path: Path, repeat: int) -> dict[str, float]:
    """ms per document of each step, best of `repeat`, with the modules of the checkout (see BOOT)."""
    import importlib
    import random

    import pyarrow as pa

    root = Path(globals().get("CHECKOUT") or HERE.parent)
    prefix = "memllm." if (root / "memllm").is_dir() else ""  # older checkouts: top-level names

    def mod(name: str):
        return importlib.import_module(prefix + name)

    docred, reads, writes = mod("annotators.docred"), mod("annotators.read_examples"), mod("annotators.write_examples")
    scan_json_records, parse_document = docred.scan_json_records, docred.parse_document
    build_read_examples, gold_triples = reads.build_read_examples, reads.gold_triples
    property_labels = mod("annotators.relation_labels").property_labels
    advance_reference_rng, build_write_examples = writes.advance_reference_rng, writes.build_write_examples
    reference_rng = writes.reference_rng
    ExactMemory = mod("memory.exact").ExactMemory
    write_parquet_file = mod("pipeline.sinks").write_parquet_file
    MEMORY_WRITE_SCHEMA = mod("schemas.records").MEMORY_WRITE_SCHEMA

    labels = property_labels()
    with open(path, "rb") as f:
        raw = [r.value for r in scan_json_records(f)]

    def parse_all():
        return [
            parse_document(
                r, doc_id=f"bench-{i:06d}", doc_index=i, source="redocred", split="validation", relation_labels=labels
            )  # fmt: skip
            for i, r in enumerate(raw)
        ]

    docs = parse_all()
    memory = ExactMemory()
    for doc in docs:
        memory.add(gold_triples(doc, labels))
    rng = reference_rng()
    write_rows = [ex.to_row() for d in docs for ex in build_write_examples(d, labels, rng=rng)]
    table = pa.Table.from_pylist(write_rows, schema=MEMORY_WRITE_SCHEMA)
    tmp = Path(tempfile.mkdtemp(prefix="memllm-steps-"))

    def scan():
        with open(path, "rb") as f:
            for _ in scan_json_records(f):
                pass

    def write():
        rng = reference_rng()
        for d in docs:
            [ex.to_row() for ex in build_write_examples(d, labels, rng=rng)]

    def read():
        for d in docs:
            [ex.to_row() for ex in build_read_examples(d, memory, labels)]

    def replay():
        rng = reference_rng()
        for r in raw:
            advance_reference_rng(r, rng)

    def shard():
        parts = [table.slice(i, 3000) for i in range(0, table.num_rows, 3000)]
        random.Random(0).shuffle(parts)
        write_parquet_file(str(tmp / "shard.parquet"), parts, MEMORY_WRITE_SCHEMA)

    out = {}
    for name, step in zip(STEPS, (scan, parse_all, write, read, replay, shard)):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - t0)
        out[name] = best * 1000 / len(docs)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=2000, help="documents in the replicated input (default 2,000)")
    ap.add_argument("--repeat", type=int, default=3, help="passes per step; the best is kept (default 3)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds over the checkouts (default 1)")
    ap.add_argument("--code", action="append", type=Path, help="a checkout to time (repeatable; default: this one)")
    ap.add_argument("--input", type=Path, help="DocRED-format JSON array to replicate (default: Re-DocRED dev)")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeat)))
        return 0
    sys.path.insert(0, str(HERE))
    from bench_docred import DEFAULT_INPUT, replicate, scratch_dir

    source = args.input or DEFAULT_INPUT
    if not source.is_file():
        print(f"input not found: {source} (the Re-DocRED dev split; pass --input FILE)", file=sys.stderr)
        return 2
    checkouts = [c.resolve() for c in (args.code or [HERE.parent])]
    with scratch_dir("memllm-steps-", keep=False) as tmp:
        path = tmp / f"dev_revised_x{args.docs}.json"
        replicate(source, path, args.docs)
        print(f"{'checkout':40s} " + " ".join(f"{s:>9s}" for s in STEPS) + "   (ms per document)")
        for _ in range(args.rounds):
            for code in checkouts:
                script = str(Path(__file__).resolve())
                cmd = [sys.executable, "-c", BOOT, str(code), script, "--measure", str(path)]
                cmd += ["--repeat", str(args.repeat)]
                result = subprocess.run(cmd, cwd=code, capture_output=True, text=True)
                if result.returncode != 0:
                    print(f"{code}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
                    return 1
                times = json.loads(result.stdout.strip().splitlines()[-1])
                print(f"{str(code)[-40:]:40s} " + " ".join(f"{times[s]:9.3f}" for s in STEPS), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
