"""Runner names and the Beam options that apply to each runner, checked before a job starts.

Beam ignores an option its runner does not use (`--direct_num_workers` on Dask, `--dask_client_address` on
the local runner) and only fails once workers run: a Dataflow job that writes to a local path fails (or
writes into its workers' disks) after minutes of start-up. `check_runner_options` refuses such
combinations up front with one line (`InputError`, exit status 2).

An unknown `--runner` is refused the same way, with the list of runners that work (`resolve_runner`); Beam
itself reads runner names without case and without the `Runner` suffix, and so does memllm.

`--runner DaskRunner` (short or Beam's full name) resolves to `pipeline.dask_runner.DaskRunner`: Beam's
own DaskRunner loses tagged outputs and skips branches on this pipeline (see that module).
"""

from __future__ import annotations

import importlib.util

from memllm.pipeline.errors import InputError

DASK_RUNNER = "memllm.pipeline.dask_runner.DaskRunner"
RUNNER_ALIASES = {
    "DaskRunner": DASK_RUNNER,
    "apache_beam.runners.dask.dask_runner.DaskRunner": DASK_RUNNER,
}
LOCAL_RUNNERS = {"DirectRunner", "SwitchingDirectRunner", "FnApiRunner", "TestDirectRunner"}
JOB_SERVICE_RUNNERS = {"PortableRunner", "FlinkRunner", "SparkRunner"}
REMOTE_WORKER_RUNNERS = {"DataflowRunner", "TestDataflowRunner"}  # workers share no disk with the launcher
LAUNCHING_RUNNERS = JOB_SERVICE_RUNNERS | REMOTE_WORKER_RUNNERS | {"PrismRunner"}
KNOWN_RUNNERS = LOCAL_RUNNERS | LAUNCHING_RUNNERS | {"DaskRunner"}
# what `--runner` accepts, as the one-line error lists it (the Test*/Switching* variants work too)
SUPPORTED_RUNNERS = (
    "FnApiRunner",
    "DirectRunner",
    "PrismRunner",
    "DaskRunner",
    "FlinkRunner",
    "SparkRunner",
    "PortableRunner",
    "DataflowRunner",
)
_BY_LOWER = {name.lower(): name for name in KNOWN_RUNNERS}

# option → (runners it applies to, how to say so)
RUNNER_OPTIONS: dict[str, tuple[set[str], str]] = {
    "direct_num_workers": (LOCAL_RUNNERS, "the local runner (FnApiRunner/DirectRunner)"),
    "direct_running_mode": (LOCAL_RUNNERS, "the local runner (FnApiRunner/DirectRunner)"),
    "job_endpoint": (JOB_SERVICE_RUNNERS, "PortableRunner, FlinkRunner or SparkRunner"),
    "artifact_endpoint": (JOB_SERVICE_RUNNERS, "PortableRunner, FlinkRunner or SparkRunner"),
    "flink_master": ({"FlinkRunner"}, "FlinkRunner"),
    "flink_version": ({"FlinkRunner"}, "FlinkRunner"),
    "flink_job_server_jar": ({"FlinkRunner"}, "FlinkRunner"),
    "flink_submit_uber_jar": ({"FlinkRunner"}, "FlinkRunner"),
    "spark_master_url": ({"SparkRunner"}, "SparkRunner"),
    "spark_job_server_jar": ({"SparkRunner"}, "SparkRunner"),
    "spark_submit_uber_jar": ({"SparkRunner"}, "SparkRunner"),
    "spark_rest_url": ({"SparkRunner"}, "SparkRunner"),
    "spark_version": ({"SparkRunner"}, "SparkRunner"),
    "setup_file": (LAUNCHING_RUNNERS, "runners with their own workers (Dataflow, Flink, Spark, Portable)"),
    "sdk_container_image": (LAUNCHING_RUNNERS, "runners with their own workers (Dataflow, Flink, Spark, Portable)"),
    "dataflow_service_options": (REMOTE_WORKER_RUNNERS, "DataflowRunner"),
}
DASK_OPTIONS = (
    "dask_client_address",
    "dask_connection_timeout",
    "dask_scheduler_file",
    "dask_client_name",
    "dask_connection_limit",
    "dask_npartitions",
    "dask_partition_size",
)
for _name in DASK_OPTIONS:
    RUNNER_OPTIONS[_name] = ({"DaskRunner"}, "DaskRunner")


def _given(args: list[str]) -> dict[str, str | None]:
    """`--name=value` / `--name value` / `--flag` → {name: value or None} (last one wins, as argparse)."""
    out: dict[str, str | None] = {}
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        name, eq, value = arg[2:].partition("=")
        if not eq:
            nxt = args[i + 1] if i + 1 < len(args) else None
            value = nxt if nxt is not None and not nxt.startswith("--") else None
        out[name] = value
    return out


def runner_given(args: list[str]) -> str | None:
    """The `--runner` in Beam arguments, if any (None: the default, the local runner)."""
    return _given(args).get("runner")


def _with_runner(args: list[str], runner: str) -> list[str]:
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg == "--runner":
            out.append(f"--runner={runner}")
            skip = i + 1 < len(args)
        elif arg.startswith("--runner="):
            out.append(f"--runner={runner}")
        else:
            out.append(arg)
    return out


def runner_kind(runner: str) -> str:
    """`DaskRunner`, `FlinkRunner`, ... for a short or fully qualified runner name."""
    name = RUNNER_ALIASES.get(runner, runner)
    return "DaskRunner" if name == DASK_RUNNER else name.rsplit(".", 1)[-1]


def resolve_runner(runner: str) -> str:
    """The runner name Beam is given for `runner`: a known name in any case, with or without its `Runner`
    suffix (as Beam reads it), the Dask names resolved to ours, or the full name of an importable class.
    Anything else is refused in one line listing the runners that work (Beam would raise a ValueError)."""
    if runner in RUNNER_ALIASES:
        return RUNNER_ALIASES[runner]
    short = _BY_LOWER.get(runner.lower()) or _BY_LOWER.get(runner.lower() + "runner")
    if short:
        return RUNNER_ALIASES.get(short, short)
    module, _, cls = runner.rpartition(".")
    if module and cls:
        try:
            found = getattr(importlib.import_module(module), cls, None) is not None
        except ImportError:
            found = False
        if found:
            return runner
    raise InputError(
        f"--runner {runner}: unknown runner; use one of {', '.join(SUPPORTED_RUNNERS)} (FnApiRunner is the "
        "default), or the full name of an importable PipelineRunner class"
    )


def register_runner_options(args: list[str]) -> None:
    """Make Beam's parser know the Dask options when they are used (importing dask costs a second)."""
    if not any("dask" in a.lower() for a in args):
        return
    from memllm.pipeline.extras import missing_extra

    if missing := missing_extra("dask"):
        raise InputError(missing)
    import apache_beam.runners.dask.dask_runner  # noqa: F401  (declares DaskOptions)


def _is_local(path: str) -> bool:
    return "://" not in path


def check_runner_options(args: list[str], output: str, inputs: list[str] | None = None) -> list[str]:
    """Resolve the runner name and refuse options that do not apply to it. `args` has a `--runner`."""
    given = _given(args)
    runner = given.get("runner") or ""
    resolved = resolve_runner(runner)
    kind = runner_kind(resolved)
    if resolved != runner:
        args = _with_runner(args, resolved)
    for name, (runners, where) in RUNNER_OPTIONS.items():
        if name in given and kind not in runners:
            raise InputError(f"--{name} applies only to {where}, not to --runner {runner}")
    if given.get("direct_running_mode") == "multi_threading":
        raise InputError("--direct_running_mode=multi_threading is unsafe with Beam 2.77; use multi_processing")
    if kind in JOB_SERVICE_RUNNERS - {"FlinkRunner", "SparkRunner"} and "job_endpoint" not in given:
        raise InputError("--runner PortableRunner needs --job_endpoint HOST:PORT (a running job service)")
    if kind in REMOTE_WORKER_RUNNERS:
        _check_dataflow(given, output, inputs)
    return args


def _check_dataflow(given: dict[str, str | None], output: str, inputs: list[str] | None) -> None:
    missing = [f"--{o}" for o in ("project", "region", "temp_location") if not given.get(o)]
    if missing:
        raise InputError(f"the DataflowRunner needs {', '.join(missing)}")
    local = [p for p in [output, *(inputs or [])] if _is_local(p)]
    if not inputs:
        local.append("the shipped sample (give --input gs://...)")
    if local:
        raise InputError(
            f"Dataflow workers cannot reach local paths: {', '.join(local)} (use gs:// paths for --input and --output)"
        )
    if importlib.util.find_spec("apitools") is None:
        raise InputError("the DataflowRunner needs Beam's GCP extra: pip install 'apache-beam[gcp]'")


__all__ = ["DASK_RUNNER", "check_runner_options", "register_runner_options", "resolve_runner", "runner_kind"]
