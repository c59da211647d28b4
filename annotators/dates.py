"""Dates in English text → Wikidata time values at their precision (year 9, month 10, day 11).

`find_dates` finds the dates of a text (character spans): `13 March 1963`, `March 13, 1963`,
`1963-03-13`, `March 1963`, and bare years 1000–2999. Each becomes a time key in the KB's format
(`+1963-03-13T00:00:00Z/11`, `+1963-03-00T00:00:00Z/10`, `+1963-00-00T00:00:00Z/9`), so a TIME mention
matches a Wikidata time value only at the precision the text states; a year alone never matches a full
birth date, as in Wikidata's own comparison of values.

Not handled (left to the alias table, or unlinked): decades and centuries (`the 1930s`, precision 8/7),
seasons, relative dates (`two years later`), ranges inside one number (`1997-8`), BCE years, calendars
other than the Gregorian.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>[12]\d{3})"
# Most specific first: a longer date wins over the year or month-year inside it.
_PATTERNS = [
    (11, re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE)),
    (11, re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.IGNORECASE)),
    (11, re.compile(r"\b(?P<year>[12]\d{3})-(?P<month>[01]\d)-(?P<day>[0-3]\d)\b")),
    (10, re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.IGNORECASE)),
    (9, re.compile(rf"(?<![\w.,$£€]){_YEAR}(?![\w%]|\.\d|,\d|'s\b)")),
]


@dataclass(frozen=True)
class DateMatch:
    start: int  # character offsets in the text
    end: int
    key: str  # the time key, `+1963-03-13T00:00:00Z/11`
    precision: int


def date_key(year: int, month: int = 0, day: int = 0) -> str:
    """The time key of a date; precision from what is given (day 11, month 10, year 9)."""
    precision = 11 if day else 10 if month else 9
    return f"+{year:04d}-{month:02d}-{day:02d}T00:00:00Z/{precision}"


def _key(precision: int, m: re.Match) -> str | None:
    year = int(m.group("year"))
    if precision == 9:
        return date_key(year)
    month_text = m.group("month").lower()
    month = int(month_text) if month_text.isdigit() else _MONTHS[month_text]
    if not 1 <= month <= 12:
        return None
    if precision == 10:
        return date_key(year, month)
    day = int(m.group("day"))
    # No calendar check beyond 1..31: Wikidata itself holds dates such as 30 February from old sources.
    return date_key(year, month, day) if 1 <= day <= 31 else None


def find_dates(text: str) -> list[DateMatch]:
    """Non-overlapping dates in `text`, in text order; at one place the most precise reading wins."""
    found: list[DateMatch] = []
    taken: list[tuple[int, int]] = []
    for precision, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span()
            if any(start < e and s < end for s, e in taken):
                continue
            key = _key(precision, m)
            if key is not None:
                found.append(DateMatch(start, end, key, precision))
                taken.append((start, end))
    found.sort(key=lambda d: d.start)
    return found


def parse_date(text: str) -> str | None:
    """The time key of `text` when the whole text (stripped) is one date, else None."""
    text = text.strip()
    dates = find_dates(text)
    if len(dates) == 1 and dates[0].start == 0 and dates[0].end == len(text):
        return dates[0].key
    return None
