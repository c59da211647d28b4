"""Beam transforms with TestPipeline + assert_that: the same examples as the annotators in-process."""

import dataclasses
import json
import os
import subprocess
import sys

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from memllm.annotators.read_examples import build_read_examples
from memllm.annotators.write_examples import build_write_examples
from memllm.pipeline.batches import DocumentBatch
from memllm.pipeline.counting import NAMESPACE
from memllm.pipeline.examples import BuildReadExamples, BuildWriteExamples, memory_bucket, memory_buckets, memory_key

from tests.conftest import gold_memory

OPTIONS = ["--runner=FnApiRunner"]


def as_json(rows):
    return [json.dumps(r, sort_keys=True) for r in rows]


def batches(docs, size=4):
    """The documents in several batches, so answers must cross batches (and buckets) to be found."""
    return [DocumentBatch(f"b{i}", docs[i : i + size]) for i in range(0, len(docs), size)]


def rows_as_json(row_lists):
    return row_lists | "J" >> beam.FlatMap(lambda rows: [json.dumps(r, sort_keys=True) for r in rows])


def test_write_examples_transform(sample_docs, labels):
    expected = [ex.to_row() for d in sample_docs for ex in build_write_examples(d, labels)]
    with TestPipeline(argv=OPTIONS) as p:
        rows, dead, _ = p | beam.Create(batches(sample_docs)) | BuildWriteExamples()
        assert_that(rows_as_json(rows), equal_to(as_json(expected)))
        assert_that(dead, equal_to([]), label="NoDeadLetters")


def test_counts_reach_beam_metrics_and_the_counts_output_alike(sample_docs, labels):
    expected = [ex for d in sample_docs for ex in build_write_examples(d, labels)]
    p = TestPipeline(argv=OPTIONS)
    _, _, counts = p | beam.Create(batches(sample_docs)) | BuildWriteExamples()
    summed = counts | beam.CombinePerKey(sum)
    assert_that(summed | beam.Filter(lambda kv: kv[0] == "memory_write.examples"),
                equal_to([("memory_write.examples", len(expected))]))  # fmt: skip
    result = p.run()
    result.wait_until_finish()
    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    totals = {}
    for m in metrics:
        totals[m.key.metric.name] = totals.get(m.key.metric.name, 0) + m.committed
    assert totals["memory_write.examples"] == len(expected)
    assert totals["memory_write.triples"] == sum(len(ex.triples) for ex in expected)


@pytest.mark.parametrize("buckets", [1, 8])
def test_read_examples_join_equals_in_process_exact_memory(sample_docs, labels, buckets):
    memory = gold_memory(sample_docs, labels)
    expected = [ex.to_row() for d in sample_docs for ex in build_read_examples(d, memory, labels)]
    assert len(expected) > 10
    with TestPipeline(argv=OPTIONS) as p:
        rows, dead, counts = p | beam.Create(batches(sample_docs)) | BuildReadExamples(buckets)
        assert_that(rows_as_json(rows), equal_to(as_json(expected)))
        assert_that(dead, equal_to([]), label="NoDeadLetters")
        total = counts | beam.CombinePerKey(sum) | beam.Filter(lambda kv: kv[0] == "memory_read.examples")
        assert_that(total, equal_to([("memory_read.examples", len(expected))]), label="Counted")


def test_memory_buckets_grow_with_the_input_and_are_stable():
    assert memory_buckets(0) == memory_buckets(1) == 8
    sizes = [memory_buckets(n << 20) for n in (1, 62, 1_500, 10**6, 10**9)]
    assert sizes == sorted(sizes) and sizes[-1] == 1 << 16
    assert all(b & (b - 1) == 0 for b in sizes)  # powers of two


def test_memory_bucket_is_the_same_in_every_process():
    # Workers are separate processes, and hash() of a str is salted per process.
    keys = [memory_key("Paris", "country", "tail"), memory_key("Émile Zola", "author", "head")]
    code = f"from memllm.pipeline.examples import memory_bucket; print([memory_bucket(k, 1024) for k in {keys!r}])"
    seen = {
        subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert seen == {str([memory_bucket(k, 1024) for k in keys])}


def test_a_document_a_step_fails_on_is_a_dead_letter_and_its_batch_goes_on(sample_docs, labels):
    """A document that passed validation but breaks a builder (here: a property with no label) costs only itself."""
    broken = dataclasses.replace(
        sample_docs[0], doc_id="broken", relations=[dataclasses.replace(sample_docs[0].relations[0], r="P0")]
    )
    docs = [broken, *sample_docs[1:]]
    expected = [ex.to_row() for d in sample_docs[1:] for ex in build_write_examples(d, labels)]
    with TestPipeline(argv=OPTIONS) as p:
        write_rows, write_dead, _ = p | "W" >> beam.Create(batches(docs)) | BuildWriteExamples()
        assert_that(rows_as_json(write_rows), equal_to(as_json(expected)))
        reasons = write_dead | beam.Map(lambda d: (d["source"], d["step"], d["split"], d["reason"].split(":")[0]))
        assert_that(reasons, equal_to([("broken", "memory_write", "train", "KeyError")]), label="WriteDead")
        _, read_dead, _ = p | "R" >> beam.Create(batches(docs)) | BuildReadExamples()
        steps = read_dead | "Steps" >> beam.Map(lambda d: (d["source"], d["step"], d["split"]))
        assert_that(steps, equal_to([("broken", "memory_read", "train")]), label="ReadDead")
