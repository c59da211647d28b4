"""Counters that travel with the data, and dead letters.

Every step counts what it kept, changed and rejected. Beam `Metrics` alone would do on the local runner,
but some runners report none (the DaskRunner), so each `CountingDoFn` also emits its per-bundle totals as a
small `counts` output; the pipeline sums them into `stats.json`, which is therefore right on every runner.
Dead letters are plain dicts `{"source", "record", "step", "reason"}` (docs/design.md "Output layout").
"""

from __future__ import annotations

import json
from collections import Counter

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows
from memllm.pipeline.batches import pause_gc, resume_gc

COUNTS = "counts"
DEAD = "dead"
NAMESPACE = "memllm"
RECORD_PREVIEW = 2000


def dead_letter(source: str, record: object, step: str, reason: str, split: str | None = None) -> dict:
    if not isinstance(record, str):
        try:
            record = json.dumps(record, ensure_ascii=False)
        except (TypeError, ValueError):
            record = repr(record)
    if len(record) > RECORD_PREVIEW:
        record = record[:RECORD_PREVIEW] + "…"
    out = {"source": source, "record": record, "step": step, "reason": reason}
    if split is not None:  # else the sink finds it from the input file named in `source`
        out["split"] = split
    return out


class CountingDoFn(beam.DoFn):
    """A DoFn with `self.count(name)`; totals go to Beam Metrics and to the `counts` output.

    The cyclic garbage collector is paused for the bundle (see `pipeline.batches.pause_gc`): that covers
    Beam decoding the step's input too, not only the step.
    """

    def start_bundle(self) -> None:
        pause_gc()
        self._counts: Counter = Counter()

    def count(self, name: str, n: int = 1) -> None:
        # Summed here and handed to Beam Metrics once per bundle: a Metrics call per document and name was
        # ~2% of a worker's time.
        if n:
            self._counts[name] += n

    def reject(
        self, source: str, record: object, step: str, reason: str, split: str | None = None
    ) -> beam.pvalue.TaggedOutput:
        self.count(f"{step}.rejected")
        return beam.pvalue.TaggedOutput(DEAD, dead_letter(source, record, step, reason, split))

    def reject_document(self, doc, step: str, error: Exception) -> beam.pvalue.TaggedOutput:
        """A dead letter for a valid document that a step failed on (a bug, or input no rule foresaw)."""
        return self.reject(doc.doc_id, doc.to_row(), step, f"{type(error).__name__}: {error}", doc.split)

    def run_counted(self, run) -> tuple[list, dict[str, int]]:
        """`run()`'s outputs, and the counts it made apart from the bundle's (they are added to it too)."""
        before, self._counts = self._counts, Counter()
        try:
            outputs = list(run())
            return outputs, dict(self._counts)
        finally:
            before.update(self._counts)
            self._counts = before

    def finish_bundle(self):
        resume_gc()
        for name, n in sorted(self._counts.items()):
            beam.metrics.Metrics.counter(NAMESPACE, name).inc(n)
            yield beam.pvalue.TaggedOutput(COUNTS, GlobalWindows.windowed_value((name, n)))
        self._counts = Counter()
