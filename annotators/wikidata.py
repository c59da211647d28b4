"""One line of a Wikidata JSON dump → `WikidataEntity` (English label, aliases, item/time facts).

The dump (`latest-all.json.gz`) is a JSON array with one entity per line, each line ending in a comma;
`parse_dump_line` handles one such line, so a reader can stream the (compressed) file line by line and
in parallel. Kept: the English label and aliases (`mul`, Wikidata's language-neutral default, as a
fallback), and every claim of a chosen property whose value is an item (`Q…`) or a point in time. Time
values become one string, `TIME/PRECISION` (`+1963-03-13T00:00:00Z/11`), the `kb_id` format of TIME
entities (docs/design.md); fields finer than the precision are zeroed, since the dump writes year-precision
dates both as `+2002-00-00…` and `+2002-01-01…`.

Not kept: other datatypes (strings, quantities, coordinates, …), `novalue`/`somevalue` snaks and claims
of a shape this parser does not know; they are counted in `skipped_claims`, never silently dropped.
Deprecated-rank statements are ignored (Wikidata marks them as wrong). Properties (`P…`) and lexemes
give `None`; a line that is not JSON or not an object raises `DumpLineError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# The 96 relation types of DocRED (rel_info.json); Re-DocRED dev uses all but P1198.
DOCRED_PROPERTIES: frozenset[str] = frozenset(
    (
        "P6 P17 P19 P20 P22 P25 P26 P27 P30 P31 P35 P36 P37 P39 P40 P50 P54 P57 P58 P69 P86 P102 P108 P112 "
        "P118 P123 P127 P131 P136 P137 P140 P150 P155 P156 P159 P161 P162 P166 P170 P171 P172 P175 P176 P178 "
        "P179 P190 P194 P205 P206 P241 P264 P272 P276 P279 P355 P361 P364 P400 P403 P449 P463 P488 P495 P527 "
        "P551 P569 P570 P571 P576 P577 P580 P582 P585 P607 P674 P676 P706 P710 P737 P740 P749 P800 P807 P840 "
        "P937 P1001 P1056 P1198 P1336 P1344 P1365 P1366 P1376 P1412 P1441 P3373"
    ).split()
)

LABEL_LANGUAGES = ("en", "mul")
_TIME = re.compile(r"^([+-])(\d{1,16})-(\d\d)-(\d\d)T")


class DumpLineError(ValueError):
    """A dump line that is not a usable entity (broken JSON, not an object, no id); the message says why."""


@dataclass(frozen=True)
class WikidataEntity:
    id: str
    label: str | None
    aliases: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]  # (property, object): object an item id or a time key
    skipped_claims: int = 0


def time_key(time: str, precision: int) -> str | None:
    """`+1963-03-13T00:00:00Z`, 11 → `+1963-03-13T00:00:00Z/11`, zeroing what the precision leaves open.

    None when `time` is not a Wikidata time string.
    """
    m = _TIME.match(time)
    if m is None:
        return None
    sign, year, month, day = m.groups()
    if precision <= 9:
        month = day = "00"
    elif precision == 10:
        day = "00"
    return f"{sign}{int(year):04d}-{month}-{day}T00:00:00Z/{precision}"


def _text(value) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("value"), str) and value["value"].strip():
        return value["value"]
    return None


def _label(obj: dict) -> str | None:
    labels = obj.get("labels")
    if not isinstance(labels, dict):
        return None
    for lang in LABEL_LANGUAGES:
        text = _text(labels.get(lang))
        if text is not None:
            return text
    return None


def _aliases(obj: dict, label: str | None) -> tuple[str, ...]:
    aliases = obj.get("aliases")
    if not isinstance(aliases, dict):
        return ()
    seen = {label} if label else set()
    out = []
    for lang in LABEL_LANGUAGES:
        values = aliases.get(lang)
        for value in values if isinstance(values, list) else ():
            text = _text(value)
            if text is not None and text not in seen:
                seen.add(text)
                out.append(text)
    return tuple(out)


def _claim_object(claim) -> str | None:
    """The fact object of one statement, or None when its shape is not one we keep."""
    if not isinstance(claim, dict):
        return None
    snak = claim.get("mainsnak")
    if not isinstance(snak, dict) or snak.get("snaktype") != "value":
        return None
    datavalue = snak.get("datavalue")
    if not isinstance(datavalue, dict) or not isinstance(datavalue.get("value"), dict):
        return None
    value, kind = datavalue["value"], datavalue.get("type")
    if kind == "wikibase-entityid":
        qid = value.get("id")
        if not isinstance(qid, str) and isinstance(value.get("numeric-id"), int):
            qid = f"Q{value['numeric-id']}" if value.get("entity-type", "item") == "item" else None
        return qid if isinstance(qid, str) and qid.startswith("Q") else None
    if kind == "time":
        precision = value.get("precision")
        if isinstance(value.get("time"), str) and isinstance(precision, int) and not isinstance(precision, bool):
            return time_key(value["time"], precision)
    return None


def parse_dump_line(line: str | bytes, properties: frozenset[str] | None = DOCRED_PROPERTIES) -> WikidataEntity | None:
    """Parse one dump line; `None` for array brackets, blank lines and non-item entities.

    `properties` restricts the facts kept (default: the DocRED properties); `None` keeps all.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DumpLineError(f"not UTF-8: {e.reason} at byte {e.start}") from None
    text = line.strip()
    if text.endswith(","):
        text = text[:-1].rstrip()
    if text in ("", "[", "]"):
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DumpLineError(f"broken JSON: {e.msg} at character {e.pos}") from None
    if not isinstance(obj, dict):
        raise DumpLineError(f"not a JSON object but a {type(obj).__name__}")
    entity_id = obj.get("id")
    if not isinstance(entity_id, str) or not entity_id:
        raise DumpLineError("entity without an id")
    if obj.get("type", "item") != "item" or not entity_id.startswith("Q"):
        return None  # properties, lexemes, ...: not knowledge-base items
    claims = obj.get("claims", {})
    if not isinstance(claims, dict):
        raise DumpLineError(f"{entity_id}: claims is a {type(claims).__name__}, not an object")
    label = _label(obj)
    facts: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    skipped = 0
    for prop, statements in claims.items():
        if properties is not None and prop not in properties:
            continue
        if not isinstance(statements, list):
            skipped += 1
            continue
        for claim in statements:
            if isinstance(claim, dict) and claim.get("rank") == "deprecated":
                continue
            obj_id = _claim_object(claim)
            if obj_id is None:
                skipped += 1
            elif (prop, obj_id) not in seen:
                seen.add((prop, obj_id))
                facts.append((prop, obj_id))
    return WikidataEntity(entity_id, label, _aliases(obj, label), tuple(facts), skipped)
