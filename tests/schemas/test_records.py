"""Example rows: exactly the columns of their pyarrow schema, in order, and unchanged through Parquet's types."""

import pyarrow as pa
from memllm.schemas.api import Query
from memllm.schemas.records import (
    MEMORY_READ_SCHEMA,
    MEMORY_WRITE_SCHEMA,
    WRITE_TRIPLE,
    DocRef,
    ReadExample,
    WriteExample,
    WriteTriple,
)

REF = DocRef("docred", "validation", "doc-7", 7, "Lumen Vale")


def test_write_rows_have_the_schema_columns_and_text():
    triples = [
        WriteTriple("Fenwick", "place of birth", "Dunmore", 1, 2, "P19", 4),
        WriteTriple("Dunmore", "country", "Ireland", 2, 3, "P17", 0),
    ]
    ex = WriteExample(REF, 3, "Lumen Vale is a novel .", "Fenwick was born in Dunmore , Ireland .", triples)
    empty = WriteExample(REF, 0, "", "Lumen Vale is a novel .")
    rows = [ex.to_row(), empty.to_row()]
    assert [list(r) for r in rows] == [MEMORY_WRITE_SCHEMA.names] * 2
    assert [list(t) for t in rows[0]["triples"]] == [[f.name for f in WRITE_TRIPLE]] * 2
    assert rows[0]["triples"][1] == {
        "head": "Dunmore",
        "relation": "country",
        "tail": "Ireland",
        "head_entity": 2,
        "tail_entity": 3,
        "relation_id": "P17",
        "label_index": 0,
    }
    assert rows[0]["id"] == "doc-7/w0003" and rows[0]["doc_index"] == 7
    assert WriteExample(REF, 12345, "", "x").id == "doc-7/w12345"
    assert rows[0]["text"] == (
        "Lumen Vale is a novel .({USER_ST})Fenwick was born in Dunmore , Ireland .({USER_END})"
        "({MEM_WRITE-->Fenwick>>place of birth>>Dunmore;Dunmore>>country>>Ireland})"
    )
    assert rows[0]["text"] == "".join(s["text"] for s in rows[0]["segments"])
    assert rows[1]["segments"][1] == {"text": "({MEM_WRITE-->})", "label": True}
    assert pa.Table.from_pylist(rows, schema=MEMORY_WRITE_SCHEMA).to_pylist() == rows


def test_read_rows_have_the_schema_columns_and_text():
    ex = ReadExample(
        REF,
        ordinal=0,
        read_point=5,
        target="Dunmore",
        pre_text="",
        preapi_text="Fenwick was born in ",
        queries=[Query("Fenwick", "place of birth", None), Query(None, "capital of", "Ireland")],
        query_results=[["Dunmore"], ["Dublin", "Dunmore"]],
        continuation="Dunmore , Ireland .",
        eot=True,
    )
    row = ex.to_row()
    assert list(row) == MEMORY_READ_SCHEMA.names
    assert row["id"] == "doc-7/r0000"
    assert row["text"] == (
        "Fenwick was born in ({MEM_READ(Fenwick>>place of birth>>;>>capital of>>Ireland)-->Dunmore;Dublin})"
        "Dunmore , Ireland ."
    )
    assert [s["label"] for s in row["segments"]] == [True, True, False, False, True]
    assert pa.Table.from_pylist([row], schema=MEMORY_READ_SCHEMA).to_pylist() == [row]
