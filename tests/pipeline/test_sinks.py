"""The shard writer: rows sorted by id, and the same bytes whichever way the parts arrive."""

import random

import pyarrow as pa
import pyarrow.parquet as pq
from memllm.pipeline.sinks import _already_ordered, write_parquet_file

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("tags", pa.list_(pa.string()))])


def _rows(n: int) -> list[dict]:
    # Zero-padded ids, as the readers make them: string order is document order.
    return [{"id": f"doc-{i:06d}/w{i % 7:04d}", "text": "x" * (i % 13), "tags": ["a"] * (i % 3)} for i in range(n)]


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def test_parts_in_id_ranges_skip_the_sort_and_give_the_sorted_bytes(tmp_path):
    rows = _rows(5000)
    # Slices of consecutive rows in a shuffled order: what a shard gets from its chunks.
    chunked = [_table(rows[i : i + 700]) for i in range(0, len(rows), 700)]
    random.Random(0).shuffle(chunked)
    assert _already_ordered(chunked, ("id",)) is not None
    # Rows dealt at random: every part overlaps every other, so the writer has to sort.
    dealt = [[] for _ in range(6)]
    for row in rows:
        dealt[random.Random(row["id"]).randrange(6)].append(row)
    interleaved = [_table(part) for part in dealt]
    assert _already_ordered(interleaved, ("id",)) is None

    write_parquet_file(str(tmp_path / "a.parquet"), chunked, SCHEMA)
    write_parquet_file(str(tmp_path / "b.parquet"), interleaved, SCHEMA)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pq.read_table(tmp_path / "a.parquet").to_pylist() == rows


def test_a_part_out_of_order_inside_or_overlapping_is_sorted(tmp_path):
    rows = _rows(50)
    swapped = rows[:10] + [rows[11], rows[10]] + rows[12:30]  # one part not ascending inside
    assert _already_ordered([_table(swapped), _table(rows[30:])], ("id",)) is None
    overlapping = [_table(rows[0:30]), _table(rows[29:])]  # a repeated id: ranges not disjoint
    assert _already_ordered(overlapping, ("id",)) is None
    assert _already_ordered([_table([{**rows[0], "id": None}]), _table(rows[1:])], ("id",)) is None
    write_parquet_file(str(tmp_path / "c.parquet"), [_table(swapped), _table(rows[30:])], SCHEMA)
    assert pq.read_table(tmp_path / "c.parquet").column("id").to_pylist() == [r["id"] for r in rows]


def test_no_rows_writes_an_empty_shard(tmp_path):
    write_parquet_file(str(tmp_path / "e.parquet"), [SCHEMA.empty_table()], SCHEMA)
    table = pq.read_table(tmp_path / "e.parquet")
    assert table.num_rows == 0 and table.schema.names == SCHEMA.names
