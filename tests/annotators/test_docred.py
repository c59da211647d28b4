"""Streaming DocRED reader and validation: hand-made files and records with known defects."""

import io
import json

import pytest
from memllm.annotators import docred
from memllm.annotators.docred import (
    InputFormatError,
    InvalidDocument,
    Record,
    RecordError,
    parse_document,
    scan_json_records,
)

GOOD = {
    "title": "T",
    "sents": [["Ada", "met", "Bo", "."], ["She", "left", "."]],
    "vertexSet": [
        [{"name": "Ada", "sent_id": 0, "pos": [0, 1], "type": "PER"}],
        [{"name": "Bo", "sent_id": 0, "pos": [2, 3], "type": "PER"}],
    ],
    "labels": [{"h": 0, "t": 1, "r": "P26", "evidence": [0]}],
}


def scan(text: str, **kw):
    return list(scan_json_records(io.BytesIO(text.encode("utf-8")), **kw))


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 64, 1 << 20])
def test_array_scan_matches_json_load_at_any_buffer_size(monkeypatch, read_size):
    monkeypatch.setattr(docred, "READ_SIZE", read_size)
    values = [GOOD, {"x": 1.5e10, "s": 'ünï {["]}'}, 12345678, [], {"n": -0.000125}]
    text = " [\n" + " ,\n ".join(json.dumps(v, ensure_ascii=False) for v in values) + "\n] "
    records = scan(text)
    assert [r.value for r in records] == values
    raw = text.encode("utf-8")
    for r in records:  # byte ranges slice out exactly each record
        assert json.loads(raw[r.byte_start : r.byte_end]) == r.value


def test_byte_range_rescan_reads_the_same_records():
    text = json.dumps([GOOD, {"a": "é" * 10}, GOOD, {"b": 2}], ensure_ascii=False)
    raw = text.encode("utf-8")
    records = scan(text)
    start, end = records[1].byte_start, records[2].byte_end
    f = io.BytesIO(raw)
    f.seek(start)
    again = list(scan_json_records(f, "array", start, end))
    assert [r.value for r in again] == [records[1].value, records[2].value]


def test_json_lines():
    text = json.dumps(GOOD) + "\n\n" + json.dumps({"b": 1}) + "\n"
    assert [r.value for r in scan(text)] == [GOOD, {"b": 1}]


def test_damaged_record_is_one_error_and_the_rest_is_kept():
    broken = json.dumps(GOOD)[:-30] + "}"  # a truncated document
    text = "[" + ",".join([json.dumps(GOOD), broken, json.dumps(GOOD), json.dumps(GOOD)]) + "]"
    out = scan(text)
    assert [type(r) for r in out] == [Record, RecordError, Record, Record]
    assert "invalid JSON" in out[1].reason


# Values orjson reads differently from json (or rejects), and text that looks like a record boundary.
TRICKY = [
    {"title": "big", "sents": [], "kb_id": 2**70, "n": -(2**64)},  # orjson: floats
    {"title": "nan", "x": float("nan"), "y": float("inf")},  # orjson: rejected
    {"title": "surrogate \ud800", "sents": [["a"]]},  # orjson: rejected
    {"title": 'ends like a record }, {"title": "x"} here', "sents": []},
    {"sents": [["1e400"]], "z": 1e400},
    {"title": "Zürich – 東京 😀", "sents": [["é", "1234567890123456789"]]},  # non-ASCII; digits in a string
]


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=False)  # NaN-safe equality, keeps key order and int/float apart


@pytest.mark.parametrize("fmt", ["array", "lines"])
def test_fast_decoding_reads_what_json_reads(monkeypatch, fmt):
    calls = []
    loads = docred.orjson.loads
    monkeypatch.setattr(docred.orjson, "loads", lambda text: calls.append(1) or loads(text))
    values = [GOOD, *TRICKY, GOOD, GOOD]
    texts = [json.dumps(v, ensure_ascii=False) if "surrogate" not in str(v.get("title")) else json.dumps(v)
             for v in values]  # fmt: skip
    texts = [t.replace('"z": Infinity', '"z": 1e400') for t in texts]  # a literal orjson rejects
    text = "[" + ",\n".join(texts) + "]" if fmt == "array" else "\n".join(texts) + "\n"
    records = scan(text)
    assert [_canonical(r.value) for r in records] == [_canonical(json.loads(t)) for t in texts]
    raw = text.encode("utf-8")
    assert [raw[r.byte_start : r.byte_end].decode() for r in records] == texts
    assert isinstance(records[1].value["kb_id"], int) and records[1].value["kb_id"] == 2**70
    assert calls, "well-formed records take the orjson path"


def test_fast_decoding_gives_way_to_json_for_files_it_does_not_fit():
    # Records whose first key is not a DocRED field never end at a candidate: every record is still read.
    values = [{"id": i, **GOOD} for i in range(100)]
    assert [r.value for r in scan(json.dumps(values))] == values


def test_a_record_nested_too_deeply_is_one_error_and_the_rest_is_kept():
    deep = '{"sents": ' + "[" * 100_000 + "]" * 100_000 + "}"
    for fmt_text in ("[" + ", ".join([json.dumps(GOOD), deep, json.dumps(GOOD)]) + "]",
                     "\n".join([json.dumps(GOOD), deep, json.dumps(GOOD)])):  # fmt: skip
        out = scan(fmt_text)
        assert [type(r) for r in out] == [Record, RecordError, Record]
        assert "nested too deeply" in out[1].reason and out[2].value == GOOD


def scan_bytes(raw: bytes):
    return list(scan_json_records(io.BytesIO(raw)))


@pytest.mark.parametrize("fmt", ["array", "lines"])
def test_a_record_with_bytes_that_are_not_utf8_is_one_error_and_the_rest_is_kept(fmt):
    good = json.dumps(GOOD, ensure_ascii=False).encode()
    bad = json.dumps({**GOOD, "title": "Zürich"}, ensure_ascii=False).encode().replace("ü".encode(), b"\xfc")
    raw = b"[" + b",\n".join([good, bad, good]) + b"]" if fmt == "array" else b"\n".join([good, bad, good])
    out = scan_bytes(raw)
    assert [type(r) for r in out] == [Record, RecordError, Record]
    assert out[1].reason.startswith("not UTF-8 text (byte 0xfc at byte ")
    assert raw[out[1].byte_start : out[1].byte_end] == bad and "Z\ufffdrich" in out[1].text
    assert [raw[r.byte_start : r.byte_end] for r in (out[0], out[2])] == [good, good]


@pytest.mark.parametrize("fmt", ["array", "lines"])
def test_a_utf8_byte_order_mark_is_skipped(fmt):
    good = json.dumps(GOOD).encode()
    raw = b"\xef\xbb\xbf" + (b"[" + good + b"]" if fmt == "array" else good + b"\n")
    assert docred.detect_format(io.BytesIO(raw)) == fmt
    (record,) = scan_bytes(raw)
    assert record.value == GOOD and raw[record.byte_start : record.byte_end] == good


def test_a_compressed_file_is_named_as_such():
    import gzip

    with pytest.raises(InputFormatError, match="gzip-compressed: decompress it first"):
        docred.detect_format(io.BytesIO(gzip.compress(json.dumps([GOOD]).encode())))


@pytest.mark.parametrize("tail", [" xyz", "\n" + json.dumps([GOOD, GOOD]) + "\n"])
@pytest.mark.parametrize("records", [[], [GOOD], [GOOD, GOOD]])
def test_text_after_the_array_is_reported_not_skipped(monkeypatch, records, tail):
    monkeypatch.setattr(docred, "READ_SIZE", 16)  # the tail spans several reads
    text = json.dumps(records) + tail
    out = scan(text)
    assert [r.value for r in out[:-1]] == records
    error = out[-1]
    assert isinstance(error, RecordError) and "after the end of the JSON array" in error.reason
    raw = text.encode()
    assert raw[error.byte_start : error.byte_end] == tail.strip().encode() + (b"\n" if tail.endswith("\n") else b"")


@pytest.mark.parametrize("text,message", [("", "empty"), ("  hello", "not a JSON array"), ("3", "not a JSON")])
def test_files_that_are_not_docred_json(text, message):
    with pytest.raises(InputFormatError, match=message):
        scan(text)


def parse(record):
    from memllm.annotators.relation_labels import property_labels

    return parse_document(
        record, doc_id="d", doc_index=0, source="docred", split="train", relation_labels=property_labels()
    )


def test_valid_document_keeps_types_positions_and_evidence():
    doc = parse(GOOD)
    assert [e.type for e in doc.entities] == ["PER", "PER"]
    assert (doc.entities[1].mentions[0].sent_id, doc.entities[1].mentions[0].start) == (0, 2)
    assert doc.relations[0].evidence == [0]


def with_(path, value):
    doc = json.loads(json.dumps(GOOD))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    "record,reason",
    [
        ([1, 2], "must be a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "labels"}, r"missing field\(s\) labels"),
        (with_(["sents"], []), "non-empty list"),
        (with_(["vertexSet", 1], []), r"vertexSet\[1\] has no mention"),
        (with_(["vertexSet", 0, 0, "sent_id"], 5), r"sent_id = 5 is out of range \(document has 2 sentences\)"),
        (with_(["vertexSet", 0, 0, "pos"], [3, 9]), r"pos = \[3, 9\] is out of range"),
        (with_(["labels", 0, "h"], 7), r"labels\[0\].h = 7 is out of range \(document has 2 entities\)"),
        (with_(["labels", 0, "evidence"], [4]), r"evidence contains 4, out of range"),
        (with_(["labels", 0, "evidence"], [-1]), r"evidence contains -1, out of range"),
        (with_(["labels", 0, "evidence"], [True]), r"labels\[0\].evidence must be an integer, got True"),
        (with_(["labels", 0, "evidence"], [0.0]), r"labels\[0\].evidence must be an integer, got 0.0"),
        (with_(["labels", 0, "evidence"], 0), r"labels\[0\].evidence must be a list of sentence ids"),
        (
            with_(["labels"], GOOD["labels"] * 2 + [{"h": 1, "t": 0, "r": "P26", "evidence": [1, 2]}]),
            r"labels\[2\].evidence contains 2, out of range",
        ),
        (with_(["labels", 0, "r"], "P99999999"), "'P99999999' is not a known Wikidata property"),
    ],
)
def test_invalid_documents_are_rejected_with_the_reason(record, reason):
    with pytest.raises(InvalidDocument, match=reason):
        parse(record)
