"""Sinks: deterministic Parquet / JSONL shards, and `stats.json`.

Shards are written by our own writer, not `WriteToParquet` (random shard assignment per run, empty shards,
nothing at all on the DaskRunner; see docs/design.md): a row goes to shard `crc32(id) % N` of its split, where
N = ceil(rows in the split / rows_per_shard) is computed from the data; a `GroupByKey` gathers a shard,
its rows are sorted by id and written to a temporary name, then renamed. Same input, same bytes, on every
runner. Every shard `0..N-1` is written, empty ones included, so the `-of-N` names are always complete.

The input is lists of rows (one per batch, see `pipeline.batches`). Rows never cross a shuffle: each list
is written at once as a lz4-compressed Arrow IPC file under `OUT/<table>/_spill/`, then cut into one
file per shard it has rows for, and only the file names travel (like Beam's own file sinks, which write
temporary files and move names). The local runners move ~80 MB/s through a shuffle and hold every
shuffled byte in the launching process; example text is repetitive (each memory-write row repeats its
document's text so far), so lz4 shrinks a spill file ~4x at ~0.04 ms a document. `_spill/` is removed when
the run ends (`clear_spill`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from memllm.pipeline.batches import runs_without_gc
from memllm.pipeline.counting import COUNTS

log = logging.getLogger("memllm")

# Arrow's default pool (mimalloc) keeps freed memory for reuse, so a worker that once held a large shard
# keeps that RSS for the rest of the run; the system allocator gives it back (~200 MB less peak on the
# 10,000-document benchmark, same speed). Set on import: every process that writes shards imports this.
pa.set_memory_pool(pa.system_memory_pool())

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


def write_parquet_file(path: str, parts: list[pa.Table], schema: pa.Schema, sort_by: tuple[str, ...] = ("id",)) -> None:
    """Write the rows of `parts` sorted by their `sort_by` columns (unique together), in row groups of
    ROW_GROUP_SIZE. The layout depends only on the rows.

    The list is emptied: the sorted copy is made one column at a time, each original column released as
    its copy is made, so the writer holds about one shard, not two. (Taking each row group from the
    unsorted multi-chunk table instead re-concatenated every column per row group: 2.4x slower.)"""
    ordered = _already_ordered(parts, sort_by)
    if ordered is not None:
        # Copying the parts into one chunk per column, in order, gives the bytes the sort below would
        # (tested), at a tenth of its cost.
        table = pa.concat_tables(ordered).combine_chunks() if ordered else schema.empty_table()
        table = pa.Table.from_arrays(table.columns, schema=schema)
        parts.clear()
        del ordered
    else:
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        parts.clear()
        order = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in sort_by])
        columns = table.columns
        del table
        for i in range(len(columns)):
            columns[i] = columns[i].take(order)
        table = pa.Table.from_arrays(columns, schema=schema)
        del columns

    def write(f) -> None:
        pq.write_table(
            table,
            f,
            compression=PARQUET_COMPRESSION,
            use_compliant_nested_type=True,
            row_group_size=ROW_GROUP_SIZE,
        )

    _write_atomically(path, write)


def _already_ordered(parts: list[pa.Table], sort_by: tuple[str, ...]) -> list[pa.Table] | None:
    """The non-empty parts in the order whose concatenation is sorted by the one `sort_by` column, when no
    row has to move: each part ascending and the parts' ranges disjoint. That is the usual case: a shard's
    parts are slices of chunks, each chunk's ids ascending (zero-padded document indices) and chunks
    disjoint. None otherwise (then the rows are sorted)."""
    if len(sort_by) != 1:
        return None
    parts = [p for p in parts if p.num_rows]
    keys = [p.column(sort_by[0]) for p in parts]
    if any(key.null_count for key in keys):
        return None
    order = sorted(range(len(parts)), key=lambda i: keys[i][0].as_py())
    last = None
    for i in order:
        key, n = keys[i], len(keys[i])
        if last is not None and not last < key[0].as_py():
            return None
        if n > 1 and not pc.all(pc.less(key.slice(0, n - 1), key.slice(1))).as_py():
            return None
        last = key[n - 1].as_py()
    return [parts[i] for i in order]


SPILL_DIR = "_spill"
# lz4, not zstd: a spill file is written once and read once, and lz4 is ~2x faster both ways for ~4x
# instead of ~7x (memory-write rows of one 200-document chunk: 5.6 MB → 1.3 MB in 7.5 ms, zstd 0.8 MB in
# 13 ms; reading 1.9 ms vs 4.1 ms).
SPILL_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def write_spill(path: str, table: pa.Table) -> str:
    with FileSystems.create(path) as f, pa.ipc.new_stream(f, table.schema, options=SPILL_OPTIONS) as writer:
        writer.write_table(table)
    return path


def read_spill(path: str) -> pa.Table:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        return pa.ipc.open_stream(f.read()).read_all()


def clear_spill(out_dir: str, tables: Iterable[str]) -> None:
    """Remove the spill files of every table and of the run (after it, or left by an interrupted one)."""
    spills = [FileSystems.join(out_dir, t, SPILL_DIR) for t in tables] + [FileSystems.join(out_dir, SPILL_DIR)]
    existing = [p for p in spills if FileSystems.exists(p)]
    if existing:
        FileSystems.delete(existing)


def _json_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=True)


def write_jsonl_file(path: str, rows: list[dict]) -> None:
    data = "".join(_json_line(r) + "\n" for r in rows).encode("utf-8")
    _write_atomically(path, lambda f: f.write(data))


class WriteShards(beam.PTransform):
    """Lists of rows (dicts with `split`, `id` for Parquet) → `OUT/<table>/<split>-0000k-of-0000N.<ext>`.

    Parquet shards are sorted by `id` (or by `key`, columns unique together); JSONL (dead letters) by their
    full content. A table without a `split` column (the KB) names one with `split`. Outputs
    `("<table>.<split>.rows", n)` pairs for `stats.json`.
    """

    def __init__(
        self,
        out_dir: str,
        table: str,
        rows_per_shard: int,
        schema: pa.Schema,
        fmt: str = "parquet",
        key: tuple[str, ...] = ("id",),
        split: str | None = None,
    ):
        super().__init__()
        self.directory = FileSystems.join(out_dir, table)
        self.table = table
        self.rows_per_shard = rows_per_shard
        self.schema = schema
        self.fmt = fmt
        self.key = key
        self.split = split

    def _keys(self, table: pa.Table) -> list[str]:
        if self.fmt != "parquet":
            return [_json_line(r) for r in table.to_pylist()]
        if len(self.key) == 1:
            return table.column(self.key[0]).to_pylist()
        return ["\x1f".join(parts) for parts in zip(*(table.column(c).to_pylist() for c in self.key))]

    def _splits(self, table: pa.Table) -> list[str]:
        return [self.split] * table.num_rows if self.split else table.column("split").to_pylist()

    def expand(self, row_lists):
        spilled = row_lists | "Spill" >> beam.Map(self._spill)
        per_split = (
            spilled
            | "CountPerSplit" >> beam.FlatMap(lambda spill: spill[1].items())
            | "SumPerSplit" >> beam.CombinePerKey(sum)
        )
        totals = beam.pvalue.AsDict(
            per_split | "ShardsPerSplit" >> beam.MapTuple(lambda s, n: (s, max(1, math.ceil(n / self.rows_per_shard))))
        )
        sliced = spilled | "SliceByShard" >> beam.FlatMap(self._slice_by_shard, totals=totals)
        # One empty marker per shard, so a shard that no row hashes to is still written.
        markers = per_split | "ShardMarkers" >> beam.FlatMap(
            lambda kv, totals: [((kv[0], i), None) for i in range(totals[kv[0]])], totals=totals
        )
        return (
            (sliced, markers)
            | "Flatten" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(self._write, totals=totals)
        )

    @runs_without_gc
    def _spill(self, rows: list[dict]) -> tuple[str, dict[str, int]]:
        """Rows → (spill file, rows per split). The name comes from the rows (ids are unique): reruns match."""
        table = pa.Table.from_pylist(rows, schema=self.schema)
        name = hashlib.sha1(self._keys(table.slice(0, 1))[0].encode("utf-8")).hexdigest()[:20]
        path = write_spill(FileSystems.join(self.directory, SPILL_DIR, f"{name}-{len(rows)}.arrow"), table)
        return path, dict(Counter(self._splits(table)))

    @runs_without_gc
    def _slice_by_shard(self, spill: tuple[str, dict], totals: dict):
        path = spill[0]
        table = read_spill(path)
        rows_of = defaultdict(list)
        for i, (split, key) in enumerate(zip(self._splits(table), self._keys(table))):
            rows_of[(split, _shard_of(key, totals[split]))].append(i)
        for (split, shard), indices in sorted(rows_of.items()):
            part = path.removesuffix(".arrow") + f"-{split}-{shard:05d}.arrow"
            yield (split, shard), write_spill(part, table.take(indices))

    @runs_without_gc
    def _write(self, grouped, totals) -> tuple[str, int]:
        (split, index), parts = grouped
        parts = [read_spill(p) for p in parts if p is not None]
        rows = sum(part.num_rows for part in parts)
        path = FileSystems.join(self.directory, shard_name(split, index, totals[split], "." + self.fmt))
        if self.fmt == "parquet":
            write_parquet_file(path, parts, self.schema, self.key)
        else:
            table = pa.concat_tables(parts) if parts else self.schema.empty_table()
            write_jsonl_file(path, sorted(table.to_pylist(), key=_json_line))
        log.info("wrote %s/%s: %d rows", self.table, FileSystems.split(path)[1], rows)
        return (f"{self.table}.{split}.rows", rows)


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


__all__ = ["COUNTS", "WriteShards", "WriteStats", "clear_spill", "shard_name", "write_parquet_file"]
