"""The in-memory KB: alias lookup, facts, Arrow round trip, pickling, determinism."""

from __future__ import annotations

import pickle

import pyarrow as pa
from memllm.annotators.kb import (
    KB_ENTITY_SCHEMA,
    KB_FACT_SCHEMA,
    KnowledgeBase,
    alias_key,
    alias_words,
    join_token_keys,
    token_key,
)
from memllm.annotators.wikidata import WikidataEntity

ENTITIES = [
    WikidataEntity("Q10", "Paris", ("City of Light",), (("P17", "Q2"),)),
    WikidataEntity("Q2", "France", ("French Republic",), ()),
    WikidataEntity("Q11", "Paris", (), (("P131", "Q3"),)),
    WikidataEntity("Q3", "Texas", ("TX",), ()),
    WikidataEntity("Q5", 'Wilfried " Willi " Schneider', ("Schneider",), (("P569", "+1963-03-13T00:00:00Z/11"),)),
]


def test_alias_key_ignores_case_spacing_quotes_and_thousands():
    assert alias_key('Wilfried " Willi " Schneider') == alias_key('Wilfried "Willi" Schneider')
    assert alias_key("Alger’s") == alias_key("Alger's")
    assert alias_key("1,500") == alias_key("1500")
    assert alias_key("two - year") == alias_key("two-year")
    assert alias_key("Paris") != alias_key("Parish")


def test_alias_key_from_token_keys():
    """The linker builds the keys of n-grams by joining token keys: the same keys as from the text."""
    for tokens in (["Salt", "Lake", "City"], ["1", ",", "500", "people"], ["1,500", "0"], ["Alger", "\u2019s"]):
        for sep in (" ", "\xa0", ""):
            assert join_token_keys("".join(map(token_key, tokens))) == alias_key(sep.join(tokens)), (tokens, sep)
    assert token_key("Ｐａｒｉｓ") == token_key("PARIS") == "paris"  # NFKC, case-folded


def test_alias_words_tell_spellings_of_one_name_from_key_collisions():
    assert alias_words('Wilfried " Willi " Schneider') == alias_words('Wilfried "Willi" Schneider')
    assert alias_words("U. S.") == alias_words("U.S.") and alias_words("1,500 m") == alias_words("1500 m")
    assert alias_key("Paris is") == alias_key("Parisis") and alias_words("Paris is") != alias_words("Parisis")


def test_lookups():
    kb = KnowledgeBase.from_entities(ENTITIES)
    assert len(kb) == 5 and kb.num_facts == 3
    assert kb.candidates(alias_key("paris")) == ("Q10", "Q11")  # numeric id order, not string order
    assert kb.candidates(alias_key("City of Light")) == ("Q10",)
    keys = [alias_key("tx"), "nothing", alias_key("paris"), alias_key("tx")]
    assert kb.candidates_many(keys) == [("Q3",), (), ("Q10", "Q11"), ("Q3",)]  # in order, repeats answered
    assert kb.facts_between("Q10", "Q2") == ("P17",)
    assert kb.facts_between("Q2", "Q10") == ()
    assert kb.neighbours("Q2") == {"Q10"} and kb.neighbours("Q10") == {"Q2"}
    assert kb.has_time("+1963-03-13T00:00:00Z/11") and not kb.has_time("+1963-00-00T00:00:00Z/9")
    assert kb.is_exact_form('Wilfried "Willi" Schneider') and not kb.is_exact_form("paris")
    assert kb.label("Q5") == 'Wilfried " Willi " Schneider' and kb.names("Q5")[1] == "Schneider"


def test_tables_round_trip_and_are_sorted():
    kb = KnowledgeBase.from_entities(ENTITIES)
    ent, fac = kb.entity_table(), kb.fact_table()
    assert ent.schema == KB_ENTITY_SCHEMA and fac.schema == KB_FACT_SCHEMA
    assert ent.column("id").to_pylist() == ["Q2", "Q3", "Q5", "Q10", "Q11"]
    again = KnowledgeBase.from_tables(ent, fac)
    assert again.entity_table().equals(ent) and again.fact_table().equals(fac)
    assert again.candidates(alias_key("tx")) == ("Q3",)
    # Input order does not change the tables (deterministic output from a parallel read).
    shuffled = KnowledgeBase.from_entities(reversed(ENTITIES))
    assert shuffled.entity_table().equals(ent) and shuffled.fact_table().equals(fac)


def test_empty_tables():
    kb = KnowledgeBase.from_entities([])
    assert kb.entity_table().num_rows == 0 and kb.fact_table().schema == KB_FACT_SCHEMA
    empty = KnowledgeBase.from_tables(
        KB_ENTITY_SCHEMA.empty_table(), pa.table({"subject": [], "property": [], "object": []}, schema=KB_FACT_SCHEMA)
    )
    assert len(empty) == 0


def test_pickle_rebuilds_indexes():
    kb = KnowledgeBase.from_entities(ENTITIES)
    clone = pickle.loads(pickle.dumps(kb))
    assert clone.candidates(alias_key("Paris")) == ("Q10", "Q11")
    assert clone.neighbours("Q3") == {"Q11"}
