"""Lead section / full text selection and sentence chunking."""

from __future__ import annotations

import pytest
from memllm.annotators.articles import article_text, chunk_sentences, is_heading

TEXT = """Ada Lovelace was an English mathematician.
She worked with Charles Babbage.

Early life

She was born in London.

References

Smith, J. (2001). A book.
"""


def test_lead_section_stops_at_the_first_heading():
    assert article_text(TEXT) == "Ada Lovelace was an English mathematician.\nShe worked with Charles Babbage."


def test_full_text_drops_headings_and_back_matter():
    full = article_text(TEXT, "full")
    assert "She was born in London." in full
    assert "Early life" not in full and "References" not in full and "Smith" not in full


def test_a_short_first_line_is_prose():
    assert article_text("Foo Bar\nFoo Bar is a band.") == "Foo Bar\nFoo Bar is a band."
    assert is_heading("Early life") and not is_heading("She was born in London.")


def test_unknown_sections_option():
    with pytest.raises(ValueError, match="sections"):
        article_text(TEXT, "intro")


def test_chunks_keep_sentences_whole():
    assert chunk_sentences([5, 5, 5], 10) == [range(0, 2), range(2, 3)]
    assert chunk_sentences([30, 5], 10) == [range(0, 1), range(1, 2)]  # a long sentence alone
    assert chunk_sentences([3, 3], 100) == [range(0, 2)]
    assert chunk_sentences([], 10) == []
