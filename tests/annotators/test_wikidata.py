"""Wikidata dump lines → entities: labels, aliases, item and time facts, skipped claims, broken lines."""

from __future__ import annotations

import json

import pytest
from memllm.annotators.relation_labels import property_labels
from memllm.annotators.wikidata import DOCRED_PROPERTIES, DumpLineError, parse_dump_line, time_key


def item_claim(prop: str, qid: str, rank: str = "normal") -> dict:
    value = {"entity-type": "item", "id": qid, "numeric-id": int(qid[1:])}
    return {
        "mainsnak": {"snaktype": "value", "property": prop, "datavalue": {"value": value, "type": "wikibase-entityid"}},
        "type": "statement",
        "rank": rank,
    }


def time_claim(prop: str, time: str, precision: int) -> dict:
    value = {"time": time, "timezone": 0, "before": 0, "after": 0, "precision": precision}
    return {"mainsnak": {"snaktype": "value", "property": prop, "datavalue": {"value": value, "type": "time"}}}


def line(entity: dict, comma: bool = True) -> str:
    return json.dumps(entity) + ("," if comma else "") + "\n"


ADAMS = {
    "type": "item",
    "id": "Q42",
    "labels": {"en": {"language": "en", "value": "Douglas Adams"}, "de": {"language": "de", "value": "D. A."}},
    "aliases": {"en": [{"language": "en", "value": "Douglas Noël Adams"}, {"language": "en", "value": "DNA"}]},
    "claims": {
        "P19": [item_claim("P19", "Q350")],
        "P569": [time_claim("P569", "+1952-03-11T00:00:00Z", 11)],
        "P1082": [item_claim("P1082", "Q1")],  # not a DocRED property
    },
}


def test_item_line_with_trailing_comma():
    e = parse_dump_line(line(ADAMS))
    assert e.id == "Q42" and e.label == "Douglas Adams"
    assert e.aliases == ("Douglas Noël Adams", "DNA")
    assert set(e.facts) == {("P19", "Q350"), ("P569", "+1952-03-11T00:00:00Z/11")}
    assert e.skipped_claims == 0


def test_bytes_and_all_properties():
    e = parse_dump_line(line(ADAMS).encode("utf-8"), properties=None)
    assert ("P1082", "Q1") in e.facts


@pytest.mark.parametrize("text", ["[", "]", "", "   \n", "[\n", "],"])
def test_array_brackets_and_blank_lines(text):
    assert parse_dump_line(text) is None


def test_properties_and_lexemes_are_not_items():
    assert parse_dump_line(line({"type": "property", "id": "P19", "datatype": "wikibase-item"})) is None
    assert parse_dump_line(line({"type": "lexeme", "id": "L7"})) is None


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"type": "item", "id": "Q1", "labels": {', "broken JSON"),
        ("[1, 2],", "not a JSON object"),
        ('"Q1",', "not a JSON object"),
        ('{"type": "item", "labels": {}},', "without an id"),
        ('{"type": "item", "id": "Q1", "claims": []},', "claims"),
        (b'{"id": "Q1", "labels": "\xff"}', "not UTF-8"),
    ],
)
def test_broken_lines_raise_with_reason(text, reason):
    with pytest.raises(DumpLineError, match=reason):
        parse_dump_line(text)


def test_claims_of_unknown_shape_are_counted_not_kept():
    entity = {
        "type": "item",
        "id": "Q5",
        "labels": {},
        "claims": {
            "P19": [
                {"mainsnak": {"snaktype": "novalue", "property": "P19"}},
                {"mainsnak": {"snaktype": "somevalue", "property": "P19"}},
                item_claim("P19", "Q9"),
                "not a statement",
                item_claim("P19", "Q10", rank="deprecated"),  # wrong by Wikidata's own rank: ignored, not counted
            ],
            "P17": [{"mainsnak": {"snaktype": "value", "datavalue": {"type": "globecoordinate", "value": {}}}}],
            "P20": {"unexpected": "object"},
        },
    }
    e = parse_dump_line(line(entity))
    assert e.facts == (("P19", "Q9"),)
    assert e.skipped_claims == 5
    assert e.label is None and e.aliases == ()


def test_time_keys_zero_what_the_precision_leaves_open():
    # Year-precision dates appear both as -00-00 and -01-01 in dumps; both must meet the text's "1963".
    assert time_key("+1963-01-01T00:00:00Z", 9) == "+1963-00-00T00:00:00Z/9"
    assert time_key("+1963-00-00T00:00:00Z", 9) == "+1963-00-00T00:00:00Z/9"
    assert time_key("+1963-03-01T00:00:00Z", 10) == "+1963-03-00T00:00:00Z/10"
    assert time_key("-0044-03-15T00:00:00Z", 11) == "-0044-03-15T00:00:00Z/11"
    assert time_key("March 1963", 10) is None


def test_docred_properties():
    assert len(DOCRED_PROPERTIES) == 96
    assert DOCRED_PROPERTIES <= set(property_labels())
    assert {"P19", "P569", "P190", "P1198", "P3373"} <= DOCRED_PROPERTIES


def test_docred_properties_cover_redocred_dev(dev):
    with open(dev.documents, encoding="utf-8") as f:
        used = {lab["r"] for doc in json.load(f) for lab in doc["labels"]}
    assert used <= DOCRED_PROPERTIES and len(used) == dev.pick(95, 85)
