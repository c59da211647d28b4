"""DocRED distant at scale: a synthetic ~200 MB distant-format file through `--evidence heuristic`.

DocRED's distantly supervised set (`train_distant.json`, one ~500 MB JSON array) has no evidence at all. The
synthetic stand-in is the Re-DocRED dev split with every relation's evidence removed, repeated until the
file reaches `--mb` MiB (default 200), named `train_distant_*.json` so the pipeline reads it as
`docred_distant` / `train`. In one run, side by side:
- the pipeline with 2 multi-processing workers (the mode under test),
- the same with the in-memory runner (one process): the baseline for the speed-up.
Reported: documents/s, peak RSS of the process tree, CPU seconds of each process (are both workers busy?),
and checks that every relation got exactly one evidence sentence (`evidence.heuristic.assigned`).

Run from the repository root:
    python benchmarks/bench_distant.py [--input DATA/redocred/dev_revised.json] [--mb 200] [--keep]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_docred import DEFAULT_INPUT, MiB, bench_pipeline, scratch_dir  # noqa: E402
from memllm.annotators.docred import Record, scan_json_records  # noqa: E402

HEURISTIC = ["--evidence", "heuristic"]
MODES = {
    "2 workers (multi_processing)": [*HEURISTIC, "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    "1 process (in_memory)": HEURISTIC,
}


def make_distant(source: Path, out: Path, mib: int) -> tuple[int, int]:
    """Write the source's documents without evidence, repeated to `mib` MiB; return (documents, relations)."""
    with open(source, "rb") as f:
        records = [r.value for r in scan_json_records(f) if isinstance(r, Record)]
    for rec in records:
        for label in rec["labels"]:
            label["evidence"] = []
    raw = [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in records]
    n = relations = size = 0
    with open(out, "wb") as f:
        f.write(b"[")
        while size < mib * MiB:
            chunk = (b",\n" if n else b"") + raw[n % len(raw)]
            f.write(chunk)
            relations += len(records[n % len(raw)]["labels"])
            size += len(chunk)
            n += 1
        f.write(b"]\n")
    return n, relations


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="size of the synthetic file in MiB (default 200)")
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="DocRED-format JSON array to repeat")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (input, outputs, logs)")
    args = ap.parse_args(argv)
    if not args.input.is_file():
        print(f"input not found: {args.input} (the Re-DocRED dev split; pass --input FILE)", file=sys.stderr)
        return 2
    with scratch_dir("memllm-distant-", args.keep) as tmp:
        path = tmp / "train_distant_synthetic.json"
        t0 = time.perf_counter()
        n, relations = make_distant(args.input, path, args.mb)
        print(f"input: {n:,} documents, {relations:,} relations (no evidence), "
              f"{path.stat().st_size / MiB:.0f} MiB, written in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        head = f"{'mode':<30} | {'seconds':>7} | {'documents/s':>11} | {'peak MiB':>8} | CPU s per process (busy %)"
        lines, runs = [head, "-" * len(head)], {}
        for i, (mode, flags) in enumerate(MODES.items()):
            r = runs[mode] = bench_pipeline(path, tmp, f"run{i}", flags)
            busy = sorted(r["cpu"].items(), key=lambda kv: -kv[1])
            per = ", ".join(f"{'launcher' if pid == r['root'] else 'worker'} {cpu:.0f} ({cpu / r['seconds']:.0%})"
                            for pid, cpu in busy[:3])  # fmt: skip
            lines.append(f"{mode:<30} | {r['seconds']:>7.1f} | {n / r['seconds']:>11,.0f} | {r['peak']:>8,.0f} | {per}")
            if "stats" in r:
                s = r["stats"]
                ok = s.get("evidence.heuristic.assigned") == relations and s.get("documents.valid") == n
                print(f"{mode}: {s.get('evidence.heuristic.assigned', 0):,} relations given evidence "
                      f"({'all' if ok else 'NOT all'}), {s.get('memory_write.examples', 0):,} write / "
                      f"{s.get('memory_read.examples', 0):,} read examples")  # fmt: skip
        print("\n" + "\n".join(lines))
        multi, single = runs[next(iter(MODES))], runs[list(MODES)[1]]
        workers = sorted((c for pid, c in multi["cpu"].items() if pid != multi["root"]), reverse=True)[:2]
        both = len(workers) == 2 and min(workers) >= 0.5 * multi["seconds"]
        print("\ntargets:")
        wall, peak = multi["seconds"], multi["peak"]
        shares = ", ".join(f"{c / wall:.0%}" for c in workers)
        print(f"  peak memory < 2 GiB (2 workers): {peak:,.0f} MiB  {'PASS' if peak < 2048 else 'FAIL'}")
        print(f"  both workers busy (each >= 50% of the wall time): {shares}  {'PASS' if both else 'FAIL'}")
        print(f"  speed-up of 2 workers over 1 process: {single['seconds'] / multi['seconds']:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
