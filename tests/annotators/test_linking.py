"""Mention detection and linking on hand-made KBs and the shipped sample, with the real spaCy model (skipped
without it); the linker also runs on a KB that only answers lookups, as a KB index does."""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence

from memllm.annotators.kb import KnowledgeBase
from memllm.annotators.linking import Linker, LinkingConfig, title_name
from memllm.annotators.wikidata import WikidataEntity as E
from memllm.annotators.wikidata import parse_dump_line

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


class LookupOnlyKB:
    """A KB that answers only the lookups a KB index answers (`KBLookups`): no `aliases()`/`alias_keys()`.
    Records the batches of keys it is asked for."""

    def __init__(self, kb: KnowledgeBase):
        self._kb = kb
        self.batches: list[list[str]] = []

    def __len__(self) -> int:
        return len(self._kb)

    def __contains__(self, entity_id: str) -> bool:
        return entity_id in self._kb

    def candidates(self, key: str) -> tuple[str, ...]:
        return self._kb.candidates(key)

    def candidates_many(self, keys: Sequence[str]) -> list[tuple[str, ...]]:
        self.batches.append(list(keys))
        return [self._kb.candidates(k) for k in keys]

    def is_exact_form(self, text: str) -> bool:
        return self._kb.is_exact_form(text)

    def label(self, entity_id: str) -> str | None:
        return self._kb.label(entity_id)

    def names(self, entity_id: str) -> tuple[str, ...]:
        return self._kb.names(entity_id)

    def facts(self, subject: str) -> tuple[tuple[str, str], ...]:
        return self._kb.facts(subject)

    def facts_between(self, subject: str, obj: str) -> tuple[str, ...]:
        return self._kb.facts_between(subject, obj)

    def neighbours(self, entity_id: str) -> frozenset[str]:
        return self._kb.neighbours(entity_id)

    def has_time(self, key: str) -> bool:
        return self._kb.has_time(key)


def test_a_multi_word_name_that_ner_misses_is_found_by_its_n_gram(nlp):
    kb = KnowledgeBase.from_entities([E("Q1", "alternative rock", (), ()), E("Q2", "Texas", (), ())])
    linker = Linker(kb, nlp)
    [genre] = [m for m in linker.detect(nlp("The band plays alternative rock in Texas.")) if m.start == 3]
    assert (genre.text, genre.source, genre.ner, genre.candidates) == ("alternative rock", "alias", None, ("Q1",))
    # No name goes over a line break.
    assert "alternative\n\nrock" not in linked(nlp, "The band plays alternative\n\nrock in Texas.", kb=kb)


def test_a_stop_word_name_only_as_an_acronym_written_as_in_the_kb(nlp):
    text = "It is here. IT is there. Tell us."
    novel = KnowledgeBase.from_entities([E("Q31", "It", (), ()), E("Q33", "Us", (), ())])
    assert linked(nlp, text, kb=novel) == {}  # a pronoun, an acronym not written as any name, a pronoun
    assert linked(nlp, text, kb=KnowledgeBase.from_entities([E("Q32", "IT", (), ())])) == {"IT": ("Q32", "exact")}
    # An acronym with the key of a stop word does not make the stop word a name.
    both = KnowledgeBase.from_entities([E("Q31", "It", (), ()), E("Q32", "IT", (), ())])
    assert "It" not in linked(nlp, text, kb=both)


def test_spans_start_and_end_on_words_within_a_sentence(nlp):
    kb = LookupOnlyKB(KB)
    Linker(kb, nlp).detect(nlp("He saw Paris, Texas. Then he saw Rome! It was a Mumford & Sons' song."))
    [keys] = kb.batches  # one batch per document
    assert "paris,texas" in keys and "rome!" in keys and "mumford&sons" in keys  # inner comma, a final "!"
    assert not [k for k in keys if k[:1] in ",.'&" or k[-1:] in ",.'&"]  # never starting or ending on them
    assert not [k for k in keys if "texas.then" in k or "rome!it" in k]  # never over a sentence break


def test_quotes_and_brackets_are_edges_only_when_closed_inside(nlp):
    kb = KnowledgeBase.from_entities(
        [
            E("Q1", '"Weird Al" Yankovic', (), ()),
            E("Q2", "USS Israel (DD-98)", (), ()),
            E("Q3", "Mumford & Sons'", (), ()),  # a stray quote, as in names taken from DocRED mentions
            E("Q4", "Mumford & Sons", (), ()),
        ]
    )
    got = linked(nlp, 'He met "Weird Al" Yankovic. The USS Israel (DD-98) sank. Mumford & Sons\' first album.', kb=kb)
    assert got['"Weird Al" Yankovic'] == ("Q1", "exact") and got["USS Israel (DD-98)"] == ("Q2", "exact")
    assert got["Mumford & Sons"] == ("Q4", "exact") and "Mumford & Sons'" not in got


def test_keys_ignore_whitespace_but_a_name_keeps_its_words_or_tokens(nlp):
    kb = KnowledgeBase.from_entities(
        [
            E("Q10", "Paris", (), ()),
            E("Q80", "Parisis", (), ()),  # the key of "Paris is"
            E("Q90", "I 'm Still Alive", (), ()),  # DocRED's token-joined form
            E("Q91", "Do n't believe", (), ()),
        ]
    )
    got = linked(nlp, "Paris is old. He sang \"I'm Still Alive\" and Don't believe in 1990.", kb=kb)
    assert got["Paris"] == ("Q10", "exact") and "Paris is" not in got  # other words
    assert got["I'm Still Alive"] == ("Q90", "exact")  # the same words
    assert got["Don't believe"] == ("Q91", "exact")  # other words, but the same tokens


NEIGHBOURHOOD = KnowledgeBase.from_entities(
    [
        E("Q1", "Barack Obama", (), (("P19", "Q2"), ("P69", "Q6"))),
        E("Q2", "Honolulu", (), ()),
        E("Q5", "Chicago", (), ()),
        E("Q6", "Punahou School", (), ()),
        E("Q7", "Roosevelt High School", (), ()),  # in the KB, but no fact with the document's entities
    ]
)


def test_a_misspelt_name_is_matched_among_the_neighbours_of_linked_entities(nlp):
    text = "Barack Obama studied at Punahou Schol. Roosevelt Hihg School is in Chicago."
    got = linked(nlp, text, kb=NEIGHBOURHOOD)
    assert got["Punahou Schol"] == ("Q6", "fuzzy")  # a neighbour of Barack Obama
    assert got["Roosevelt Hihg School"] == (None, "unlinked")  # one edit from a KB name, but far away
    # An entity with more neighbours than `fuzzy_hub_neighbours` does not open its neighbourhood.
    assert linked(nlp, text, kb=NEIGHBOURHOOD, fuzzy_hub_neighbours=1)["Punahou Schol"] == (None, "unlinked")


def test_the_linker_needs_only_lookups_and_pickles(nlp):
    from memllm.annotators.wikipedia import WikipediaAnnotator
    from memllm.pipeline.cli import WIKIPEDIA_SAMPLE, WIKIPEDIA_SAMPLE_KB, sample_path
    from memllm.schemas.article import Article

    with open(sample_path(WIKIPEDIA_SAMPLE_KB), "rb") as f:
        kb = KnowledgeBase.from_entities(e for line in f if (e := parse_dump_line(line)) is not None)
    with open(sample_path(WIKIPEDIA_SAMPLE), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    articles = [Article(r["id"], r["url"], r["title"], r["text"], i) for i, r in enumerate(rows)]
    lookups = LookupOnlyKB(kb)
    assert not hasattr(lookups, "aliases") and not hasattr(lookups, "alias_keys")
    for text in (a.text for a in articles if a.text):
        doc = nlp(text)
        mentions = [(m.start, m.end, m.text, m.candidates) for m in Linker(kb, nlp).detect(doc)]
        assert [(m.start, m.end, m.text, m.candidates) for m in Linker(lookups, nlp).detect(doc)] == mentions
    # The whole annotation (mentions, linked ids, relations) is the same; the empty article is an error in both.
    in_memory = [docs for _, docs in WikipediaAnnotator(kb, nlp=nlp).annotate(articles) if isinstance(docs, list)]
    looked_up = [docs for _, docs in WikipediaAnnotator(lookups, nlp=nlp).annotate(articles) if isinstance(docs, list)]
    assert looked_up == in_memory and len(in_memory) == 4
    assert sum(1 for docs in in_memory for d in docs for e in d.entities if e.kb_id) >= 20
    clone = pickle.loads(pickle.dumps(Linker(kb, nlp)))
    doc = nlp(articles[0].text)
    assert [m.candidates for m in clone.detect(doc)] == [m.candidates for m in Linker(kb, nlp).detect(doc)]
