"""Triples to fill a memory with, read from the project's files (used by `memllm memory build` and tests).

- `parquet_triples`: the `triples` column of memory_write shards (list<struct<head, relation, tail, ...>>).
- `table_triples`: the rows of a `triples/` table that `memllm fill-memory` wrote (one triple a row), in
  the order of their ids across every shard: text order (document, sentence, triple), however the table
  was sharded.
- `docred_triples`: the gold triples of DocRED-format documents under every combination of head mention
  name × tail mention name, relation = the English Wikidata label: the exact-match memory the golden data
  was made with (docs/design.md "Memory-read examples at scale"). JSON arrays are streamed, never loaded whole.

What it doesn't do: validate documents (the pipeline's `annotators` does), write anything.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from memllm.memory.errors import MemoryUsageError
from memllm.memory.store import Triple

# the relation-label table ships with the package (setup.py package_data), beside this package
LABELS_FILE = Path(__file__).resolve().parent.parent / "annotators" / "data" / "property_labels_en.json"
_READ = 1 << 20


def relation_labels(path: str | Path | None = None) -> dict[str, str]:
    """Wikidata property id → English label (`P19` → `place of birth`)."""
    path = Path(path) if path else LABELS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MemoryUsageError(f"cannot read relation labels {path}: {e}") from None


def iter_json_documents(path: str | Path) -> Iterator[dict]:
    """The objects of a JSON array file (streamed with `raw_decode` over a buffer) or of a JSON-lines file."""
    decoder = json.JSONDecoder()
    try:
        with open(path, encoding="utf-8") as f:
            buf, pos, array = f.read(_READ), 0, None
            while True:
                while pos < len(buf) and (buf[pos].isspace() or buf[pos] == ","):
                    pos += 1
                if array is None and pos < len(buf):  # the first character tells an array from JSON lines
                    array = buf[pos] == "["
                    pos += 1 if array else 0
                    continue
                if pos < len(buf) and buf[pos] == "]" and array:
                    return
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError:
                    more = f.read(_READ)
                    if not more:
                        if buf[pos:].strip():
                            raise
                        return
                    buf, pos = buf[pos:] + more, 0
                    continue
                yield obj
                pos = end
    except FileNotFoundError:
        raise MemoryUsageError(f"no such file: {path}") from None
    except json.JSONDecodeError as e:
        raise MemoryUsageError(f"{path} is not JSON documents: {e}") from None


def docred_triples(path: str | Path, labels: Mapping[str, str] | None = None) -> Iterator[Triple]:
    labels = labels if labels is not None else relation_labels()
    for n, doc in enumerate(iter_json_documents(path)):
        try:
            triples = list(_document_triples(doc, labels))
        except (KeyError, IndexError, TypeError) as e:
            raise MemoryUsageError(f"{path}: document {n} is not in DocRED format ({type(e).__name__}: {e})") from None
        yield from triples


def _document_triples(doc: dict, labels: Mapping[str, str]) -> Iterator[Triple]:
    names = [list(dict.fromkeys(m["name"] for m in entity)) for entity in doc["vertexSet"]]
    for rel in doc["labels"]:
        label = labels.get(rel["r"])
        if label is None:
            raise KeyError(f"relation {rel['r']!r} has no label")
        for head in names[rel["h"]]:
            for tail in names[rel["t"]]:
                yield (head, label, tail)


def parquet_triples(path: str | Path) -> Iterator[Triple]:
    import pyarrow.parquet as pq

    try:
        shard = pq.ParquetFile(path)
    except FileNotFoundError:
        raise MemoryUsageError(f"no such file: {path}") from None
    if "triples" not in shard.schema_arrow.names:
        hint = "; for `memllm fill-memory` triples use --from" if "head" in shard.schema_arrow.names else ""
        raise MemoryUsageError(f"{path} has no 'triples' column (not a memory_write shard{hint})")
    for batch in shard.iter_batches(columns=["triples"]):
        for triples in batch.column(0).to_pylist():
            for t in triples or ():
                yield (t["head"], t["relation"], t["tail"])


def input_triples(path: str | Path, labels: Mapping[str, str] | None = None) -> Iterator[Triple]:
    """Triples of a shard (`.parquet`), a directory of shards, or DocRED-format documents (`.json[l]`)."""
    path = Path(path)
    if path.is_dir():
        shards = sorted(path.rglob("*.parquet"))
        if not shards:
            raise MemoryUsageError(f"no .parquet shards under {path}")
        for shard in shards:
            yield from parquet_triples(shard)
    elif not path.exists():
        raise MemoryUsageError(f"no such file: {path}")
    elif path.suffix == ".parquet":
        yield from parquet_triples(path)
    else:
        yield from docred_triples(path, labels)


TABLE_COLUMNS = ("id", "head", "relation", "tail")


def table_shards(path: str | Path) -> list[Path]:
    """The Parquet shards of a `triples/` table: under `path`, or under `path/triples` (an output directory)."""
    path = Path(path)
    if not path.is_dir():
        raise MemoryUsageError(f"--from {path}: no such directory")
    if (path / "triples").is_dir() and not any(path.glob("*.parquet")):
        path = path / "triples"
    shards = sorted(path.glob("*.parquet"))
    if not shards:
        raise MemoryUsageError(f"--from {path}: no .parquet shards (expected `memllm fill-memory` OUT/triples)")
    return shards


def _table_rows(shard: Path) -> Iterator[tuple[str, str, str, str]]:
    """(id, head, relation, tail) of one shard, checking that the ids ascend (the shard writer sorts them)."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(shard)
    missing = [c for c in TABLE_COLUMNS if c not in f.schema_arrow.names]
    if missing:
        raise MemoryUsageError(f"{shard}: no {', '.join(missing)} column(s) (not a `memllm fill-memory` triples shard)")
    last = None
    for batch in f.iter_batches(columns=list(TABLE_COLUMNS)):
        for row in zip(*(batch.column(i).to_pylist() for i in range(len(TABLE_COLUMNS)))):
            if last is not None and not last < row[0]:
                raise MemoryUsageError(f"{shard}: rows not sorted by id ({last!r} before {row[0]!r})")
            last = row[0]
            yield row


def table_triples(path: str | Path) -> Iterator[Triple]:
    """Every row's (head, relation, tail) of a `triples/` table, in id order across its shards (a streaming
    merge of the shards, each sorted by id): the order a rerun or another sharding gives again, and text
    order, so a later sentence's fact comes after an earlier one's (what `--mode overwrite` needs).
    Repeated triples are yielded again; the memory stores a triple once (exact strings)."""
    for _, head, relation, tail in heapq.merge(*(_table_rows(s) for s in table_shards(path))):
        yield (head, relation, tail)
