"""A Beam runner on `dask.distributed` that runs every branch of a batch pipeline, and runs it right.

Beam 2.77's own `apache_beam.runners.dask.dask_runner.DaskRunner` translates a pipeline into Dask bags,
but on this pipeline it fails or silently loses data:
1. it keeps one bag per *transform*, so all outputs of a multi-output `ParDo` (`.with_outputs(...)`) land
   in one bag, and a consumer of the dead letters also receives the documents;
2. it drops what `DoFn.finish_bundle` emits (our counts travel that way, see `pipeline.counting`);
3. it computes only the bag of the last transform visited, so a branch that does not feed it never runs;
4. a side input is computed inside every task that reads it (a nested `compute` from a worker: the
   upstream work is redone per task, and single-thread workers can deadlock waiting for each other);
5. `Reshuffle` is a no-op and `Create` packs 128 elements per partition, so a job that starts from one
   input file runs in one task, on one worker.
Building on `dask.bag` does not work either: each bag handed to `map_partitions` has its graph optimized
(linearly fused) for its own keys, and once several such graphs share a step, a consumer reads a fused-away
key and gets an empty partition (seen here: the dead letters vanished).

So `DaskRunner` here keeps Beam's options and overrides and builds a plain Dask task graph itself: every
PCollection is a list of partition keys; a `ParDo` task runs one bundle (`process` and `finish_bundle`,
every output tagged, each DoFn set up once per worker thread); a side input is one task that gathers its
PCollection, computed once; `GroupByKey` is a hash shuffle (a stable hash of the pickled key, the same in
every process); a bounded `Read` (`ReadFromText`) is split into bundles at launch; `Create` and
`Reshuffle` spread elements over `--dask_npartitions` partitions (default: 2 per worker thread); and
every PCollection no transform reads is computed, so every sink runs. Batch
pipelines in the global window only (windows and timestamps are not carried between steps). Like Beam's,
it reports no metrics: counts must travel as data. Memory: a worker holds whole partitions (a partition's
output is a list), so raise `--dask_npartitions` for large inputs.
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
import threading
import zlib
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.internal import pickler
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.pvalue import PBegin, PCollection
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, Receiver, _OutputHandler
from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunnerResult
from apache_beam.runners.dask.dask_runner import DaskRunner as BeamDaskRunner
from apache_beam.runners.dask.overrides import (
    _Create,
    _Flatten,
    _GroupAlsoByWindow,
    _GroupByKeyOnly,
    _Read,
    _Reshuffle,
    dask_overrides,
)
from apache_beam.runners.dask.transform_evaluator import defenestrate, get_windowed_value
from apache_beam.transforms.sideinputs import SideInputMap

PARTITIONS_PER_THREAD = 2


class _Collect(Receiver):
    """Receives one output of a DoFn: appends `(tag, value)` to the partition's results."""

    def __init__(self, tag: str | None, out: list) -> None:
        self.tag, self.out = tag, out

    def receive(self, windowed_value) -> None:
        self.out.append((self.tag, windowed_value.value))


class _TaggedReceivers(dict):
    def __init__(self, out: list) -> None:
        super().__init__()
        self.out = out

    def __missing__(self, tag):
        self[tag] = _Collect(tag, self.out)
        return self[tag]


@dataclass(frozen=True)
class _ParDoSpec:
    """What a `ParDo` partition task needs: the pickled (DoFn, args, kwargs) and the side input views."""

    label: str
    blob: bytes
    side_views: tuple  # (view class, view options) per side input, in the transform's order
    tagged: bool  # several outputs: results stay (tag, value) pairs


# One DoFn instance per (thread, DoFn) in each worker process, set up once and reused across partitions,
# as Beam's own workers do: a DoFn's `setup` may load a model, which must not happen per partition.
_DOFNS: dict[tuple[int, bytes], tuple] = {}


def _dofn(blob: bytes) -> tuple:
    key = (threading.get_ident(), hashlib.sha1(blob).digest())
    if key not in _DOFNS:
        fn, args, kwargs = pickler.loads(blob)
        _DOFNS[key] = (fn, args, kwargs, [False])
    return _DOFNS[key]


def _run_pardo(items, spec: _ParDoSpec, *side_values) -> list:
    """One Dask partition = one Beam bundle: start_bundle, process every element, finish_bundle."""
    fn, args, kwargs, set_up = _dofn(spec.blob)
    out: list = []
    receivers = _TaggedReceivers(out)
    handler = _OutputHandler(
        window_fn=None,
        main_receivers=receivers[None],
        tagged_receivers=receivers,
        per_element_output_counter=None,
        output_batch_converter=None,
        process_yields_batches=False,
        process_batch_yields_elements=False,
    )
    sides = [
        SideInputMap(view, options, [get_windowed_value(v, None) for v in values])
        for (view, options), values in zip(spec.side_views, side_values)
    ]
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn),
        handler,
        context=DoFnContext(spec.label, state=None),
        side_inputs=sides,
        input_args=list(args),
        input_kwargs=kwargs,
        user_state_context=None,
        bundle_finalizer_param=beam.DoFn.BundleFinalizerParam(),
    )
    if not set_up[0]:
        invoker.invoke_setup()
        set_up[0] = True
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(get_windowed_value(item, None))
    invoker.invoke_finish_bundle()
    return out if spec.tagged else [value for _, value in out]


def _select(pairs: list, tag) -> list:
    return [value for t, value in pairs if t == tag]


def _concat(*parts: list) -> list:
    return list(itertools.chain.from_iterable(parts))


def _literal(blob: bytes) -> list:
    return pickle.loads(blob)


def _read_bundle(blob: bytes) -> list:
    source, start, stop = pickler.loads(blob)
    return list(source.read(source.get_range_tracker(start, stop)))


def _piece(parts: list, index: int) -> list:
    return parts[index]


def _round_robin(part: list, n: int) -> list[list]:
    return [part[i::n] for i in range(n)]


def _key_hash(key) -> int:
    # Python's hash() of a str differs per process; Beam groups by the key's bytes, so do we.
    return zlib.crc32(pickle.dumps(key, protocol=4))


def _hash_split(part: list, n: int) -> list[list]:
    out: list[list] = [[] for _ in range(n)]
    for item in part:  # (key, windowed value), from GroupByKey's ReifyWindows step
        out[_key_hash(item[0]) % n].append(item)
    return out


def _group(*pieces: list) -> list:
    groups: dict = {}
    for key, value in itertools.chain.from_iterable(pieces):
        groups.setdefault(key, []).append(defenestrate(value))
    return list(groups.items())


def _count(*parts: list) -> int:
    return sum(len(p) for p in parts)


class _GraphVisitor(PipelineVisitor):
    """Translates leaf transforms into a Dask task graph: each PCollection is a list of partition keys."""

    def __init__(self, bag_kwargs: dict, partitions: int) -> None:
        self.partition_size = bag_kwargs.get("partition_size")
        self.partitions = bag_kwargs.get("npartitions") or partitions
        self.graph: dict = {}
        self.keys: dict[PCollection, list] = {}
        self.consumed: set[PCollection] = set()
        self._names = itertools.count()

    def sinks(self) -> list:
        """The keys of every PCollection no transform reads: computing them runs the whole pipeline."""
        return [k for pcoll, keys in self.keys.items() if pcoll not in self.consumed for k in keys]

    def _new(self, label: str, tasks: list) -> list:
        name = f"{label}-{next(self._names)}"
        for i, task in enumerate(tasks):
            self.graph[(name, i)] = task
        return [(name, i) for i in range(len(tasks))]

    def visit_transform(self, node: AppliedPTransform) -> None:
        inputs = [p for p in node.inputs if not isinstance(p, PBegin)]
        self.consumed.update(inputs)
        self.consumed.update(si.pvalue for si in node.side_inputs)
        parts = [self.keys[p] for p in inputs]
        label, kind = node.full_label, type(node.transform)
        if kind is _Create:
            keys = self._create(label, list(node.transform.values))
        elif kind is beam.ParDo:
            keys = self._pardo(node, parts[0])
        elif kind is _GroupByKeyOnly:
            keys = self._shuffle(label, parts[0], _hash_split, _group)
        elif kind is _Flatten:
            keys = self._bounded(label, [k for p in parts for k in p]) or self._new(label, [[]])
        elif kind is _Reshuffle:
            n = max(len(parts[0]), self.partitions)
            keys = self._shuffle(label, parts[0], _round_robin, _concat, n)
        elif kind is _GroupAlsoByWindow:  # GroupByKey's window step: the global window needs none
            keys = parts[0]
        elif kind is _Read:
            keys = self._read(label, node.transform.source)
        else:
            raise NotImplementedError(f"the Dask runner cannot run {label} ({kind.__name__})")
        if kind is beam.ParDo and len(node.outputs) > 1:
            for tag, pcoll in node.outputs.items():
                self.keys[pcoll] = self._new(f"{label}[{tag}]", [(_select, k, tag) for k in keys])
        else:
            for pcoll in node.outputs.values():
                self.keys[pcoll] = keys

    def _create(self, label: str, values: list) -> list:
        if self.partition_size:
            n = max(1, -(-len(values) // self.partition_size))
        else:
            n = max(1, min(len(values), self.partitions))
        # Elements go into the graph pickled: a literal tuple or string could be read as a task or a key.
        return self._new(label, [(_literal, pickle.dumps(values[i::n])) for i in range(n)])

    def _read(self, label: str, source) -> list:
        """A bounded source (`ReadFromText`, ...): split at launch into about `partitions` bundles."""
        size = max(1 << 20, (source.estimate_size() or 0) // self.partitions)
        bundles = list(source.split(desired_bundle_size=size))
        tasks = [(_read_bundle, pickler.dumps((b.source, b.start_position, b.stop_position))) for b in bundles]
        return self._new(label, tasks or [(_literal, pickle.dumps([]))])

    def _bounded(self, label: str, keys: list) -> list:
        """At most the target number of partitions (merging neighbours): they add up through each Flatten."""
        if len(keys) <= self.partitions:
            return keys
        size = -(-len(keys) // self.partitions)
        return self._new(label, [(_concat, *keys[i : i + size]) for i in range(0, len(keys), size)])

    def _shuffle(self, label: str, keys: list, split, merge, n: int | None = None) -> list:
        """Split each input partition into n pieces (`split`), then `merge` piece j of every input."""
        keys = self._bounded(f"{label}/in", keys)
        n = n or self.partitions
        splits = self._new(f"{label}/split", [(split, k, n) for k in keys])
        pieces = [self._new(f"{label}/piece", [(_piece, s, j) for j in range(n)]) for s in splits]
        return self._new(label, [(merge, *[p[j] for p in pieces]) for j in range(n)])

    def _pardo(self, node: AppliedPTransform, keys: list) -> list:
        transform = node.transform
        args, kwargs = transform.raw_side_inputs
        views, sides = [], []
        for si in node.side_inputs:
            views.append((type(si), si._view_options()))
            sides += self._new(f"{node.full_label}/side", [(_concat, *self.keys[si.pvalue])])
        spec = _ParDoSpec(
            label=node.full_label,
            blob=pickler.dumps((transform.fn, tuple(args), dict(kwargs))),
            side_views=tuple(views),
            tagged=len(node.outputs) > 1,
        )
        return self._new(node.full_label, [(_run_pardo, k, spec, *sides) for k in keys])


@dataclass
class _Result(DaskRunnerResult):
    """Closes the client (and the cluster it started, if any) once the job has finished or failed."""

    def wait_until_finish(self, duration=None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            self.client.close()


class DaskRunner(BeamDaskRunner):
    """Runs a batch Beam pipeline on a `dask.distributed` cluster (see the module docstring)."""

    def run_pipeline(self, pipeline, options):
        import dask.distributed as ddist

        dask_options = options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        pipeline.replace_all(dask_overrides())
        visitor = _GraphVisitor(bag_kwargs, PARTITIONS_PER_THREAD * max(1, threads))
        pipeline.visit(visitor)
        # Only a count comes back to the client, never the sinks' data.
        visitor.graph[("done", 0)] = (_count, *visitor.sinks())
        return _Result(client, client.get(visitor.graph, [("done", 0)], sync=False))


__all__ = ["DaskRunner"]
