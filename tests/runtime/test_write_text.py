"""Preprocessing of raw text for memory writes: number ranges, DocRED-style words, sentence splitting."""

from __future__ import annotations

import pytest
from memllm.runtime import text
from memllm.runtime.errors import RuntimeInputError
from memllm.runtime.text import join_words, space_number_ranges, split_sentences


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1990-1995", "1990 \u2013 1995"),
        ("1990 - 1995", "1990 \u2013 1995"),
        ("pages 10\u201312", "pages 10 \u2013 12"),
        ("1914 \u2014  1918", "1914 \u2013 1918"),
        ("1 - 2-3", "1 \u2013 2 \u2013 3"),  # a chain: the middle digit belongs to both ranges
        ("1990 \u2013 1995", "1990 \u2013 1995"),  # already spaced: unchanged
        ("well-known", "well-known"),  # letters: not a range
        ("A4-b", "A4-b"),
        ("-5 and 3-", "-5 and 3-"),  # a sign, a trailing dash
        ("1990\n-\n1995", "1990\n-\n1995"),  # spaces only, not line breaks, inside a range
    ],
)
def test_space_number_ranges(raw, expected):
    assert space_number_ranges(raw) == expected


def test_join_words_drops_blank_words_and_spaces_ranges():
    assert join_words(["Born", " ", "1990-1995", "", "in", "Oslo", "\n", "."]) == "Born 1990 \u2013 1995 in Oslo ."


def test_split_sentences_gives_docred_style_sentences(nlp):
    docs = split_sentences(
        [
            "Lumen Vale is a 2019 novel by Carla Fenwick. Fenwick was born in Dunmore, Ireland.",
            "She lived there 1990-1995 and doesn't \n like it.\n\nThe end.",
            "",
        ],
        nlp=nlp,
    )
    assert docs[0] == ["Lumen Vale is a 2019 novel by Carla Fenwick .", "Fenwick was born in Dunmore , Ireland ."]
    assert docs[1][0] == "She lived there 1990 \u2013 1995 and does n't like it ."
    assert docs[1][-1] == "The end ."
    assert docs[2] == []


def test_split_sentences_default_pipeline_and_missing_spacy(monkeypatch, nlp):
    assert text.splitter_error() is None
    assert split_sentences(["One sentence here. Another one."]) == [["One sentence here .", "Another one ."]]
    monkeypatch.setattr(text, "splitter_error", lambda: "splitting text into sentences needs spaCy: pip install x")
    text._nlp.cache_clear()
    with pytest.raises(RuntimeInputError, match="needs spaCy"):
        split_sentences(["Some text."])
