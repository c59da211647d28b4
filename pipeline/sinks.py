"""Sinks: deterministic Parquet / JSONL shards, and `stats.json`.

Shards are written by our own writer, not `WriteToParquet` (random shard assignment per run, empty shards,
nothing at all on the DaskRunner; see DESIGN.md): a row goes to shard `crc32(id) % N` of its split, where
N = ceil(rows in the split / rows_per_shard) is computed from the data; a `GroupByKey` gathers a shard,
its rows are sorted by id and written to a temporary name, then renamed. Same input, same bytes, on every
runner. Every shard `0..N-1` is written, empty ones included, so the `-of-N` names are always complete.
"""

from __future__ import annotations

import json
import math
import zlib

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.counting import COUNTS

PARQUET_COMPRESSION = "zstd"
ROW_GROUP_SIZE = 10_000


def shard_name(split: str, index: int, total: int, suffix: str) -> str:
    return f"{split}-{index:05d}-of-{total:05d}{suffix}"


def _shard_of(key: str, total: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % total


def _write_atomically(path: str, write) -> None:
    tmp = path + ".tmp"
    with FileSystems.create(tmp) as f:
        write(f)
    FileSystems.rename([tmp], [path])


def write_parquet_file(path: str, rows: list[dict], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    _write_atomically(
        path,
        lambda f: pq.write_table(
            table,
            f,
            compression=PARQUET_COMPRESSION,
            row_group_size=ROW_GROUP_SIZE,
            use_compliant_nested_type=True,
        ),
    )


def write_jsonl_file(path: str, rows: list[dict]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")
    _write_atomically(path, lambda f: f.write(data))


class WriteShards(beam.PTransform):
    """Rows (dicts with `split` and a sort key) → `OUT/<table>/<split>-0000k-of-0000N.<ext>`.

    Parquet tables are sorted by `id`; dead letters (JSONL) by their full content. Outputs
    `("<table>.<split>.rows", n)` pairs for `stats.json`.
    """

    def __init__(self, out_dir: str, table: str, rows_per_shard: int, schema: pa.Schema | None = None):
        super().__init__()
        self.directory = FileSystems.join(out_dir, table)
        self.table = table
        self.rows_per_shard = rows_per_shard
        self.schema = schema

    def _key(self, row: dict) -> str:
        if self.schema is not None:
            return row["id"]
        return json.dumps(row, ensure_ascii=False, sort_keys=True)

    def expand(self, rows):
        per_split = (
            rows | "CountPerSplit" >> beam.Map(lambda r: (r["split"], 1)) | "SumPerSplit" >> beam.CombinePerKey(sum)
        )
        totals = beam.pvalue.AsDict(
            per_split | "ShardsPerSplit" >> beam.MapTuple(lambda s, n: (s, max(1, math.ceil(n / self.rows_per_shard))))
        )
        keyed = rows | "AssignShard" >> beam.Map(
            lambda r, totals: ((r["split"], _shard_of(self._key(r), totals[r["split"]])), r), totals=totals
        )
        # One empty marker per shard, so a shard that no row hashes to is still written.
        markers = per_split | "ShardMarkers" >> beam.FlatMap(
            lambda kv, totals: [((kv[0], i), None) for i in range(totals[kv[0]])], totals=totals
        )
        return (
            (keyed, markers)
            | "Flatten" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(self._write, totals=totals)
        )

    def _write(self, grouped, totals) -> tuple[str, int]:
        (split, index), rows = grouped
        rows = sorted((r for r in rows if r is not None), key=self._key)
        if self.schema is not None:
            path = FileSystems.join(self.directory, shard_name(split, index, totals[split], ".parquet"))
            write_parquet_file(path, rows, self.schema)
        else:
            path = FileSystems.join(self.directory, shard_name(split, index, totals[split], ".jsonl"))
            write_jsonl_file(path, rows)
        return (f"{self.table}.{split}.rows", len(rows))


class WriteStats(beam.PTransform):
    """Sum `(name, n)` count pairs and write them, sorted, to `OUT/stats.json`."""

    def __init__(self, out_dir: str):
        super().__init__()
        self.path = FileSystems.join(out_dir, "stats.json")

    def expand(self, counts):
        return (
            counts
            | "Sum" >> beam.CombinePerKey(sum)
            | "All" >> beam.combiners.ToDict()
            | "Write" >> beam.Map(self._write)
        )

    def _write(self, counts: dict) -> dict:
        data = (json.dumps(dict(sorted(counts.items())), indent=2) + "\n").encode("utf-8")
        _write_atomically(self.path, lambda f: f.write(data))
        return counts


__all__ = ["COUNTS", "WriteShards", "WriteStats", "shard_name", "write_parquet_file"]
