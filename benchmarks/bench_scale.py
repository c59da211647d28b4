"""Scaling of `memllm generate` across runners: one process, local multi-processing, and a Dask cluster.

Two workloads:
- `--path docred` (default): the Re-DocRED dev split replicated to N documents (default 100,000) in a
  temporary JSON array, as bench_docred.py does;
- `--path wikipedia`: Re-DocRED dev as raw Wikipedia-style articles (shared data) replicated to N articles
  (default 5,000) in a temporary Parquet file, through spaCy, linking against the dev KB, and both example
  builders (the KB is built once beforehand and passed as a directory).
For a workload the same `python -m memllm.pipeline` command runs with
- FnApiRunner in_memory (one process: the baseline),
- FnApiRunner multi_processing with W workers (default 2),
- the DaskRunner on a fresh `dask.distributed.LocalCluster` of W single-thread worker processes,
and the benchmark prints, side by side: wall time of the job (cluster start-up excluded, reported apart),
documents/s, peak memory (summed RSS of the job's process tree, plus the cluster's scheduler, nannies and
workers for Dask, sampled every 0.2 s) and the speed-up over one process. It also checks that every mode
wrote the same example counts and byte-identical shards.

Run from the repository root:
    python benchmarks/bench_scale.py [--path docred|wikipedia] [--docs N] [--workers 2]
                                     [--modes in_memory,multi_processing,dask]
Smoke test:  python benchmarks/bench_scale.py --docs 2000;  python benchmarks/bench_scale.py --path wikipedia --docs 200

Adding a workload: write a function `(tmp_dir, n, args) -> Workload` and register it in WORKLOADS;
everything else (modes, measuring, the table) is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_docred import DEFAULT_INPUT, PeakRSS, replicate, scratch_dir  # noqa: E402  (same directory)

MiB = 1 << 20


@dataclass
class Workload:
    """What to run: the generate arguments of one workload, and what a document is called in it."""

    name: str
    units: int  # documents (or articles) in the input
    args: list[str]  # `python -m memllm.pipeline` arguments except --output and runner options
    unit_name: str = "documents"
    notes: list[str] = field(default_factory=list)


def docred_workload(tmp: Path, n: int, args: argparse.Namespace) -> Workload:
    """The DocRED path: Re-DocRED dev (500 documents) replicated to n documents."""
    if not args.input.is_file():
        raise SystemExit(f"input not found: {args.input} (the Re-DocRED dev split; pass --input FILE)")
    path = tmp / f"dev_revised_x{n}.json"  # the name makes the pipeline infer redocred / validation
    t0 = time.perf_counter()
    replicate(args.input, path, n)
    note = f"input: {n:,} documents, {path.stat().st_size / MiB:.0f} MiB, written in {time.perf_counter() - t0:.1f} s"
    return Workload("docred", n, ["--input", str(path)], notes=[note])


def wikipedia_workload(tmp: Path, n: int, args: argparse.Namespace) -> Workload:
    """The Wikipedia path: Re-DocRED dev as raw articles (500, ~175 words each) replicated to n articles
    (ids made unique, text and title kept, so every copy links as the original does), with the dev KB
    built once from its Wikidata-format dump before the modes run (its build is not timed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    articles = args.shared / "wikipedia" / "redocred_dev_as_wikipedia.parquet"
    dump = args.shared / "kb" / "redocred_dev_wikidata.json"
    for path in (articles, dump):
        if not path.is_file():
            raise SystemExit(f"not found: {path} (pass --shared DIR, the shared data directory)")
    t0 = time.perf_counter()
    source = pq.read_table(articles)
    copies = []
    for k in range(-(-n // source.num_rows)):
        ids = pa.array([f"{i}-r{k}" for i in source.column("id").to_pylist()])
        copies.append(source.set_column(source.schema.get_field_index("id"), "id", ids))
    table = pa.concat_tables(copies).slice(0, n)
    path = tmp / f"wikipedia_x{n}.parquet"  # HF wikimedia/wikipedia layout: id, url, title, text
    pq.write_table(table, path, row_group_size=1000)
    words = sum(len(t.split()) for t in table.column("text").to_pylist())
    kb_dir = tmp / "kb"
    build = "import sys; from memllm.pipeline.kb_source import build_kb; build_kb(*sys.argv[1:3], [])"
    subprocess.run([sys.executable, "-c", build, str(dump), str(kb_dir)], cwd=ROOT, check=True, capture_output=True)
    note = (f"input: {n:,} articles, {words:,} words, {path.stat().st_size / MiB:.0f} MiB; KB built from "
            f"{dump.name}; {time.perf_counter() - t0:.1f} s")  # fmt: skip
    args_ = ["--source", "wikipedia", "--input", str(path), "--kb", str(kb_dir)]
    return Workload("wikipedia", n, args_, unit_name="articles", notes=[note])


WORKLOADS: dict[str, Callable[[Path, int, argparse.Namespace], Workload]] = {
    "docred": docred_workload,
    "wikipedia": wikipedia_workload,
}


CLUSTER_SCRIPT = """
import sys
from dask.distributed import LocalCluster
cluster = LocalCluster(n_workers=int(sys.argv[1]), threads_per_worker=1, processes=True,
                       dashboard_address=None, host="127.0.0.1")
print(cluster.scheduler_address, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
cluster.close()
"""


class DaskCluster:
    """A LocalCluster in its own process (so its memory is measured apart from the benchmark's)."""

    def __init__(self, workers: int, log: Path) -> None:
        t0 = time.perf_counter()
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", CLUSTER_SCRIPT, str(workers)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)  # fmt: skip
        self.address = self.proc.stdout.readline().strip()
        if not self.address.startswith("tcp://"):
            self.close()
            raise RuntimeError(f"the Dask cluster did not start; see {log}")
        self.startup = time.perf_counter() - t0

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def mode_args(mode: str, workers: int, args: argparse.Namespace) -> list[str]:
    if mode == "in_memory":
        return ["--runner=FnApiRunner"]
    if mode == "multi_processing":
        return ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    if mode == "dask":
        extra = [f"--dask_npartitions={args.dask_npartitions}"] if args.dask_npartitions else []
        return ["--runner=DaskRunner", *extra]
    raise SystemExit(f"unknown mode {mode}")


def run_mode(mode: str, work: Workload, tmp: Path, args: argparse.Namespace) -> dict:
    out = tmp / f"out-{mode}"
    flags = mode_args(mode, args.workers, args)
    cluster = DaskCluster(args.workers, tmp / "dask-cluster.log") if mode == "dask" else None
    startup = cluster.startup if cluster else None
    if cluster:
        flags.append(f"--dask_client_address={cluster.address}")
    cmd = [sys.executable, "-m", "memllm.pipeline", "-q", "--output", str(out), *work.args, *flags]
    try:
        with open(tmp / f"{mode}.stdout", "w") as so, open(tmp / f"{mode}.stderr", "w") as se:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=so, stderr=se)
            sampler = PeakRSS([proc.pid] + ([cluster.proc.pid] if cluster else []), children=True)
            rc = proc.wait()
            r = {"seconds": time.perf_counter() - t0, "peak": sampler.stop()}
    finally:
        if cluster:
            cluster.close()
    if startup is not None:
        r["startup"] = startup
    if rc != 0:
        err = (tmp / f"{mode}.stderr").read_text()[-3000:]
        print(f"{mode}: FAILED (exit {rc}); stderr:\n{err}")
        return {**r, "failed": True}
    r["stats"] = json.loads((out / "stats.json").read_text())
    r["digest"] = hashlib.md5(
        b"".join(
            str(p.relative_to(out)).encode() + hashlib.md5(p.read_bytes()).digest()
            for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "README.md" and "_resume" not in p.parts
        )
    ).hexdigest()
    shutil.rmtree(out, ignore_errors=True)  # the next mode needs the disk more than we need the shards
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", choices=sorted(WORKLOADS), default="docred", help="workload (default docred)")
    ap.add_argument(
        "--docs",
        type=int,
        default=None,
        help="documents (articles) in the input (default 100,000 for docred, 5,000 for wikipedia)",
    )
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="DocRED-format JSON array to replicate")
    ap.add_argument("--shared", type=Path, default=DEFAULT_INPUT.parent.parent, help="shared data (--path wikipedia)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for multi_processing and Dask")
    ap.add_argument("--modes", default="in_memory,multi_processing,dask", help="comma-separated, in order")
    ap.add_argument("--dask-npartitions", type=int, default=None, help="--dask_npartitions for the Dask mode")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (input, logs)")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with scratch_dir("memllm-scale-", args.keep) as tmp:
        n = args.docs or {"docred": 100_000, "wikipedia": 5_000}[args.path]
        work = WORKLOADS[args.path](tmp, n, args)
        for note in work.notes:
            print(note)
        runs = {}
        for mode in modes:
            runs[mode] = run_mode(mode, work, tmp, args)
            r = runs[mode]
            extra = f", cluster start-up {r['startup']:.1f} s" if "startup" in r else ""
            print(f"{mode}: {r['seconds']:.1f} s, peak {r['peak']:,.0f} MiB{extra}", flush=True)
        report(work, runs, args.workers)
    return 0


def report(work: Workload, runs: dict, workers: int) -> None:
    n, unit = work.units, work.unit_name
    base = runs.get("in_memory")
    base_rate = n / base["seconds"] if base and not base.get("failed") else None
    head = f"{'mode':<28} | {unit:>9} | {'seconds':>7} | {unit + '/s':>11} | {'peak MiB':>8} | speed-up"
    print(f"\n{work.name}, {workers} workers\n{head}\n{'-' * len(head)}")
    for mode, r in runs.items():
        label = {"in_memory": "FnApiRunner in_memory (1)", "multi_processing": f"multi_processing x{workers}",
                 "dask": f"Dask LocalCluster x{workers}"}.get(mode, mode)  # fmt: skip
        rate = n / r["seconds"]
        speed = f"{rate / base_rate:.2f}x" if base_rate else "-"
        print(f"{label:<28} | {n:>9,} | {r['seconds']:>7.1f} | {rate:>11,.0f} | {r['peak']:>8,.0f} | {speed}"
              + (" (FAILED)" if r.get("failed") else ""))  # fmt: skip
    ok = [r for r in runs.values() if not r.get("failed")]
    counts = {(r["stats"].get("memory_write.examples", 0), r["stats"].get("memory_read.examples", 0)) for r in ok}
    digests = {r["digest"] for r in ok}
    print(f"\nexamples (write, read): {', '.join(f'{w:,} / {r:,}' for w, r in counts)}"
          f"{'' if len(counts) == 1 else '  DIFFERENT between modes'}")  # fmt: skip
    print(f"shards byte-identical across modes: {'yes' if len(digests) == 1 else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
