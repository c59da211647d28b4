"""API strings: exact bytes from the worked examples of docs/method.md §3, and render/parse round trips."""

import pytest
from memllm.schemas import api
from memllm.schemas.api import APIParseError, Query


def test_write_call_matches_method_doc_example():
    triples = [
        ("Fenwick", "place of birth", "Dunmore"),
        ("Carla Fenwick", "country of citizenship", "Ireland"),
        ("Dunmore", "country", "Ireland"),
    ]
    text = api.render_write_context(
        "Lumen Vale is a 2019 novel by Carla Fenwick .", "Fenwick was born in Dunmore , Ireland ."
    ) + api.render_write_call(triples)
    assert text == (
        "Lumen Vale is a 2019 novel by Carla Fenwick .({USER_ST})Fenwick was born in Dunmore , Ireland .({USER_END})"
        "({MEM_WRITE-->Fenwick>>place of birth>>Dunmore;Carla Fenwick>>country of citizenship>>Ireland;"
        "Dunmore>>country>>Ireland})"
    )
    assert api.parse_write_call(text, strict=True) == triples


def test_empty_write_call():
    assert api.render_write_call([]) == "({MEM_WRITE-->})"
    assert api.parse_write_call("({MEM_WRITE-->})") == []


def test_read_call_matches_method_doc_example():
    queries = [
        Query(None, "contains administrative territorial entities", "Dunmore"),
        Query("Carla Fenwick", "country of citizenship", None),
    ]
    text = api.render_read_call(queries) + api.render_read_results([["Ireland"], ["Ireland"]]) + api.END
    assert text == (
        "({MEM_READ(>>contains administrative territorial entities>>Dunmore;"
        "Carla Fenwick>>country of citizenship>>)-->Ireland})"
    )
    assert api.parse_read_call("prefix " + text + "Ireland .") == (queries, ["Ireland"])


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Lumen Vale>>author>>", Query("Lumen Vale", "author", None)),
        (">>author>>Carla Fenwick", Query(None, "author", "Carla Fenwick")),
    ],
)
def test_query_round_trip(text, expected):
    assert api.parse_query(text) == expected
    assert expected.render() == text


@pytest.mark.parametrize("bad", ["Lumen Vale>>author", ">>author>>", "a>>author>>b", "a>>>>", ""])
def test_malformed_queries_are_rejected(bad):
    with pytest.raises(APIParseError):
        api.parse_query(bad)


def test_union_keeps_first_occurrence_order():
    assert api.union_results([["b", "c"], ["a", "b"]]) == ["b", "c", "a"]


def test_lenient_write_parse_skips_malformed_items():
    assert api.parse_write_call("({MEM_WRITE-->a>>r>>b;broken;c>>r>>})") == [("a", "r", "b")]
    with pytest.raises(APIParseError):
        api.parse_write_call("({MEM_WRITE-->a>>r>>b;broken})", strict=True)


def test_special_tokens():
    assert api.SPECIAL_TOKENS == ("({", "})", "-->")
