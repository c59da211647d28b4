"""Reading DocRED-format input (DocRED, Re-DocRED, DocRED distant): streaming scan and validation.

Two pieces, both plain Python:
- `scan_json_records` streams one file, a JSON array (`[{...}, {...}]`) or JSON lines, without ever holding
  more than one record and a read buffer: `json.JSONDecoder.raw_decode` over a sliding text buffer (orjson
  where it provably reads the same value, see `_RecordDecoder`), each record returned with its byte range,
  so a file can be indexed once and its ranges re-read in parallel. A syntax error inside the file becomes
  one `RecordError` for the damaged region and the scan resumes at the next record that looks like a
  document; nothing valid around it is lost.
- `parse_document` turns one decoded record into a `Document`, or raises `InvalidDocument` with a reason
  that names the field and the offending value.

What it does not do: guess missing structure (a document without `sents`/`vertexSet`/`labels` is rejected),
or read the JSON with `json.load` (4.4 GB of RAM for DocRED distant's 500 MB file).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO

import orjson
from memllm.schemas.document import Document, Entity, Mention, Relation

_DECODER = json.JSONDecoder()
_WS = " \t\n\r"
READ_SIZE = 1 << 20
MAX_RECORD_CHARS = 1 << 28  # past this a record that does not parse is damaged, not just long
RECORD_PREVIEW = 1000  # characters of a bad record kept in its dead letter


class InputFormatError(ValueError):
    """A whole input file is unusable (not JSON, not an array or JSON lines): the run stops."""


class InvalidDocument(ValueError):
    """One record is not a valid DocRED document; the message is the reason."""


@dataclass(slots=True)
class RecordError:
    """A damaged region of a file: what it held (truncated) and why it could not be decoded."""

    byte_start: int
    byte_end: int
    text: str
    reason: str


@dataclass(slots=True)
class Record:
    byte_start: int
    byte_end: int
    value: object


# Bytes that are not UTF-8 decode to lone surrogates ("surrogateescape", so byte offsets stay exact); this
# handler also counts them, so that a buffer knows when to look for them (never, for a clean file).
_invalid_utf8_seen = 0


def _escape_invalid_utf8(error: UnicodeDecodeError) -> tuple[str, int]:
    global _invalid_utf8_seen
    _invalid_utf8_seen += 1
    return codecs.lookup_error("surrogateescape")(error)


codecs.register_error("memllm-surrogateescape", _escape_invalid_utf8)
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_BOM = "\ufeff"
_COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip",
    b"\xfd7zXZ": "xz",
}


class _Buffer:
    """Decoded text of a binary stream, read on demand, with byte offsets for any text position."""

    def __init__(self, stream: IO[bytes], byte_start: int = 0, byte_end: int | None = None):
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("memllm-surrogateescape")
        self.invalid_utf8 = False  # some text came from bytes that are not UTF-8 (see `_escape_invalid_utf8`)
        self.text = ""
        self.byte_offset = byte_start  # byte offset of text[0]
        self.remaining = None if byte_end is None else byte_end - byte_start
        self.eof = False
        # byte_at() is asked for increasing positions: encode only the text since the last answer.
        self._cursor_pos = 0
        self._cursor_byte = byte_start

    def fill(self, size: int = READ_SIZE) -> bool:
        """Append more text; False at the end of the stream (or of the byte range)."""
        if self.eof:
            return False
        if self.remaining is not None:
            size = min(size, self.remaining)
        data = self.stream.read(size) if size > 0 else b""
        if self.remaining is not None:
            self.remaining -= len(data)
        seen = _invalid_utf8_seen
        if not data:
            self.eof = True
            self.text += self.decoder.decode(b"", final=True)
        else:
            self.text += self.decoder.decode(data)
        self.invalid_utf8 |= _invalid_utf8_seen != seen  # (another thread's count can only set it needlessly)
        return bool(data)

    def byte_at(self, pos: int) -> int:
        if pos < self._cursor_pos:
            return self.byte_offset + len(self.text[:pos].encode("utf-8", "surrogateescape"))
        self._cursor_byte += len(self.text[self._cursor_pos : pos].encode("utf-8", "surrogateescape"))
        self._cursor_pos = pos
        return self._cursor_byte

    def drop_before(self, pos: int) -> None:
        """Forget text before `pos` (keeps the buffer small); positions shift by `pos`."""
        if pos:
            self.byte_offset = self.byte_at(pos)
            self.text = self.text[pos:]
            self._cursor_pos = 0
            self._cursor_byte = self.byte_offset

    def skip_ws(self, pos: int) -> int:
        """The first non-whitespace position at or after `pos`, reading more as needed."""
        while True:
            n = len(self.text)
            while pos < n and self.text[pos] in _WS:
                pos += 1
            if pos < n or not self.fill():
                return pos


def detect_format(stream: IO[bytes]) -> str:
    """'array' or 'lines', from the first non-whitespace character (`[` or `{`) after an optional BOM."""
    buf = _Buffer(stream)
    pos = _skip_bom(buf)
    first = buf.text[pos : pos + 1]
    if first == "[":
        return "array"
    if first == "{":
        return "lines"
    if not first:
        raise InputFormatError("the file is empty")
    head = buf.text[:8].encode("utf-8", "surrogateescape")
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            raise InputFormatError(f"{kind}-compressed: decompress it first (the reader seeks to byte ranges)")
    raise InputFormatError(f"not a JSON array or JSON lines (starts with {buf.text[pos : pos + 20]!r})")


def _preview(text: str) -> str:
    """What a dead letter keeps of a damaged region: its start, bytes that are not UTF-8 shown as U+FFFD."""
    return text[:RECORD_PREVIEW].encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _skip_bom(buf: _Buffer) -> int:
    """The first non-whitespace position of a file, past a UTF-8 byte order mark if it has one."""
    pos = buf.skip_ws(0)
    return buf.skip_ws(pos + 1) if buf.text[pos : pos + 1] == _BOM else pos


def scan_json_records(
    stream: IO[bytes], fmt: str | None = None, byte_start: int = 0, byte_end: int | None = None
) -> Iterator[Record | RecordError]:
    """Yield the records of a JSON array or JSON-lines stream, with their byte ranges.

    With `byte_start`/`byte_end` (a range produced by an earlier scan, the stream positioned at
    `byte_start`) it reads just the records inside that range: a fragment of an array, separators included.
    """
    if fmt is None:
        fmt = detect_format(stream)
        stream.seek(byte_start)
    buf = _Buffer(stream, byte_start, byte_end)
    decoder = _RecordDecoder(fmt)
    pos = _skip_bom(buf) if byte_start == 0 else buf.skip_ws(0)
    if fmt == "array" and byte_start == 0:
        if buf.text[pos : pos + 1] != "[":
            raise InputFormatError("not a JSON array")
        pos = buf.skip_ws(pos + 1)
        if buf.text[pos : pos + 1] == "]":
            yield from _after_array(buf, pos + 1)
            return
    separator = "," if fmt == "array" else ""
    while True:
        pos = buf.skip_ws(pos)
        if pos >= len(buf.text):
            return
        if pos > READ_SIZE:  # keep the buffer about one read long
            buf.drop_before(pos)
            pos = 0
        value, end, error = decoder.decode_at(buf, pos)
        if error is None:
            after = buf.skip_ws(end)
            nxt = buf.text[after : after + 1]
            if fmt == "array" and nxt not in (",", "]", ""):
                error = f"expected ',' or ']' after a record, found {nxt!r}"
            elif fmt == "lines" and nxt not in ("{", ""):
                error = f"expected a new record after a record, found {nxt!r}"
        if error is None:
            if buf.invalid_utf8 and (bad := _ESCAPED_BYTE.search(buf.text, pos, end)):
                # Well-formed JSON around bytes that are not UTF-8: this record is lost, not its neighbours.
                byte, at = bad.group().encode("utf-8", "surrogateescape")[0], buf.byte_at(bad.start())
                reason = f"not UTF-8 text (byte 0x{byte:02x} at byte {at})"
                yield RecordError(buf.byte_at(pos), buf.byte_at(end), _preview(buf.text[pos:end]), reason)
            else:
                yield Record(buf.byte_at(pos), buf.byte_at(end), value)
            pos = after + (1 if nxt == separator and separator else 0)
            if fmt == "array" and nxt == "]":
                yield from _after_array(buf, after + 1)
                return
            continue
        resume = _resync(buf, pos + 1, fmt)
        yield RecordError(buf.byte_at(pos), buf.byte_at(resume), _preview(buf.text[pos:resume]), error)
        if resume >= len(buf.text):
            return
        pos = resume


def _after_array(buf: _Buffer, pos: int) -> Iterator[RecordError]:
    """Text after the array's closing bracket is reported, never skipped in silence: two arrays written
    one after the other (`cat a.json b.json`) would otherwise lose the second's documents unseen."""
    pos = buf.skip_ws(pos)
    if pos >= len(buf.text):
        return
    start, preview = buf.byte_at(pos), _preview(buf.text[pos:])
    while True:  # to the end of the stream, one read in memory at a time
        buf.drop_before(len(buf.text))
        if not buf.fill():
            break
    end = buf.byte_at(len(buf.text))
    reason = f"{end - start:,} bytes after the end of the JSON array (arrays concatenated?): not read"
    yield RecordError(start, end, preview, reason)


class _RecordDecoder:
    """Decodes one record at a time: orjson (~1.8x faster than `json`) where that is provably the same
    value, `json.JSONDecoder.raw_decode` otherwise.

    orjson needs the record's end, which only a parse finds. The candidate is the first `}` followed by the
    next record's start (in an array: `,` and a DocRED top-level key; in JSON lines: a newline). If the text
    up to it parses as one JSON object, that object ends there, so raw_decode would stop at the same place
    with the same value, except where the two decoders read a value differently: integers of 19 digits
    or more (orjson turns those past 64 bits into floats: such text takes the json path), NaN, Infinity,
    1e400 and lone surrogates (orjson rejects them: the json path decides). A file whose records rarely end
    at a candidate (other key order, pretty-printed lines) stops trying after a few misses."""

    _NEXT = {
        "array": re.compile(r'\}\s*,\s*\{\s*"(?:vertexSet|labels|title|sents)"'),
        "lines": re.compile(r"\}[ \t\r]*\n"),
    }
    # Long digit runs, found as 19 zeros after mapping every digit to 0, on the UTF-8 bytes orjson reads
    # anyway (bytes.translate runs at C speed; str.translate does not for non-ASCII text, and a regex tries
    # every digit: both cost more than the json decode they would save).
    _DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
    _LONG_INT = b"0" * 19
    _GIVE_UP = 16  # misses more than hits by this many: the fast path does not fit the file

    def __init__(self, fmt: str):
        self.next_record = self._NEXT.get(fmt)
        self.balance = 0  # hits minus misses, floored at -_GIVE_UP

    def decode_at(self, buf: _Buffer, pos: int) -> tuple[object, int, str | None]:
        """Decode one JSON value at `pos`: (value, end, None), or (None, pos, reason)."""
        if self.next_record is not None and self.balance > -self._GIVE_UP:
            text = buf.text
            m = self.next_record.search(text, pos)
            if m is not None:
                end = m.start() + 1
                try:
                    record = text[pos:end].encode("utf-8")
                except UnicodeEncodeError:  # bytes that are not UTF-8 (`_Buffer`): the json path, then rejected
                    record = None
                if record is not None and self._LONG_INT not in record.translate(self._DIGITS_TO_ZERO):
                    try:
                        value = orjson.loads(record)
                    except orjson.JSONDecodeError:
                        pass
                    else:
                        self.balance = min(self.balance + 1, self._GIVE_UP)
                        return value, end, None
            self.balance -= 1
        return _decode_at(buf, pos)


def _decode_at(buf: _Buffer, pos: int) -> tuple[object, int, str | None]:
    """Decode one JSON value at `pos`, reading more text while the value may just be cut off."""
    read = READ_SIZE
    while True:
        try:
            value, end = _DECODER.raw_decode(buf.text, pos)
        except json.JSONDecodeError as e:
            if buf.eof or len(buf.text) - pos > MAX_RECORD_CHARS:
                return None, pos, f"invalid JSON: {e.msg} (line {e.lineno} column {e.colno})"
            buf.fill(read)
            read *= 2
            continue
        except RecursionError:  # json decodes nested values recursively; a document is never this deep
            return None, pos, "JSON nested too deeply to decode (deeper than the interpreter's recursion limit)"
        # A number at the very end of the buffer may continue in the next read ("1." of "1.5e10").
        if end >= len(buf.text) and not buf.eof:
            buf.fill(read)
            read *= 2
            continue
        return value, end, None


def _resync(buf: _Buffer, pos: int, fmt: str) -> int:
    """Position of the next record after a damaged one: a `{` that decodes to a DocRED-like object."""
    while True:
        at = buf.text.find("{", pos)
        if at < 0:
            if not buf.fill():
                return len(buf.text)
            continue
        try:
            value, _ = _DECODER.raw_decode(buf.text, at)
        except RecursionError:
            pos = at + 1
            continue
        except json.JSONDecodeError:
            if not buf.eof and len(buf.text) - at < MAX_RECORD_CHARS:
                if buf.fill():
                    continue
            pos = at + 1
            continue
        if isinstance(value, dict) and ("sents" in value or "vertexSet" in value):
            return at
        pos = at + 1


# The reader's chunk: at most this many records or about this many bytes, whichever comes first. A chunk is
# one worker's unit (one `DocumentBatch`): big enough that per-element costs of a shuffle vanish, small
# enough that a worker holds a few MB of documents.
CHUNK_DOCS = 400
CHUNK_BYTES = 4 << 20


@dataclass(slots=True)
class ChunkSpan:
    """Consecutive decodable records of a file: the unit one worker reads and validates."""

    byte_start: int
    byte_end: int
    first_index: int  # index of the first record in the file (damaged regions not counted)
    count: int
    rng_state: tuple | None  # the reference's random stream at the first record (`annotators.write_examples`)


def index_file(
    stream: IO[bytes], fmt: str, chunk_docs: int, chunk_bytes: int, seed: int | None
) -> Iterator[ChunkSpan | RecordError]:
    """The reader's index pass over one file, in order: chunks of at most `chunk_docs` records or about
    `chunk_bytes`, each with the reference's stream replayed up to its first record, and the damaged regions
    between them (a chunk never spans one). The record count is the sum of the chunks' counts.

    It decodes every record, so it costs about one full parse of the file; it cannot be split, as the
    stream at a record depends on every record before it. With `seed` None (a run that does not follow the
    reference's stream, `reference_stream_seed`) nothing is replayed and every chunk's `rng_state` is None."""
    from memllm.annotators.write_examples import advance_reference_rng, reference_rng  # (write_examples: no cycle)

    rng = reference_rng(seed) if seed is not None else None
    index = 0
    start = end = None
    first, state = 0, None
    for rec in scan_json_records(stream, fmt):
        if not isinstance(rec, Record):
            if start is not None:
                yield ChunkSpan(start, end, first, index - first, state)
                start = None
            yield rec
            continue
        if start is None:
            start, first, state = rec.byte_start, index, rng.getstate() if rng is not None else None
        end = rec.byte_end
        if rng is not None:
            advance_reference_rng(rec.value, rng)
        index += 1
        if index - first >= chunk_docs or end - start >= chunk_bytes:
            yield ChunkSpan(start, end, first, index - first, state)
            start = None
    if start is not None:
        yield ChunkSpan(start, end, first, index - first, state)


# --- validation ---------------------------------------------------------------------------------------


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidDocument(f"{what} must be an integer, got {value!r}")
    return value


def parse_document(
    record: object,
    *,
    doc_id: str,
    doc_index: int,
    source: str,
    split: str,
    relation_labels: Mapping[str, str],
) -> Document:
    """Validate one DocRED record and convert it; raise `InvalidDocument` with the reason otherwise."""
    if not isinstance(record, dict):
        raise InvalidDocument(f"a document must be a JSON object, got {type(record).__name__}")
    missing = [k for k in ("sents", "vertexSet", "labels") if k not in record]
    if missing:
        raise InvalidDocument(f"missing field(s) {', '.join(missing)}")
    sents = record["sents"]
    if not isinstance(sents, list) or not sents:
        raise InvalidDocument("sents must be a non-empty list of sentences")
    for i, sent in enumerate(sents):
        try:
            " ".join(sent)  # raises TypeError for a non-string token: C speed, ~5x the generator's
        except TypeError:
            sent = None
        if not isinstance(sent, list):
            raise InvalidDocument(f"sents[{i}] must be a list of token strings")
    sent_lens = [len(s) for s in sents]
    title = record.get("title", "")
    if not isinstance(title, str):
        raise InvalidDocument(f"title must be a string, got {title!r}")

    vertex_set = record["vertexSet"]
    if not isinstance(vertex_set, list):
        raise InvalidDocument("vertexSet must be a list of entities")
    entities = []
    for e, vertex in enumerate(vertex_set):
        if not isinstance(vertex, list) or not vertex:
            raise InvalidDocument(f"vertexSet[{e}] has no mention")
        mentions = []
        for m, mention in enumerate(vertex):
            # Fast path for a well-formed mention (exact JSON types); anything else gets the checks below,
            # which name the field and value.
            if type(mention) is dict:
                name, sent_id, pos = mention.get("name"), mention.get("sent_id"), mention.get("pos")
                if (
                    type(name) is str
                    and name
                    and type(sent_id) is int
                    and type(pos) is list
                    and len(pos) == 2
                    and type(pos[0]) is int
                    and type(pos[1]) is int
                    and 0 <= sent_id < len(sents)
                    and 0 <= pos[0] < pos[1] <= sent_lens[sent_id]
                ):
                    mentions.append(Mention(name, sent_id, pos[0], pos[1]))
                    continue
            where = f"vertexSet[{e}][{m}]"
            if not isinstance(mention, dict):
                raise InvalidDocument(f"{where} must be an object")
            name = mention.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidDocument(f"{where}.name must be a non-empty string, got {name!r}")
            sent_id = _int(mention.get("sent_id"), f"{where}.sent_id")
            if not 0 <= sent_id < len(sents):
                raise InvalidDocument(
                    f"{where}.sent_id = {sent_id} is out of range (document has {len(sents)} sentences)"
                )
            pos = mention.get("pos")
            if not isinstance(pos, list) or len(pos) != 2:
                raise InvalidDocument(f"{where}.pos must be [start, end], got {pos!r}")
            start, end = _int(pos[0], f"{where}.pos[0]"), _int(pos[1], f"{where}.pos[1]")
            if not 0 <= start < end <= len(sents[sent_id]):
                raise InvalidDocument(
                    f"{where}.pos = {pos} is out of range (sentence {sent_id} has {len(sents[sent_id])} tokens)"
                )
            mentions.append(Mention(name, sent_id, start, end))
        etype = vertex[0].get("type")
        entities.append(Entity(mentions, etype if isinstance(etype, str) else None, vertex[0].get("kb_id")))

    labels = record["labels"]
    if not isinstance(labels, list):
        raise InvalidDocument("labels must be a list of relations")
    relations = []
    n_entities, n_sents = len(entities), len(sents)
    for i, label in enumerate(labels):
        if type(label) is dict:  # fast path, as for mentions; evidence ids are checked below, all at once
            h, t, r, evidence = label.get("h"), label.get("t"), label.get("r"), label.get("evidence", [])
            if (
                type(h) is int
                and type(t) is int
                and 0 <= h < n_entities
                and 0 <= t < n_entities
                and type(r) is str
                and r in relation_labels
                and type(evidence) is list
            ):
                relations.append(Relation(h, t, r, evidence))
                continue
        relations.append(_relation(i, label, n_entities, n_sents, relation_labels))
    evidence_ids = [ev for rel in relations for ev in rel.evidence]
    if evidence_ids and (
        set(map(type, evidence_ids)) != {int} or min(evidence_ids) < 0 or max(evidence_ids) >= n_sents
    ):
        for i, label in enumerate(labels):  # name the first relation with a bad evidence id
            _relation(i, label, n_entities, n_sents, relation_labels)

    return Document(doc_id, doc_index, source, split, title, sents, entities, relations)


def _relation(i: int, label: object, n_entities: int, n_sents: int, relation_labels: Mapping[str, str]) -> Relation:
    """`labels[i]` checked field by field; raises `InvalidDocument` naming the first bad one."""
    where = f"labels[{i}]"
    if not isinstance(label, dict):
        raise InvalidDocument(f"{where} must be an object")
    h = _int(label.get("h"), f"{where}.h")
    t = _int(label.get("t"), f"{where}.t")
    for side, idx in (("h", h), ("t", t)):
        if not 0 <= idx < n_entities:
            raise InvalidDocument(f"{where}.{side} = {idx} is out of range (document has {n_entities} entities)")
    r = label.get("r")
    if not isinstance(r, str) or r not in relation_labels:
        raise InvalidDocument(f"{where}.r = {r!r} is not a known Wikidata property")
    evidence = label.get("evidence", [])
    if not isinstance(evidence, list):
        raise InvalidDocument(f"{where}.evidence must be a list of sentence ids")
    for ev in evidence:
        ev = _int(ev, f"{where}.evidence")
        if not 0 <= ev < n_sents:
            raise InvalidDocument(f"{where}.evidence contains {ev}, out of range (document has {n_sents} sentences)")
    return Relation(h, t, r, evidence)  # the record's own list, as on the fast path
