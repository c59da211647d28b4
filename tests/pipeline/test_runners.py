"""`memllm generate` on other engines: a dask.distributed cluster and Beam's portable job service.

Each run is a `python -m memllm.pipeline` subprocess with a timeout (a hang fails the test instead of blocking the
suite), and its output must be byte-identical to the FnApiRunner's: every shard, the dead letters and
stats.json (the card differs only in the command line it records). Options that do not apply to the
runner are refused before anything starts.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from memllm.pipeline.cli import main
from memllm.pipeline.runners import DASK_RUNNER, check_runner_options

from tests.conftest import ROOT, import_if_installed

RUN_TIMEOUT_S = 240


def digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "README.md"
    }


def generate(out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "memllm.pipeline", "-q", "--output", str(out), *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def broken_input(tmp_path_factory, sample_path) -> Path:
    """The sample plus a document with a bad entity index, a non-object record and a cut-off record."""
    docs = json.loads(sample_path.read_text())
    bad_index = dict(docs[1], labels=[{"h": 0, "t": 99, "r": "P17", "evidence": []}])
    parts = [json.dumps(d) for d in docs[:3]] + [json.dumps(bad_index), "[1, 2]", '{"title": "cut", "sents": [["x"]']
    path = tmp_path_factory.mktemp("input") / "broken_train.json"
    path.write_text("[" + ",\n".join(parts + [json.dumps(d) for d in docs[3:]]) + "]")
    return path


@pytest.fixture(scope="module")
def local_sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local-sample")
    assert main(["generate", "-q", "--runner=FnApiRunner", "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def local_broken(tmp_path_factory, broken_input) -> Path:
    out = tmp_path_factory.mktemp("local-broken")
    assert main(["generate", "-q", "--runner=FnApiRunner", "--input", str(broken_input), "--output", str(out)]) == 0
    assert len(list((out / "errors").iterdir())) == 1  # the dead letters are part of the comparison
    return out


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    distributed = import_if_installed("distributed", "the dask extra")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)


def assert_same_output(out: Path, expected: Path) -> None:
    got, want = digests(out), digests(expected)
    assert {"stats.json", "memory_write/train-00000-of-00001.parquet"} <= set(want)
    assert got == want
    assert json.loads((out / "stats.json").read_text()) == json.loads((expected / "stats.json").read_text())


def test_dask_cluster_runs_the_sample_byte_identically(dask_cluster, local_sample, tmp_path):
    out = tmp_path / "dask"
    generate(out, "--runner", "DaskRunner", f"--dask_client_address={dask_cluster}")
    assert_same_output(out, local_sample)
    assert "memllm.pipeline.dask_runner.DaskRunner" in (out / "README.md").read_text()


def test_dask_cluster_writes_dead_letters_and_counts(dask_cluster, broken_input, local_broken, tmp_path):
    out = tmp_path / "dask"
    # Three partitions: Create/Reshuffle split and Flatten/GroupByKey merge partitions unevenly.
    generate(out, "--input", str(broken_input), "--runner=DaskRunner", f"--dask_client_address={dask_cluster}",
             "--dask_npartitions=3")  # fmt: skip
    assert_same_output(out, local_broken)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input.records"] == stats["documents.valid"] + stats["validate.rejected"]
    assert stats["errors.train.rows"] == 3


@pytest.fixture()
def job_service(tmp_path) -> Iterator[str]:
    """Beam's Python job service (what Flink and Spark job servers implement) on a free port."""
    port_file = tmp_path / "port"
    cmd = [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", "0",
           "--port_file", str(port_file), "--staging_dir", str(tmp_path / "staging")]  # fmt: skip
    with open(tmp_path / "job_service.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert proc.poll() is None, (tmp_path / "job_service.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the job service did not start in 60 s"
            time.sleep(0.1)
        yield f"localhost:{port_file.read_text().strip()}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_portable_runner_through_a_job_service(job_service, broken_input, local_broken, tmp_path):
    out = tmp_path / "portable"
    generate(out, "--input", str(broken_input), "--runner=PortableRunner", f"--job_endpoint={job_service}",
             "--environment_type=LOOPBACK")  # fmt: skip
    assert_same_output(out, local_broken)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--runner=DaskRunner", "--direct_num_workers=2"], "--direct_num_workers applies only to the local runner"),
        (
            ["--runner", "PortableRunner", "--job_endpoint=localhost:1", "--direct_running_mode=multi_processing"],
            "--direct_running_mode applies only to the local runner",
        ),  # fmt: skip
        (["--dask_client_address=tcp://127.0.0.1:1"], "--dask_client_address applies only to DaskRunner"),
        (["--job_endpoint=localhost:1"], "--job_endpoint applies only to PortableRunner, FlinkRunner or SparkRunner"),
        (["--runner=DaskRunner", "--flink_master=localhost:8081"], "--flink_master applies only to FlinkRunner"),
        (["--setup_file=./setup.py"], "--setup_file applies only to runners with their own workers"),
        (["--runner=PortableRunner"], "needs --job_endpoint"),
        (["--direct_running_mode=multi_threading"], "multi_threading is unsafe"),
        (
            [
                "--runner=DataflowRunner",
                "--project=p",
                "--region=r",
                "--temp_location=gs://b/tmp",
                "--input=gs://b/x.json",
            ],
            "Dataflow workers cannot reach local paths: out",
        ),  # fmt: skip
        (["--runner=DataflowRunner", "--project=p", "--output=gs://b/out"], "needs --region, --temp_location"),
    ],
)
def test_options_that_do_not_apply_fail_early(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if not any(a.startswith("--output") for a in args):
        args = [*args, "--output", "out"]
    assert main(["generate", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before the run touched anything


def test_dask_runner_names_resolve_to_ours():
    for name in ("DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"):
        assert check_runner_options(["--runner", name, "--dask_npartitions=4"], "out") == [
            f"--runner={DASK_RUNNER}",
            "--dask_npartitions=4",
        ]
    assert check_runner_options(["--runner=FnApiRunner"], "out") == ["--runner=FnApiRunner"]
