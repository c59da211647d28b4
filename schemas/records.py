"""Example records (memory-write, memory-read) and the pyarrow schemas of every output table.

The column names and types are the contract of docs/design.md "Example records": trainers (ours, TRL,
axolotl) and tests rely on them. A record knows how to render its own `segments`; `to_row()` gives the
dict that is written to Parquet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
from memllm.schemas import api

# --- pyarrow schemas ---------------------------------------------------------------------------------

SEGMENT = pa.struct([("text", pa.string()), ("label", pa.bool_())])

COMMON_FIELDS = [
    ("id", pa.string()),
    ("source", pa.string()),
    ("split", pa.string()),
    ("doc_id", pa.string()),
    ("doc_index", pa.int64()),
    ("title", pa.string()),
]
TEXT_FIELDS = [("segments", pa.list_(SEGMENT)), ("text", pa.string())]

WRITE_TRIPLE = pa.struct(
    [
        ("head", pa.string()),
        ("relation", pa.string()),
        ("tail", pa.string()),
        ("head_entity", pa.int32()),
        ("tail_entity", pa.int32()),
        ("relation_id", pa.string()),
        ("label_index", pa.int32()),
    ]
)

MEMORY_WRITE_SCHEMA = pa.schema(
    COMMON_FIELDS
    + TEXT_FIELDS
    + [
        ("sent_id", pa.int32()),
        ("pretext", pa.string()),
        ("focus", pa.string()),
        ("triples", pa.list_(WRITE_TRIPLE)),
    ]
)

QUERY = pa.struct([("subject", pa.string()), ("relation", pa.string()), ("object", pa.string())])

MEMORY_READ_SCHEMA = pa.schema(
    COMMON_FIELDS
    + TEXT_FIELDS
    + [
        ("read_point", pa.int32()),
        ("target", pa.string()),
        ("pre_text", pa.string()),
        ("preapi_text", pa.string()),
        ("queries", pa.list_(QUERY)),
        ("query_results", pa.list_(pa.list_(pa.string()))),
        ("continuation", pa.string()),
        ("eot", pa.bool_()),
    ]
)

MENTION = pa.struct([("name", pa.string()), ("sent_id", pa.int32()), ("start", pa.int32()), ("end", pa.int32())])
ENTITY = pa.struct([("kb_id", pa.string()), ("type", pa.string()), ("mentions", pa.list_(MENTION))])
RELATION = pa.struct([("h", pa.int32()), ("t", pa.int32()), ("r", pa.string()), ("evidence", pa.list_(pa.int32()))])

DOCUMENTS_SCHEMA = pa.schema(
    COMMON_FIELDS
    + [
        ("sents", pa.list_(pa.list_(pa.string()))),
        ("entities", pa.list_(ENTITY)),
        ("relations", pa.list_(RELATION)),
    ]
)

# Dead letters (written as JSONL, docs/design.md "Output layout"); `split` is the split of the input file.
ERRORS_SCHEMA = pa.schema(
    [("source", pa.string()), ("record", pa.string()), ("step", pa.string()), ("reason", pa.string())]
    + [("split", pa.string())]
)

# `--evidence llm`: one row per judged candidate (a relation without evidence at one sentence).
EVIDENCE_SCHEMA = pa.schema(
    COMMON_FIELDS
    + [
        ("label_index", pa.int32()),
        ("sent_id", pa.int32()),
        ("head", pa.string()),
        ("relation", pa.string()),
        ("tail", pa.string()),
        ("head_entity", pa.int32()),
        ("tail_entity", pa.int32()),
        ("relation_id", pa.string()),
        ("prompt", pa.string()),
        ("generation", pa.string()),
        ("verdict", pa.bool_()),
        ("fallback", pa.bool_()),  # this sentence became evidence because no candidate of the relation got a Yes
    ]
)

# `memllm fill-memory`: one row per triple a write model extracted from a sentence of a corpus.
TRIPLES_SCHEMA = pa.schema(
    COMMON_FIELDS
    + [
        ("sent_id", pa.int32()),
        ("triple_index", pa.int32()),  # position of the triple in the sentence's write call
        ("head", pa.string()),
        ("relation", pa.string()),
        ("tail", pa.string()),
        ("sentence", pa.string()),  # the sentence as the model read it (DocRED-style words joined by spaces)
    ]
)

TABLE_SCHEMAS = {
    "memory_write": MEMORY_WRITE_SCHEMA,
    "memory_read": MEMORY_READ_SCHEMA,
    "documents": DOCUMENTS_SCHEMA,
    "errors": ERRORS_SCHEMA,
    "evidence": EVIDENCE_SCHEMA,
    "triples": TRIPLES_SCHEMA,
}


# --- records -------------------------------------------------------------------------------------------


def segments_text(segments: list[dict]) -> str:
    return "".join([s["text"] for s in segments])


def _segments(pieces: list[tuple[str, bool]]) -> list[dict]:
    # Empty pieces carry nothing; dropping them keeps `segments` minimal without changing `text`.
    return [{"text": t, "label": lab} for t, lab in pieces if t]


@dataclass(slots=True)
class DocRef:
    """Where an example comes from: the common columns shared by every table."""

    source: str
    split: str
    doc_id: str
    doc_index: int
    title: str

    def common(self, example_id: str) -> dict:
        return {
            "id": example_id,
            "source": self.source,
            "split": self.split,
            "doc_id": self.doc_id,
            "doc_index": self.doc_index,
            "title": self.title,
        }


@dataclass  # not slots: `to_row` copies its `__dict__` (the fields, in order), 3x faster than naming each
class WriteTriple:
    head: str
    relation: str
    tail: str
    head_entity: int
    tail_entity: int
    relation_id: str
    label_index: int

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.head, self.relation, self.tail)


@dataclass(slots=True)
class WriteExample:
    """One memory-write example: the focus sentence `sent_id` and the triples written there."""

    doc: DocRef
    sent_id: int
    pretext: str
    focus: str
    triples: list[WriteTriple] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.doc.doc_id + "/w" + str(self.sent_id).zfill(4)  # (a format spec costs twice as much)

    def segments(self) -> list[dict]:
        # Neither piece is ever empty (the context holds the USER markers, the call its brackets).
        return [
            {"text": api.render_write_context(self.pretext, self.focus), "label": False},
            {"text": api.render_write_call([t.names for t in self.triples]), "label": True},
        ]

    def to_row(self) -> dict:
        segments = self.segments()
        row = self.doc.common(self.id)
        row["segments"] = segments
        row["text"] = segments[0]["text"] + segments[1]["text"]  # `segments_text` of exactly two
        row["sent_id"] = self.sent_id
        row["pretext"] = self.pretext
        row["focus"] = self.focus
        row["triples"] = [t.__dict__.copy() for t in self.triples]
        return row


@dataclass(slots=True)
class ReadExample:
    """One memory-read example (Algorithm 1): a read placed right before `target` at `read_point`."""

    doc: DocRef
    ordinal: int  # position among the document's read examples
    read_point: int
    target: str
    pre_text: str
    preapi_text: str
    queries: list[api.Query]
    query_results: list[list[str]]
    continuation: str
    eot: bool

    @property
    def id(self) -> str:
        return self.doc.doc_id + "/r" + str(self.ordinal).zfill(4)

    def segments(self) -> list[dict]:
        tail = self.continuation + ("" if self.eot else api.START)
        return _segments(
            [
                (self.pre_text, False),
                (self.preapi_text, True),
                (api.render_read_call(self.queries), True),
                (api.render_read_results(self.query_results), False),
                (api.END, False),
                (tail, True),
            ]
        )

    def to_row(self) -> dict:
        segments = self.segments()
        row = self.doc.common(self.id)
        row["segments"] = segments
        row["text"] = segments_text(segments)
        row["read_point"] = self.read_point
        row["target"] = self.target
        row["pre_text"] = self.pre_text
        row["preapi_text"] = self.preapi_text
        row["queries"] = [{"subject": q.subject, "relation": q.relation, "object": q.object} for q in self.queries]
        row["query_results"] = self.query_results  # (lists of their own: `finish_reads` copies them)
        row["continuation"] = self.continuation
        row["eot"] = self.eot
        return row
