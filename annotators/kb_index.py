"""`KBIndex`: the KB's lookups answered from memory-mapped files, for a KB too big to load into a worker.

`build_kb_index(kb_dir)` reads the KB Parquet tables (`entities/*.parquet`: id, label, aliases;
`facts/*.parquet`: subject, property, object), streamed in record batches, and writes an index directory;
`KBIndex(index_dir)` maps its files read-only and answers what `KnowledgeBase` answers (`KBLookups` in
annotators/kb.py: candidates by alias key, exact surface forms, label, names, facts, facts between two ids,
neighbours, time values), with the same results in the same order. Its heap does not grow with the KB: the
arrays are `np.load(mmap_mode="r")` views and the strings zero-copy Arrow buffers of `pa.memory_map`, so
what a lookup touches is file-backed page cache, which the OS can evict. Pickling keeps only the directory.

Layout. Every id that occurs anywhere (entity ids, fact subjects, fact objects, so time values and items
outside the KB too) is a *node*; nodes are sorted by (64-bit hash of the id, id), and node i is row i of
every per-node file. Lookups hash the query, `np.searchsorted` the sorted hash array, and compare the
stored string in the (rare) run of equal hashes, so a collision never gives a wrong answer.

    file                      rows             per row (bytes)
    node_hash.npy   uint64    nodes            8
    ids.arrow       string    nodes            len(id) + 4 (Arrow offset)
    node_flags.npy  uint8     nodes            1   (entity / has label / empty label / is a fact object)
    name_start.npy  int64     nodes + 1        8   (CSR: node i's names are names[start[i]:start[i+1]])
    names.arrow     string    names            len(name) + 4   (label first, then aliases, deduplicated)
    fact_start.npy  int64     nodes + 1        8   (CSR into the fact arrays, facts sorted by (property, object))
    fact_property   uint32    facts            4   (row of properties.arrow, which is sorted)
    fact_object     uint32    facts            4   (node)
    neighbour_start int64     nodes + 1        8
    neighbours.npy  uint32    neighbour pairs  4   (both directions: at most 2 per fact)
    key_hash.npy    uint64    alias keys       8   (distinct `alias_key`s, sorted by (hash, key))
    keys.arrow      string    alias keys       len(key) + 4
    key_start.npy   int64     alias keys + 1   8
    postings.npy    uint32    (key, entity)    4   (entity nodes, in the KB's id order per key)
    form_hash.npy   uint64    exact forms      8   (whitespace-free, case-kept names)
    form_node.npy   uint32    exact forms      4   (one entity with that form: its names confirm a match)
    properties.arrow, manifest.json            (a few KB)

So a name costs at most 40 + len(name) + len(key) bytes (name 4 + len; its key 8 + 4 + 8 + len, when
distinct; posting 4; exact form 8 + 4), a fact at most 16 (property 4, object 4, two neighbour entries 8),
a node 37 + len(id) (hash 8, offset 4, flags 1, three starts 24). With names and keys of ~16 characters
that is ~72 B per name, so a billion names take ~72 GB on disk, a billion facts ≤ 16 GB, 100M nodes
~5 GB. A lookup reads a few pages of each file it touches (binary search, then one row).

Build, in bounded memory whatever the KB size. Rows are spread into 2**b temporary files by the top b
bits of their hash (b from the input size and `memory_mb`), then each partition is sorted in memory and
appended in partition order: since the partitions are hash ranges, that is the global sort order, so the
files are byte-identical for every `memory_mb` (Arrow files are written in record batches of a fixed
`BATCH_ROWS`, independent of the partitions). After the pass that spreads the input, three passes over the
partitions: nodes and names (alias keys and exact forms go to partitions of their own), then facts and
neighbours (ids resolved to node numbers by searching the node files just written, memory-mapped: fastest
when node_hash.npy, 8 B per node, fits the page cache), then alias keys and forms.
`manifest.json` records the format, hash function, counts, file sizes, the input files (names and sizes:
a later build given the same files reuses the index) and what was dropped and why; it is written last,
so a build that stops half-way is never reused.

Semantics as `KnowledgeBase.from_tables` over the concatenated files (sorted by name): a repeated entity
id keeps its last row, facts are deduplicated, names are label + aliases deduplicated, names whose
`alias_key` is empty are names but not alias keys. Facts whose subject is not an entity are kept (as the
KB keeps them; the manifest counts them). Rows the KB cannot hold are dropped and counted: null ids,
null fact fields, null aliases.

Not done: the index is read-only (a changed KB is rebuilt: about a minute per million entities with 3
names and 5 facts each, on one core, mostly `alias_key` and hashing in Python); paths are local files
(mmap), not remote storage; listings are not in id order (`aliases`, `alias_keys` iterate in index
order); at most 2**32 - 1 nodes (uint32 node numbers; Wikidata has ~115M items); the property vocabulary
(thousands) is held in memory while building.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from memllm.annotators.kb import alias_key, is_time_key

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BATCH_ROWS = 1 << 18  # rows per record batch of every Arrow file: fixed, so files never depend on partitions
READ_ROWS = 1 << 16  # rows per record batch read from the Parquet tables
NAME_CHUNK = 8192  # entities turned into Python objects at a time (names, keys, forms)
MAX_PARTITIONS = 1024  # two kinds of partition files are open at a time: 2048 file handles at most
# Working memory per uncompressed input byte while one partition is sorted (Arrow copies, hash columns,
# sort indices, Python objects of one name chunk); measured, with margin, on the dev KB and a 1M-entity KB.
WORK_FACTOR = 6

# What the build drops and why, and what two counts mean (the manifest repeats these under "why").
DROPPED = {
    "entity_rows_null_id": "an entity row without an id",
    "entity_rows_repeated_id": "an earlier row of an id that occurs again (the last is kept, as KnowledgeBase does)",
    "aliases_null": "a null in an aliases list",
    "names_repeated": "a name equal to an earlier name (label or alias) of the same entity",
    "fact_rows_null": "a fact row with a null subject, property or object",
    "facts_repeated": "a (subject, property, object) that occurs again",
}
COUNTED = {
    "names_empty_key": "names kept as names and exact forms, but not as alias keys: their alias_key is empty",
    "facts_subject_not_entity": "facts kept, as KnowledgeBase keeps them: facts(subject) answers them",
}

# node_flags bits
ENTITY, HAS_LABEL, EMPTY_LABEL, OBJECT = 1, 2, 4, 8

HashFn = Callable[[Sequence[str]], np.ndarray]


def blake2b_64(strings: Sequence[str]) -> np.ndarray:
    """uint64 hashes: the first 8 bytes (big-endian) of BLAKE2b of each string's UTF-8."""
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest() for s in strings])
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


# Hash functions by the name the manifest records; an index is always read with the hash it was built with.
HASHES: dict[str, HashFn] = {"blake2b-64": blake2b_64}
DEFAULT_HASH = "blake2b-64"

# Surface forms whose alias keys fingerprint `alias_key`: an index built with a different `alias_key` would
# silently miss names, so a build does not reuse it and `KBIndex` refuses to open it.
_KEY_PROBES = ('Wilfried " Willi " Schneider', "Alger\u2019s", "1,500 people", "\uff21\ufb01 Stra\u00dfe", "the U.S.")


def alias_key_probe() -> str:
    keys = "\n".join(alias_key(text) for text in _KEY_PROBES)
    return hashlib.blake2b(keys.encode("utf-8"), digest_size=8).hexdigest()


_U64 = pa.uint64()
_ENTITY_PART = pa.schema(
    [("h", _U64), ("id", pa.string()), ("label", pa.string()), ("aliases", pa.list_(pa.string())), ("seq", pa.int64())]
)
_FACT_PART = pa.schema([("hs", _U64), ("s", pa.string()), ("p", pa.string()), ("o", pa.string()), ("ho", _U64)])
_OBJECT_PART = pa.schema([("ho", _U64), ("o", pa.string()), ("hs", _U64), ("s", pa.string())])
_KEY_PART = pa.schema(
    [("h", _U64), ("key", pa.string()), ("idlen", pa.int32()), ("id", pa.string()), ("node", pa.uint32())]
)
_FORM_PART = pa.schema([("h", _U64), ("form", pa.string()), ("node", pa.uint32())])


_NPY = (
    "node_hash node_flags name_start fact_start fact_property fact_object neighbour_start neighbours "
    "key_hash key_start postings form_hash form_node"
).split()
_ARROW = ("ids", "names", "keys", "properties")
_FILES = frozenset([f"{name}.npy" for name in _NPY] + [f"{name}.arrow" for name in _ARROW])


# -- files ------------------------------------------------------------------------------------------------
class _NpyWriter:
    """A 1-D .npy file appended in pieces. numpy pads the header so that the length can grow to 21 digits
    without changing its size, so the header written first is overwritten with the final length at close."""

    def __init__(self, path: Path, dtype: str):
        self.dtype = np.dtype(dtype)
        self.n = 0
        self.f = open(path, "wb")
        self._header()
        self.header_size = self.f.tell()

    def _header(self) -> None:
        descr = np.lib.format.dtype_to_descr(self.dtype)
        np.lib.format.write_array_header_1_0(self.f, {"descr": descr, "fortran_order": False, "shape": (self.n,)})

    def write(self, values) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        self.f.write(memoryview(values).cast("B"))
        self.n += len(values)

    def close(self) -> None:
        self.f.seek(0)
        self._header()
        if self.f.tell() != self.header_size:
            raise RuntimeError("npy header changed size")  # numpy stopped padding headers for growth
        self.f.close()


class _StringWriter:
    """One string column as an Arrow IPC file in record batches of exactly BATCH_ROWS rows (the last fewer)."""

    def __init__(self, path: Path, name: str):
        self.schema = pa.schema([(name, pa.string())])
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = ipc.new_file(self.sink, self.schema)
        self.pending: list[pa.Array] = []
        self.pending_rows = 0

    def write(self, values: pa.Array | pa.ChunkedArray | list[str]) -> None:
        if isinstance(values, list):
            values = pa.array(values, pa.string())
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        self.pending.extend(c for c in chunks if len(c))
        self.pending_rows += len(values)
        if self.pending_rows >= BATCH_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        merged = pa.concat_arrays(self.pending) if self.pending else pa.array([], pa.string())
        full = len(merged) if final else len(merged) // BATCH_ROWS * BATCH_ROWS
        for start in range(0, full, BATCH_ROWS):
            self.writer.write_batch(pa.record_batch([_exact(merged.slice(start, BATCH_ROWS))], schema=self.schema))
        rest = merged.slice(full)
        self.pending, self.pending_rows = ([rest] if len(rest) else []), len(rest)

    def close(self) -> None:
        if self.pending_rows:
            self._flush(final=True)
        self.writer.close()
        self.sink.close()


def _exact(strings: pa.Array) -> pa.Array:
    """The strings in buffers of exactly their size: the IPC writer writes an unsliced array's whole
    buffer, allocator padding included, which would make the bytes depend on how the array was made."""
    if strings.null_count:
        raise ValueError("null strings in an index column")
    _, offsets, data = strings.buffers()
    offsets = np.frombuffer(offsets, dtype=np.int32)[strings.offset : strings.offset + len(strings) + 1]
    start, end = (int(offsets[0]), int(offsets[-1])) if len(offsets) else (0, 0)
    exact = pa.py_buffer((offsets - start).astype("<i4").tobytes() if len(offsets) else b"\0\0\0\0")
    body = pa.py_buffer(data[start:end].to_pybytes() if data is not None else b"")
    return pa.StringArray.from_buffers(len(strings), exact, body)


class _Strings:
    """A memory-mapped string file of `_StringWriter`: row i, by its batch and the batch's Arrow buffers."""

    def __init__(self, path: Path):
        self._map = pa.memory_map(str(path))
        reader = ipc.open_file(self._map)
        self._offsets: list[memoryview] = []
        self._data: list[memoryview] = []
        # Every batch but the last has the same number of rows, which the first batch tells.
        self._batch_rows = max(reader.get_batch(0).num_rows, 1) if reader.num_record_batches else 1
        for b in range(reader.num_record_batches):
            column = reader.get_batch(b).column(0)
            _, offsets, data = column.buffers()
            self._offsets.append(memoryview(offsets).cast("B").cast("i")[column.offset :])
            self._data.append(memoryview(data) if data is not None else memoryview(b""))

    def raw(self, i: int) -> bytes:
        b, j = divmod(i, self._batch_rows)
        offsets = self._offsets[b]
        return self._data[b][offsets[j] : offsets[j + 1]].tobytes()

    def __getitem__(self, i: int) -> str:
        return self.raw(i).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        for offsets, data in zip(self._offsets, self._data):
            for j in range(len(offsets) - 1):
                yield data[offsets[j] : offsets[j + 1]].tobytes().decode("utf-8")


def _load(path: Path) -> np.ndarray:
    # A plain ndarray over the read-only mapping: `np.memmap` indexes through Python-level methods, slower.
    return np.load(path, mmap_mode="r").view(np.ndarray)


def _input_files(kb_dir: Path, table: str) -> list[Path]:
    return sorted((kb_dir / table).glob("*.parquet"))


def _inputs(kb_dir: Path) -> dict[str, list[dict]]:
    """The input files by name (relative to the KB directory) and size: what makes an index reusable."""
    return {
        table: [{"name": f"{table}/{p.name}", "bytes": p.stat().st_size} for p in _input_files(kb_dir, table)]
        for table in ("entities", "facts")
    }


def _uncompressed_bytes(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def _allow_open_files(partitions: int) -> None:
    # Two kinds of partition files are written at a time, each with one open file per partition.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * partitions + 64
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


def _partition_bits(kb_dir: Path, memory_mb: int) -> int:
    """log2 of the partition count: each partition's share of the input, times WORK_FACTOR, fits memory_mb."""
    work = WORK_FACTOR * (
        _uncompressed_bytes(_input_files(kb_dir, "entities")) + 2 * _uncompressed_bytes(_input_files(kb_dir, "facts"))
    )
    partitions = -(-work // (max(memory_mb, 1) << 20))
    return min(max(int(partitions - 1).bit_length(), 0), MAX_PARTITIONS.bit_length() - 1)


# -- build helpers ----------------------------------------------------------------------------------------
class _Partitions:
    """Rows spread over 2**bits temporary Arrow stream files by the top `bits` bits of a 64-bit hash."""

    def __init__(self, tmp: Path, kind: str, schema: pa.Schema, bits: int):
        self.tmp, self.kind, self.schema, self.bits = tmp, kind, schema, bits
        self.writers: dict[int, tuple[pa.NativeFile, ipc.RecordBatchStreamWriter]] = {}

    def _path(self, k: int) -> Path:
        return self.tmp / f"{self.kind}-{k:05d}.arrows"

    def write(self, table: pa.Table, hashes: np.ndarray) -> None:
        if not len(table):
            return
        if self.bits == 0:
            part = np.zeros(len(hashes), dtype=np.int64)
        else:
            part = (hashes >> np.uint64(64 - self.bits)).astype(np.int64)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange((1 << self.bits) + 1))
        table = table.take(pa.array(order))
        for k in np.flatnonzero(np.diff(bounds)):
            self._writer(int(k)).write_table(table.slice(bounds[k], bounds[k + 1] - bounds[k]))

    def _writer(self, k: int) -> ipc.RecordBatchStreamWriter:
        if k not in self.writers:
            sink = pa.OSFile(str(self._path(k)), "wb")
            self.writers[k] = (sink, ipc.new_stream(sink, self.schema))
        return self.writers[k][1]

    def close(self) -> None:
        for sink, writer in self.writers.values():
            writer.close()
            sink.close()
        self.writers = {}

    def read(self, k: int, keep: bool = False) -> pa.Table:
        """Partition k (memory-mapped: file-backed until sorted); its file is deleted unless `keep`."""
        path = self._path(k)
        if not path.exists():
            return self.schema.empty_table()
        with pa.memory_map(str(path)) as source:
            table = ipc.open_stream(source).read_all()
        if not keep:
            path.unlink()  # the mapping stays valid; the disk space returns once the table is dropped
        return table


def _np(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy() if isinstance(column, pa.ChunkedArray) else column.to_numpy(zero_copy_only=False)


def _run_starts(hashes: np.ndarray, *columns: pa.ChunkedArray) -> np.ndarray:
    """True where a row differs from the previous one in hash or any column (sorted rows: first of a run)."""
    first = np.ones(len(hashes), dtype=bool)
    if len(hashes) > 1:
        same = hashes[1:] == hashes[:-1]
        for column in columns:
            equal = pc.equal(column.slice(1), column.slice(0, len(hashes) - 1))
            same &= _np(pc.fill_null(equal, True))
        first[1:] = ~same
    return first


def _sorted(table: pa.Table, keys: list[tuple[str, str]]) -> pa.Table:
    return table.take(pc.sort_indices(table, sort_keys=keys))


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (`np.unique`, whose hash-based path is several times slower here)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _starts(offset: int, counts: np.ndarray) -> np.ndarray:
    """CSR starts of consecutive groups of `counts` rows, beginning at `offset`."""
    return offset + np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)


class _Resolver:
    """Ids → node numbers by searching the node files already written (every id looked up is a node)."""

    def __init__(self, out: Path):
        self.hashes = _load(out / "node_hash.npy")
        self.ids = _Strings(out / "ids.arrow")

    def __call__(self, hashes: np.ndarray, ids: pa.ChunkedArray) -> np.ndarray:
        n = len(self.hashes)
        lo = np.searchsorted(self.hashes, hashes)
        # A hash that starts a run of one is the id itself; a longer run (a collision) compares the strings.
        after = self.hashes[np.minimum(lo + 1, n - 1)]
        for i in np.flatnonzero((lo + 1 < n) & (after == hashes)).tolist():
            target = ids[i].as_py().encode("utf-8")
            lo[i] = next(j for j in range(lo[i], n) if self.ids.raw(j) == target)
        return lo.astype(np.uint32)


# -- build ------------------------------------------------------------------------------------------------
class _Builder:
    def __init__(self, kb_dir: Path, out: Path, tmp: Path, hash_fn: HashFn, bits: int):
        self.kb_dir, self.out, self.tmp, self.hash, self.bits = kb_dir, out, tmp, hash_fn, bits
        self.dropped = dict.fromkeys(DROPPED, 0)
        counts = "entities nodes names names_empty_key alias_keys postings exact_forms facts facts_subject_not_entity"
        self.counts = dict.fromkeys(counts.split() + ["neighbour_pairs", "properties"], 0)
        self.node_ranges: list[tuple[int, int]] = []  # (first node, node count) of each partition

    def run(self) -> dict:
        entities = _Partitions(self.tmp, "entities", _ENTITY_PART, self.bits)
        facts = _Partitions(self.tmp, "facts", _FACT_PART, self.bits)
        objects = _Partitions(self.tmp, "objects", _OBJECT_PART, self.bits)
        self._spread_entities(entities)
        properties = self._spread_facts(facts, objects)
        keys = _Partitions(self.tmp, "keys", _KEY_PART, self.bits)
        forms = _Partitions(self.tmp, "forms", _FORM_PART, self.bits)
        self._write_nodes(entities, facts, objects, keys, forms)
        self._write_facts(facts, objects, properties)
        self._write_keys(keys)
        self._write_forms(forms)
        return {"counts": self.counts, "dropped": self.dropped, "why": {"dropped": DROPPED, "counts": COUNTED}}

    def _batches(self, table: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
        for path in _input_files(self.kb_dir, table):
            yield from pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS, columns=columns)

    # pass 1: the input tables → partitions by the hash of the id (entities), subject (facts), object
    def _spread_entities(self, parts: _Partitions) -> None:
        seq = 0
        for batch in self._batches("entities", ["id", "label", "aliases"]):
            rows = len(batch)
            batch = batch.filter(pc.is_valid(batch.column("id")))
            self.dropped["entity_rows_null_id"] += rows - len(batch)
            hashes = self.hash(batch.column("id").to_pylist())
            columns = [pa.array(hashes)] + [
                batch.column(c).cast(_ENTITY_PART.field(c).type) for c in batch.schema.names
            ]
            # seq: the row's place in the input, so that a repeated id keeps its last row (as the KB does)
            columns.append(pa.array(np.arange(len(batch), dtype=np.int64) + seq))
            parts.write(pa.Table.from_arrays(columns, schema=_ENTITY_PART), hashes)
            seq += rows
        parts.close()

    def _hash_repeated(self, strings: pa.Array) -> np.ndarray:
        # Subjects and objects repeat (a subject's facts are adjacent, objects like Q5 are everywhere):
        # hash each distinct string of the batch once.
        encoded = pc.dictionary_encode(strings)
        return self.hash(encoded.dictionary.to_pylist())[encoded.indices.to_numpy()]

    def _spread_facts(self, facts: _Partitions, objects: _Partitions) -> pa.Array:
        properties: set[str] = set()
        for batch in self._batches("facts", ["subject", "property", "object"]):
            rows = len(batch)
            batch = batch.drop_null()
            self.dropped["fact_rows_null"] += rows - len(batch)
            s, p, o = (batch.column(i).cast(pa.string()) for i in range(3))
            hs, ho = self._hash_repeated(s), self._hash_repeated(o)
            facts.write(pa.Table.from_arrays([pa.array(hs), s, p, o, pa.array(ho)], schema=_FACT_PART), hs)
            objects.write(pa.Table.from_arrays([pa.array(ho), o, pa.array(hs), s], schema=_OBJECT_PART), ho)
            properties.update(pc.unique(p).to_pylist())
        facts.close()
        objects.close()
        self.counts["properties"] = len(properties)
        return pa.array(sorted(properties), pa.string())

    # pass 2, per partition: the nodes (ids of entities, fact subjects, fact objects), their flags and names
    def _write_nodes(self, entities, facts, objects, keys, forms) -> None:
        out = self.out
        node_hash, node_flags = _NpyWriter(out / "node_hash.npy", "<u8"), _NpyWriter(out / "node_flags.npy", "u1")
        name_start = _NpyWriter(out / "name_start.npy", "<i8")
        ids, names = _StringWriter(out / "ids.arrow", "id"), _StringWriter(out / "names.arrow", "name")
        node_offset = name_offset = 0
        for k in range(1 << self.bits):
            ents = self._entities(entities.read(k))
            hashes, node_ids, flags, entity_nodes = self._nodes(
                ents, facts.read(k, keep=True).select(["hs", "s"]), objects.read(k, keep=True).select(["ho", "o"])
            )
            if node_offset + len(hashes) >= 1 << 32:
                raise ValueError("more than 2**32 - 1 ids: node numbers are uint32")
            counts = np.zeros(len(hashes), dtype=np.int64)
            self._names(ents, entity_nodes, node_offset, flags, counts, names, keys, forms)
            node_hash.write(hashes)
            node_flags.write(flags)
            ids.write(node_ids)
            name_start.write(_starts(name_offset, counts))
            self.node_ranges.append((node_offset, len(hashes)))
            node_offset += len(hashes)
            name_offset += int(counts.sum())
        name_start.write([name_offset])
        for writer in (node_hash, node_flags, name_start, ids, names, keys, forms):
            writer.close()
        self.counts.update(nodes=node_offset, names=name_offset)

    def _entities(self, table: pa.Table) -> pa.Table:
        """One row per id, sorted by (hash, id): the last row of a repeated id, as the KB keeps it."""
        table = _sorted(table, [("h", "ascending"), ("id", "ascending"), ("seq", "descending")])
        first = _run_starts(_np(table["h"]), table["id"])
        self.dropped["entity_rows_repeated_id"] += int(len(first) - first.sum())
        self.counts["entities"] += int(first.sum())
        return table.filter(pa.array(first))

    @staticmethod
    def _nodes(ents: pa.Table, subjects: pa.Table, objs: pa.Table):
        """The distinct ids of one partition, sorted by (hash, id): hashes, ids, flags, entity rows → nodes."""
        parts = [(ents["h"], ents["id"], 0), (subjects["hs"], subjects["s"], 1), (objs["ho"], objs["o"], 2)]
        table = pa.concat_tables(
            pa.table({"h": h, "id": i, "src": pa.array(np.full(len(h), src, dtype=np.int8))}) for h, i, src in parts
        )
        # src 0 (entity) sorts first in a run of equal ids: the first row of a run says whether it is an entity.
        table = _sorted(table, [("h", "ascending"), ("id", "ascending"), ("src", "ascending")])
        hashes, src = _np(table["h"]), _np(table["src"])
        first = _run_starts(hashes, table["id"])
        run = np.cumsum(first) - 1
        flags = np.zeros(int(first.sum()), dtype=np.uint8)
        entity_nodes = run[src == 0]  # in the order of `ents` (also sorted by (hash, id))
        flags[entity_nodes] |= ENTITY
        flags[run[src == 2]] |= OBJECT
        return hashes[first], table["id"].filter(pa.array(first)), flags, entity_nodes

    def _names(self, ents, entity_nodes, node_offset, flags, counts, names, keys, forms) -> None:
        """Names of the partition's entities (to `names`), their alias keys and exact forms (to partitions)."""
        done = 0
        for batch in ents.to_batches(max_chunksize=NAME_CHUNK):
            chunk: list[str] = []
            key_list, key_ids, key_nodes, form_list, form_nodes = [], [], [], [], []
            columns = [batch.column(c).to_pylist() for c in ("id", "label", "aliases")]
            locals_ = entity_nodes[done : done + len(batch)].tolist()
            for entity_id, label, aliases, local in zip(*columns, locals_):
                entity_names = self._entity_names(label, aliases)
                flags[local] |= HAS_LABEL if label else EMPTY_LABEL if label == "" else 0
                counts[local] = len(entity_names)
                chunk += entity_names
                node = node_offset + local
                entity_keys = [alias_key(name) for name in entity_names]
                self.counts["names_empty_key"] += entity_keys.count("")
                for key in dict.fromkeys(k for k in entity_keys if k):
                    key_list.append(key)
                    key_ids.append(entity_id)
                    key_nodes.append(node)
                for form in dict.fromkeys("".join(name.split()) for name in entity_names):
                    form_list.append(form)
                    form_nodes.append(node)
            done += len(batch)
            names.write(chunk)
            self._spread_keys(keys, key_list, key_ids, key_nodes)
            self._spread_forms(forms, form_list, form_nodes)

    def _entity_names(self, label: str | None, aliases: list[str | None] | None) -> list[str]:
        # Exactly `KnowledgeBase`: a non-empty label first, then the aliases, deduplicated in order.
        raw = ([label] if label else []) + [a for a in aliases or () if a is not None]
        self.dropped["aliases_null"] += len(aliases or ()) - len(raw) + (1 if label else 0)
        names = list(dict.fromkeys(raw))
        self.dropped["names_repeated"] += len(raw) - len(names)
        return names

    def _spread_keys(self, keys: _Partitions, key_list: list, id_list: list, node_list: list) -> None:
        hashes = self.hash(key_list)
        id_array = pa.array(id_list, pa.string())
        columns = [pa.array(hashes), pa.array(key_list, pa.string()), pc.utf8_length(id_array), id_array]
        columns.append(pa.array(node_list, pa.uint32()))
        keys.write(pa.Table.from_arrays(columns, schema=_KEY_PART), hashes)

    def _spread_forms(self, forms: _Partitions, form_list: list, node_list: list) -> None:
        hashes = self.hash(form_list)
        columns = [pa.array(hashes), pa.array(form_list, pa.string()), pa.array(node_list, pa.uint32())]
        forms.write(pa.Table.from_arrays(columns, schema=_FORM_PART), hashes)

    # pass 3, per partition: facts of the partition's subjects, neighbours of the partition's nodes
    def _write_facts(self, facts: _Partitions, objects: _Partitions, properties: pa.Array) -> None:
        out = self.out
        resolve, node_flags = _Resolver(out), _load(out / "node_flags.npy")
        fact_start, neighbour_start = (
            _NpyWriter(out / "fact_start.npy", "<i8"),
            _NpyWriter(out / "neighbour_start.npy", "<i8"),
        )
        fact_property, fact_object = (
            _NpyWriter(out / "fact_property.npy", "<u4"),
            _NpyWriter(out / "fact_object.npy", "<u4"),
        )
        neighbours = _NpyWriter(out / "neighbours.npy", "<u4")
        property_names = _StringWriter(out / "properties.arrow", "property")
        property_names.write(properties)
        property_names.close()
        fact_offset = pair_offset = 0
        for k, (first_node, n) in enumerate(self.node_ranges):
            t = self._facts(facts.read(k), properties)
            subjects, objs = resolve(_np(t["hs"]), t["s"]), resolve(_np(t["ho"]), t["o"])
            fact_property.write(_np(t["p"]))
            fact_object.write(objs)
            fact_start.write(_starts(fact_offset, np.bincount(subjects - first_node, minlength=n)))
            fact_offset += len(t)
            self.counts["facts_subject_not_entity"] += int(np.count_nonzero((node_flags[subjects] & ENTITY) == 0))
            # Neighbours of this partition's nodes: objects of its subjects' facts, subjects of its objects' facts.
            r = objects.read(k)
            near = np.concatenate([subjects, resolve(_np(r["ho"]), r["o"])]).astype(np.uint64)
            far = np.concatenate([objs, resolve(_np(r["hs"]), r["s"])]).astype(np.uint64)
            keep = near != far
            pairs = _distinct(((near[keep] - np.uint64(first_node)) << np.uint64(32)) | far[keep])
            neighbours.write(pairs & np.uint64(0xFFFFFFFF))
            counts = np.bincount((pairs >> np.uint64(32)).astype(np.int64), minlength=n)
            neighbour_start.write(_starts(pair_offset, counts))
            pair_offset += len(pairs)
        fact_start.write([fact_offset])
        neighbour_start.write([pair_offset])
        for writer in (fact_start, neighbour_start, fact_property, fact_object, neighbours):
            writer.close()
        self.counts.update(facts=fact_offset, neighbour_pairs=pair_offset)

    def _facts(self, facts: pa.Table, properties: pa.Array) -> pa.Table:
        """One partition's facts sorted by (subject node, property, object), without repeats."""
        table = pa.table(
            {
                "hs": facts["hs"],
                "s": facts["s"],
                "p": pc.index_in(facts["p"], value_set=properties),
                "o": facts["o"],
                "ho": facts["ho"],
            }
        )
        # Properties are numbered in string order, so sorting by number is the KB's (property, object) order.
        table = _sorted(table, [("hs", "ascending"), ("s", "ascending"), ("p", "ascending"), ("o", "ascending")])
        first = _run_starts(_np(table["hs"]), table["s"], table["p"], table["o"])
        self.dropped["facts_repeated"] += int(len(first) - first.sum())
        return table.filter(pa.array(first))

    # pass 4, per partition: alias keys with their postings, exact forms with one entity each
    def _write_keys(self, keys: _Partitions) -> None:
        out = self.out
        key_hash, key_start = _NpyWriter(out / "key_hash.npy", "<u8"), _NpyWriter(out / "key_start.npy", "<i8")
        postings, strings = _NpyWriter(out / "postings.npy", "<u4"), _StringWriter(out / "keys.arrow", "key")
        offset = 0
        for k in range(1 << self.bits):
            # Within a key, entities in the KB's id order: (length, id), so Q9 before Q10.
            order = [("h", "ascending"), ("key", "ascending"), ("idlen", "ascending"), ("id", "ascending")]
            t = _sorted(keys.read(k), order)
            hashes = _np(t["h"])
            first = _run_starts(hashes, t["key"])
            key_hash.write(hashes[first])
            strings.write(t["key"].filter(pa.array(first)))
            key_start.write(offset + np.flatnonzero(first))
            postings.write(_np(t["node"]))
            offset += len(t)
        key_start.write([offset])
        for writer in (key_hash, key_start, postings, strings):
            writer.close()
        self.counts.update(alias_keys=key_hash.n, postings=offset)

    def _write_forms(self, forms: _Partitions) -> None:
        form_hash, form_node = (
            _NpyWriter(self.out / "form_hash.npy", "<u8"),
            _NpyWriter(self.out / "form_node.npy", "<u4"),
        )
        for k in range(1 << self.bits):
            t = _sorted(forms.read(k), [("h", "ascending"), ("form", "ascending"), ("node", "ascending")])
            first = _run_starts(_np(t["h"]), t["form"])
            form_hash.write(_np(t["h"])[first])
            form_node.write(_np(t["node"])[first])
        form_hash.close()
        form_node.close()
        self.counts["exact_forms"] = form_hash.n


def build_kb_index(
    kb_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    memory_mb: int = 1024,
    hash_name: str = DEFAULT_HASH,
) -> dict:
    """Write the index of the KB tables under `kb_dir` to `out_dir` (default `kb_dir/index`) and return its
    manifest, plus `build` (reused or not, seconds, partitions), which is not written since it varies.

    `memory_mb` bounds the working set of one partition; the process adds a fixed ~150 MB (interpreter,
    Arrow runtime, write buffers). An index whose manifest names the same input files (names and sizes),
    hash and `alias_key` is reused as it is."""
    kb, out = Path(kb_dir), Path(out_dir) if out_dir is not None else Path(kb_dir) / "index"
    identity = {"format_version": FORMAT_VERSION, "hash": hash_name, "alias_key_probe": alias_key_probe()}
    identity["inputs"] = _inputs(kb)
    previous = _read_manifest(out)
    if previous is not None and all(previous.get(k) == v for k, v in identity.items()):
        return {**previous, "build": {"reused": True}}
    hash_fn = HASHES[hash_name]
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # written last: a build that stops half-way is never reused
    started = time.perf_counter()
    bits = _partition_bits(kb, memory_mb)
    _allow_open_files(1 << bits)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    try:
        manifest = {**identity, **_Builder(kb, out, tmp, hash_fn, bits).run()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest["files"] = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.name in _FILES}
    manifest["bytes"] = sum(manifest["files"].values())
    partial = out / (MANIFEST + ".part")
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(out / MANIFEST)
    build = {"reused": False, "seconds": round(time.perf_counter() - started, 3), "partitions": 1 << bits}
    return {**manifest, "build": build}


def _read_manifest(index_dir: Path) -> dict | None:
    path = index_dir / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# -- lookups ----------------------------------------------------------------------------------------------
class KBIndex:
    """The lookups of `KnowledgeBase` (the `KBLookups` protocol) over an index directory, memory-mapped."""

    def __init__(self, index_dir: str | os.PathLike):
        self.index_dir = str(index_dir)
        d = Path(index_dir)
        manifest = _read_manifest(d)
        if manifest is None:
            raise FileNotFoundError(f"no {MANIFEST} in {index_dir}: not a (finished) KB index")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"KB index format {manifest.get('format_version')}, this code reads {FORMAT_VERSION}")
        if manifest.get("alias_key_probe") != alias_key_probe():
            raise ValueError(f"the KB index in {index_dir} was built with another `alias_key`: rebuild it")
        self.manifest = manifest
        self._hash = HASHES[manifest["hash"]]
        # One attribute per file: self._node_hash, self._fact_start, … (arrays), self._ids, self._names, …
        for name in _NPY:
            setattr(self, f"_{name}", _load(d / f"{name}.npy"))
        for name in _ARROW:
            setattr(self, f"_{name}", _Strings(d / f"{name}.arrow"))

    @classmethod
    def open(cls, index_dir: str | os.PathLike) -> KBIndex:
        return cls(index_dir)

    def __reduce__(self):
        # Only the directory travels (Beam pickles the DoFns holding an index); unpickling maps the files again.
        return (type(self), (self.index_dir,))

    def __repr__(self) -> str:
        return f"KBIndex({self.index_dir!r}, entities={len(self)}, facts={self.num_facts})"

    # -- finding rows -------------------------------------------------------------------------------------
    @staticmethod
    def _find(hashes: np.ndarray, i: int, h: np.uint64, strings: _Strings, target: str) -> int | None:
        """The row of `target` in a table sorted by (hash, string), from `i` = the `searchsorted` of its
        hash `h`, or None: the strings of the run of rows with that hash decide (a run of one, but for
        collisions)."""
        raw = target.encode("utf-8", "surrogatepass")
        while i < len(hashes) and hashes[i] == h:
            if strings.raw(i) == raw:
                return i
            i += 1
        return None

    def _node(self, entity_id: str) -> int | None:
        h = self._hash([entity_id])[0]
        return self._find(self._node_hash, int(np.searchsorted(self._node_hash, h)), h, self._ids, entity_id)

    def _entity(self, entity_id: str) -> int | None:
        node = self._node(entity_id)
        return node if node is not None and self._node_flags[node] & ENTITY else None

    def _ids_of(self, nodes: Iterable[int]) -> tuple[str, ...]:
        ids = self._ids
        return tuple(ids[n] for n in nodes)

    # -- the KBLookups protocol ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.manifest["counts"]["entities"]

    def __contains__(self, entity_id: str) -> bool:
        return self._entity(entity_id) is not None

    @property
    def num_facts(self) -> int:
        return self.manifest["counts"]["facts"]

    def label(self, entity_id: str) -> str | None:
        node = self._entity(entity_id)
        if node is None:
            return None
        flags = int(self._node_flags[node])
        if flags & HAS_LABEL:
            return self._names[int(self._name_start[node])]
        return "" if flags & EMPTY_LABEL else None

    def names(self, entity_id: str) -> tuple[str, ...]:
        """Label first, then aliases."""
        node = self._node(entity_id)
        if node is None:
            return ()
        start, end = self._name_start[node : node + 2].tolist()
        return tuple(self._names[i] for i in range(start, end))

    def candidates(self, key: str) -> tuple[str, ...]:
        """Entity ids with a name whose `alias_key` is `key`, in id order."""
        return self.candidates_many([key])[0]

    def candidates_many(self, keys: Sequence[str]) -> list[tuple[str, ...]]:
        """`candidates` of each key, in the keys' order, `()` for an unknown key: what
        `KnowledgeBase.candidates_many` answers. One hash and one `searchsorted` for all keys, then the stored
        key compared for the keys whose hash is in the index (most spans a linker asks about are not)."""
        keys = list(keys)
        out: list[tuple[str, ...]] = [()] * len(keys)
        if not keys or not len(self._key_hash):
            return out
        hashes = self._hash(keys)
        lo = np.searchsorted(self._key_hash, hashes)
        found = np.flatnonzero(self._key_hash[np.minimum(lo, len(self._key_hash) - 1)] == hashes)
        for i in found.tolist():
            row = self._find(self._key_hash, int(lo[i]), hashes[i], self._keys, keys[i])
            if row is not None:
                start, end = self._key_start[row : row + 2].tolist()
                out[i] = self._ids_of(self._postings[start:end].tolist())
        return out

    def is_exact_form(self, text: str) -> bool:
        """Whether `text` (whitespace ignored, case kept) is exactly a name of some entity."""
        form = "".join(text.split())
        h = self._hash([form])[0]
        i = int(np.searchsorted(self._form_hash, h))
        # Each stored form keeps one entity that has it: its names confirm the form (a colliding hash does not).
        while i < len(self._form_hash) and self._form_hash[i] == h:
            node = int(self._form_node[i])
            start, end = self._name_start[node : node + 2].tolist()
            if any("".join(self._names[j].split()) == form for j in range(start, end)):
                return True
            i += 1
        return False

    def facts(self, subject: str) -> tuple[tuple[str, str], ...]:
        """(property, object) of every fact of `subject`."""
        node = self._node(subject)
        if node is None:
            return ()
        start, end = self._fact_start[node : node + 2].tolist()
        properties, ids = self._properties, self._ids
        pairs = zip(self._fact_property[start:end].tolist(), self._fact_object[start:end].tolist())
        return tuple((properties[p], ids[o]) for p, o in pairs)

    def facts_between(self, subject: str, obj: str) -> tuple[str, ...]:
        """Properties p with (subject, p, obj) in the KB."""
        node, other = self._node(subject), self._node(obj)
        if node is None or other is None:
            return ()
        start, end = self._fact_start[node : node + 2].tolist()
        hits = np.flatnonzero(self._fact_object[start:end] == other) + start
        return tuple(self._properties[p] for p in self._fact_property[hits].tolist())

    def neighbours(self, entity_id: str) -> frozenset[str]:
        """Ids that share at least one fact with `entity_id`, in either direction."""
        node = self._node(entity_id)
        if node is None:
            return frozenset()
        start, end = self._neighbour_start[node : node + 2].tolist()
        return frozenset(self._ids_of(self._neighbours[start:end].tolist()))

    def has_time(self, key: str) -> bool:
        """Whether the time value `key` (`TIME/PRECISION`) is the object of some fact."""
        if not is_time_key(key):
            return False
        node = self._node(key)
        return node is not None and bool(self._node_flags[node] & OBJECT)

    # -- listings (index order, not id order) -------------------------------------------------------------
    def alias_keys(self) -> Iterator[str]:
        return iter(self._keys)

    def aliases(self) -> Iterator[tuple[str, str]]:
        """(entity id, name) for every name of every entity, entities in index order."""
        starts = self._name_start
        names = iter(self._names)
        for node, entity_id in enumerate(self._ids):
            for _ in range(int(starts[node + 1] - starts[node])):
                yield entity_id, next(names)
