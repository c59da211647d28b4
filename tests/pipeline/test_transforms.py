"""Beam transforms with TestPipeline + assert_that: the same examples as the annotators in-process."""

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from annotators.read_examples import build_read_examples
from annotators.write_examples import build_write_examples
from pipeline.examples import BuildReadExamples, BuildWriteExamples
from tests.conftest import gold_memory

OPTIONS = ["--runner=FnApiRunner"]


def as_json(rows):
    return [json.dumps(r, sort_keys=True) for r in rows]


def test_write_examples_transform(sample_docs, labels):
    expected = [ex.to_row() for d in sample_docs for ex in build_write_examples(d, labels)]
    with TestPipeline(argv=OPTIONS) as p:
        rows, dead, _ = p | beam.Create(sample_docs) | BuildWriteExamples()
        assert_that(rows | "J" >> beam.Map(lambda r: json.dumps(r, sort_keys=True)), equal_to(as_json(expected)))
        assert_that(dead, equal_to([]), label="NoDeadLetters")


def test_read_examples_join_equals_in_process_exact_memory(sample_docs, labels):
    memory = gold_memory(sample_docs, labels)
    expected = [ex.to_row() for d in sample_docs for ex in build_read_examples(d, memory, labels)]
    assert len(expected) > 10
    with TestPipeline(argv=OPTIONS) as p:
        rows, dead, counts = p | beam.Create(sample_docs) | BuildReadExamples()
        assert_that(rows | "J" >> beam.Map(lambda r: json.dumps(r, sort_keys=True)), equal_to(as_json(expected)))
        assert_that(dead, equal_to([]), label="NoDeadLetters")
        total = counts | beam.CombinePerKey(sum) | beam.Filter(lambda kv: kv[0] == "memory_read.examples")
        assert_that(total, equal_to([("memory_read.examples", len(expected))]), label="Counted")
