"""Dates in text → time keys at their precision."""

from __future__ import annotations

import pytest
from memllm.annotators.dates import date_key, find_dates, parse_date

DAY = "+1963-03-13T00:00:00Z/11"


@pytest.mark.parametrize(
    "text", ["13 March 1963", "March 13, 1963", "1963-03-13", "13th of March 1963", "Mar. 13, 1963"]
)
def test_one_day_in_several_formats(text):
    assert parse_date(text) == DAY


def test_precision_follows_the_text():
    assert parse_date("March 1963") == "+1963-03-00T00:00:00Z/10"
    assert parse_date("1963") == "+1963-00-00T00:00:00Z/9"
    assert date_key(1963, 3, 13) == DAY


def test_dates_in_a_sentence():
    text = "Ross Alger (August 20, 1920 – January 16, 1992) served from 1977 to 1980; in July 2012 he left."
    found = [(text[d.start : d.end], d.key) for d in find_dates(text)]
    assert found == [
        ("August 20, 1920", "+1920-08-20T00:00:00Z/11"),
        ("January 16, 1992", "+1992-01-16T00:00:00Z/11"),
        ("1977", "+1977-00-00T00:00:00Z/9"),
        ("1980", "+1980-00-00T00:00:00Z/9"),
        ("July 2012", "+2012-07-00T00:00:00Z/10"),
    ]


@pytest.mark.parametrize("text", ["the 1930s", "1,500 people", "$2000", "3.1999", "32 March 1963", "A1963", "12.5%"])
def test_not_dates(text):
    assert all(d.precision != 11 for d in find_dates(text)) and parse_date(text) is None
