"""Mention detection and linking on hand-made KBs with the real spaCy model (skipped without it)."""

from __future__ import annotations

from memllm.annotators.kb import KnowledgeBase
from memllm.annotators.linking import Linker, LinkingConfig, title_name
from memllm.annotators.wikidata import WikidataEntity as E

KB = KnowledgeBase.from_entities(
    [
        E("Q1", "Barack Obama", ("Barack Hussein Obama",), (("P19", "Q2"), ("P26", "Q4"))),
        E("Q2", "Honolulu", (), (("P131", "Q3"),)),
        E("Q3", "Hawaii", (), ()),
        E("Q4", "Michelle Obama", (), ()),
        E("Q10", "Paris", (), (("P17", "Q12"),)),
        E("Q11", "Paris", (), (("P131", "Q13"),)),
        E("Q12", "France", (), ()),
        E("Q13", "Texas", (), ()),
        E("Q20", "Obama", (), (("P17", "Q21"),)),  # the Japanese city: a KB name equal to the surname
        E("Q21", "Japan", (), ()),
        E("Q30", "United States", ("US", "U.S."), ()),
        E("Q31", "It", (), ()),  # the novel: a name that is a stop word
        E("Q40", "2002 Winter Olympics", (), (("P276", "Q41"),)),
        E("Q41", "Salt Lake City", (), ()),
        E("Q42", "manganese", (), ()),
    ]
)


def linked(nlp, text: str, title: str = "", kb: KnowledgeBase = KB, **config) -> dict[str, tuple[str | None, str]]:
    linker = Linker(kb, nlp, LinkingConfig(**config))
    mentions = linker.detect(nlp(text))
    linker.link(mentions, linker.title_candidates(title) if title else ())
    return {m.text: (m.kb_id, m.how) for m in mentions}


def test_alias_with_a_typo_links_by_fuzzy_match(nlp):
    got = linked(nlp, "Honolulu, the capital of Hawaii, is the birthplace of Barak Obama.")
    assert got["Barak Obama"] == ("Q1", "fuzzy")
    assert linked(nlp, "Honolulu is the birthplace of Barak Obama.", fuzzy=False).get("Barak Obama", (None,))[0] is None


def test_fuzzy_match_never_changes_a_number(nlp):
    # "2006 Winter Olympics" is one character from a KB name, but a different event.
    got = linked(nlp, "He won a medal at the 2006 Winter Olympics in Turin.")
    assert got.get("2006 Winter Olympics", (None,))[0] is None


def test_title_entity_referred_to_by_surname(nlp):
    text = "Barack Obama was born in Honolulu. Obama married Michelle Obama."
    got = linked(nlp, text, title="Barack Obama")
    # "Obama" is also the name of a city in the KB; the article's subject wins.
    assert got["Obama"] == ("Q1", "context")
    kb = KnowledgeBase.from_entities([E("Q1", "Barack Obama", (), (("P19", "Q2"),)), E("Q2", "Honolulu", (), ())])
    assert linked(nlp, text, title="Barack Obama", kb=kb)["Obama"] == ("Q1", "partial")
    assert linked(nlp, text, title="Barack Obama", kb=kb, partial_names=False)["Obama"][0] is None


def test_same_name_entities_disambiguated_by_context(nlp):
    assert linked(nlp, "Paris is a city in Texas.")["Paris"] == ("Q11", "context")
    assert linked(nlp, "Paris is the capital of France.")["Paris"] == ("Q10", "context")


def test_title_disambiguates_without_other_context(nlp):
    kb = KnowledgeBase.from_entities(
        [E("Q10", "Paris", ("Paris, Texas",), ()), E("Q11", "Paris", (), ()), E("Q12", "Paris", ("Paris, France",), ())]
    )
    assert linked(nlp, "Paris has a museum.", title="Paris, Texas", kb=kb)["Paris"][0] == "Q10"


def test_stop_words_and_lower_case_matches(nlp):
    got = linked(nlp, "It was sold in the US and the U.S. to us. Steel contains manganese.")
    assert got["US"][0] == "Q30" and got["U.S."][0] == "Q30"
    assert "It" not in got and "us" not in got  # stop words: only upper-case acronyms are names
    assert got["manganese"][0] == "Q42"  # a lower-case KB name matches where the text has its exact case
    # the match is case-insensitive for text that is not all lower case ...
    assert linked(nlp, "The steel has MANGANESE traces.") == {"MANGANESE": ("Q42", "exact")}
    # ... but lower-case text matches only a KB name of that exact case
    assert linked(nlp, "He moved to salt lake city and then to Salt Lake City.") == {"Salt Lake City": ("Q41", "exact")}


def test_dates_win_over_names_and_years_inside_names_are_not_dates(nlp):
    got = linked(nlp, "The 2002 Winter Olympics were held in Salt Lake City from 8 February 2002.")
    assert got["2002 Winter Olympics"][0] == "Q40"
    assert got["8 February 2002"] == ("+2002-02-08T00:00:00Z/11", "date")
    assert "2002" not in got


def test_title_name():
    assert title_name("Willi Schneider (skeleton racer)") == "Willi Schneider"
    assert title_name("Paris") == "Paris"


def test_a_first_name_alone_is_not_the_title_person(nlp):
    kb = KnowledgeBase.from_entities([E("Q1", "Barack Obama", (), ()), E("Q2", "Honolulu", (), ())])
    text = "Barack Obama was born in Honolulu. Barack Obama Sr. was his father, and Barack visited Kenya."
    got = linked(nlp, text, title="Barack Obama", kb=kb)
    assert got["Barack"] == (None, "unlinked")  # spaCy: PERSON; "Obama" would have been the title person
