"""Writes the Wikipedia-path sample `memllm generate --source wikipedia` runs on with no --input / --kb.

`sample_wikipedia.jsonl`: five invented articles (no real data) in the column layout of HF
`wikimedia/wikipedia` (`id, url, title, text`), one of them empty (a dead letter). `sample_wikidata.json`:
a matching knowledge base in the Wikidata JSON dump format (a JSON array, one entity per line), with
item ids from a range real Wikidata does not use. They exercise:
- a title entity referred to by surname ("Fenwick", "Reilly") and by pronoun;
- dates at three precisions (day, month, year) that must match Wikidata time values;
- two items named "Dunmore" (a town in Ireland, a village in Scotland): the article's other entities
  (Ireland, County Galway, Carla Fenwick) have facts with the Irish one only;
- a fact whose entities share no sentence, and facts stated in both directions (spouse).
Run: python pipeline/sample/make_wikipedia_sample.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
WIKI = "https://en.wikipedia.org/wiki/"

ARTICLES = [
    (
        "1001",
        "Carla Fenwick",
        "Carla Fenwick (born 4 May 1961 in Dunmore, Ireland) is an Irish novelist. Fenwick studied at "
        "Kilbride College before moving to Galway. Her first novel, The Salt Road, was published by Harbor "
        "Lane Press in 1989. She is married to the painter Tomas Reilly.",
    ),
    (
        "1002",
        "Harbor Lane Press",
        "Harbor Lane Press is an independent publishing house based in Galway. It was founded in 1974 by Nora "
        "Quill and Peter Vance. The press published The Salt Road by Carla Fenwick in 1989. Since March 2005 "
        "it has been owned by the Wexbridge Group.",
    ),
    (
        "1003",
        "Dunmore, County Galway",
        "Dunmore is a town in County Galway, Ireland. It lies on the Sinna River, north of Tuam. Dunmore is "
        "the birthplace of the novelist Carla Fenwick.",
    ),
    ("1004", "Empty page", ""),
    (
        "1005",
        "Tomas Reilly",
        "Tomas Reilly (1958 – 12 August 2019) was an Irish painter. Reilly was born in Tuam and trained at "
        "Kilbride College, where he met his wife, Carla Fenwick. He died in Galway in August 2019.",
    ),
]

# id: (label, aliases, {property: [object, ...]}); objects are item ids or (time, precision)
ITEMS = {
    "Q990001": (
        "Carla Fenwick",
        ["Fenwick"],
        {
            "P569": [("+1961-05-04T00:00:00Z", 11)],
            "P19": ["Q990002"],
            "P27": ["Q990003"],
            "P69": ["Q990004"],
            "P551": ["Q990005"],
            "P800": ["Q990006"],
            "P26": ["Q990008"],
        },
    ),
    "Q990002": ("Dunmore", [], {"P131": ["Q990009"], "P17": ["Q990003"], "P206": ["Q990010"]}),
    "Q990003": ("Ireland", ["Republic of Ireland"], {}),
    "Q990004": ("Kilbride College", [], {"P17": ["Q990003"]}),
    "Q990005": ("Galway", ["Galway City"], {"P17": ["Q990003"], "P131": ["Q990009"]}),
    "Q990006": (
        "The Salt Road",
        [],
        {
            "P50": ["Q990001"],
            "P123": ["Q990007"],
            "P577": [("+1989-00-00T00:00:00Z", 9)],
        },
    ),
    "Q990007": (
        "Harbor Lane Press",
        ["Harbor Lane"],
        {
            "P159": ["Q990005"],
            "P571": [("+1974-00-00T00:00:00Z", 9)],
            "P112": ["Q990012", "Q990013"],
            "P127": ["Q990014"],
            "P17": ["Q990003"],
        },
    ),
    "Q990008": (
        "Tomas Reilly",
        ["Reilly"],
        {
            "P569": [("+1958-00-00T00:00:00Z", 9)],
            "P570": [("+2019-08-12T00:00:00Z", 11)],
            "P19": ["Q990011"],
            "P20": ["Q990005"],
            "P69": ["Q990004"],
            "P26": ["Q990001"],
            "P27": ["Q990003"],
        },
    ),
    "Q990009": ("County Galway", [], {"P17": ["Q990003"]}),
    "Q990010": ("Sinna River", ["Sinna"], {"P17": ["Q990003"]}),
    "Q990011": ("Tuam", [], {"P131": ["Q990009"], "P17": ["Q990003"]}),
    "Q990012": ("Nora Quill", [], {}),
    "Q990013": ("Peter Vance", [], {}),
    "Q990014": ("Wexbridge Group", ["Wexbridge"], {"P17": ["Q990003"]}),
    "Q990015": ("Dunmore", ["Dunmore, Falkirk"], {"P17": ["Q990016"]}),
    "Q990016": ("Scotland", [], {}),
}


def snak(prop: str, obj) -> dict:
    if isinstance(obj, tuple):
        time, precision = obj
        value = {
            "time": time,
            "timezone": 0,
            "before": 0,
            "after": 0,
            "precision": precision,
            "calendarmodel": "http://www.wikidata.org/entity/Q1985727",
        }
        datavalue, datatype = {"value": value, "type": "time"}, "time"
    else:
        value = {"entity-type": "item", "id": obj, "numeric-id": int(obj[1:])}
        datavalue, datatype = {"value": value, "type": "wikibase-entityid"}, "wikibase-item"
    mainsnak = {"snaktype": "value", "property": prop, "datavalue": datavalue, "datatype": datatype}
    return {"mainsnak": mainsnak, "type": "statement", "rank": "normal"}


def entity(qid: str, label: str, aliases: list[str], claims: dict) -> dict:
    return {
        "type": "item",
        "id": qid,
        "labels": {"en": {"language": "en", "value": label}},
        "aliases": {"en": [{"language": "en", "value": a} for a in aliases]},
        "claims": {p: [snak(p, o) for o in objs] for p, objs in claims.items()},
    }


def main() -> None:
    with open(HERE / "sample_wikipedia.jsonl", "w", encoding="utf-8") as f:
        for article_id, title, text in ARTICLES:
            row = {"id": article_id, "url": WIKI + title.replace(" ", "_"), "title": title, "text": text}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    lines = [json.dumps(entity(q, *item), ensure_ascii=False) for q, item in ITEMS.items()]
    with open(HERE / "sample_wikidata.json", "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(lines) + "\n]\n")


if __name__ == "__main__":
    main()
