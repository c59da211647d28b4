"""Wikidata property id → English label, the relation strings of the MemLLM API (`P19` → `place of birth`).

The table ships with the package (`annotators/data/property_labels_en.json`, the 2,407 properties the
reference code mapped, every DocRED property among them), so workers need no network or extra files.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LABELS_FILE = Path(__file__).parent / "data" / "property_labels_en.json"


@lru_cache(maxsize=1)
def property_labels() -> dict[str, str]:
    with open(LABELS_FILE, encoding="utf-8") as f:
        return json.load(f)
