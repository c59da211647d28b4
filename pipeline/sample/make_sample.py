"""Writes `sample_docred.json`, the DocRED-format sample `memllm generate` runs on with no --input.

Nine invented documents (no real data), each exercising rules of the example builders:
0 the worked example of docs/method.md §3 (targets 2019, Carla Fenwick, Dunmore, Ireland, Harbor Lane Press);
1 a relation whose only evidence sentence names its entities by pronoun (never written);
2 empty evidence (written at every eligible sentence) and aliases (two queries for one target);
3 a HEAD read, plus a skipped (?, country of citizenship, X) query on the same target;
4 a target already written verbatim earlier (no read);
5 a query with more than 30 results (never included) and a 32-triple write (dropped by the trainer);
6 a result set drawn from two documents;
7 a skipped (X, continent, ?) query and a skipped (?, country, X) query;
8 two targets with the same top query (one read point, overlapping examples).
Run: python pipeline/sample/make_sample.py
"""

import json
from pathlib import Path

FIRST = ["Ada", "Bram", "Cora", "Dov", "Edda", "Finn", "Gala", "Hugo"]
LAST = ["Brook", "Crane", "Dale", "Frost"]


def doc(title, sentences, entities, relations):
    """entities: list of (type, [(sentence, mention text), ...]); relations: (h, t, P-id, evidence)."""
    sents = [s.split(" ") for s in sentences]
    vertex_set = []
    for etype, mentions in entities:
        vertex = []
        for sent_id, text in mentions:
            words, toks = text.split(" "), sents[sent_id]
            starts = [i for i in range(len(toks)) if toks[i : i + len(words)] == words]
            assert starts, (title, text, sent_id)
            vertex.append({"name": text, "sent_id": sent_id, "pos": [starts[0], starts[0] + len(words)], "type": etype})
        vertex_set.append(vertex)
    labels = [{"h": h, "t": t, "r": r, "evidence": ev} for h, t, r, ev in relations]
    return {"title": title, "sents": sents, "vertexSet": vertex_set, "labels": labels}


authors = [f"{first} {last}" for last in LAST for first in FIRST][:31]
docs = [
    doc(
        "Lumen Vale",
        [
            "Lumen Vale is a 2019 novel by Carla Fenwick .",
            "Fenwick was born in Dunmore , Ireland .",
            "The novel was published by Harbor Lane Press .",
        ],
        [
            ("MISC", [(0, "Lumen Vale")]),
            ("TIME", [(0, "2019")]),
            ("PER", [(0, "Carla Fenwick"), (1, "Fenwick")]),
            ("LOC", [(1, "Dunmore")]),
            ("LOC", [(1, "Ireland")]),
            ("ORG", [(2, "Harbor Lane Press")]),
        ],
        [
            (0, 1, "P577", [0]),
            (0, 2, "P50", [0]),
            (2, 3, "P19", [1]),
            (3, 4, "P17", [1]),
            (2, 4, "P27", [1]),
            (0, 5, "P123", [2]),
            (2, 0, "P800", [0]),
        ],
    ),
    doc(
        "Marta Quell",
        [
            "Marta Quell is a chemist from Santiago .",
            "She studied at the University of Valpora .",
            "She has lived there since 2001 .",
        ],
        [("PER", [(0, "Marta Quell")]), ("LOC", [(0, "Santiago")]), ("ORG", [(1, "University of Valpora")])],
        [(0, 2, "P69", [1]), (0, 1, "P551", [2])],
    ),
    doc(
        "Orin River",
        ["The Orin River flows through Kessland .", "The Orin is 410 km long and empties into the Gray Sea ."],
        [("LOC", [(0, "Orin River"), (1, "Orin")]), ("LOC", [(0, "Kessland")]), ("LOC", [(1, "Gray Sea")])],
        [(0, 1, "P17", []), (0, 2, "P403", [1])],
    ),
    doc(
        "Brightwater Records",
        [
            "Brightwater Records is a label based in Port Amsel , Kessland .",
            "Its best-known artist is Tova Lind , a Kesslandic singer .",
        ],
        [
            ("ORG", [(0, "Brightwater Records")]),
            ("LOC", [(0, "Port Amsel")]),
            ("LOC", [(0, "Kessland"), (1, "Kesslandic")]),
            ("PER", [(1, "Tova Lind")]),
        ],
        [(0, 1, "P159", [0]), (3, 0, "P264", [1]), (3, 2, "P27", [1])],
    ),
    doc(
        "Amsel Bridge",
        ["The Amsel Bridge opened in 1998 .", "It spans the Amsel in Port Amsel ."],
        [
            ("LOC", [(0, "Amsel Bridge")]),
            ("TIME", [(0, "1998")]),
            ("LOC", [(1, "Amsel")]),
            ("LOC", [(1, "Port Amsel")]),
        ],
        [(0, 1, "P571", [0]), (0, 2, "P177", [1]), (0, 3, "P131", [1])],
    ),
    doc(
        "Northwind Tales",
        ["Northwind Tales is a 2020 anthology with stories by " + " , ".join(authors) + " ."],
        [("MISC", [(0, "Northwind Tales")]), ("TIME", [(0, "2020")])] + [("PER", [(0, a)]) for a in authors],
        [(0, 1, "P577", [0])] + [(0, 2 + i, "P50", [0]) for i in range(len(authors))],
    ),
    doc(
        "Salt Hours",
        ["Carla Fenwick wrote Salt Hours , published by Harbor Lane Press in 2021 ."],
        [
            ("PER", [(0, "Carla Fenwick")]),
            ("MISC", [(0, "Salt Hours")]),
            ("ORG", [(0, "Harbor Lane Press")]),
            ("TIME", [(0, "2021")]),
        ],
        [(0, 1, "P800", [0]), (1, 0, "P50", [0]), (1, 2, "P123", [0]), (1, 3, "P577", [0])],
    ),
    doc(
        "Kessland",
        ["Kessland is a country in Europe .", "Its capital is Port Amsel ."],
        [("LOC", [(0, "Kessland")]), ("LOC", [(0, "Europe")]), ("LOC", [(1, "Port Amsel")])],
        [(0, 1, "P30", [0]), (0, 2, "P36", [1]), (2, 0, "P17", [1])],
    ),
    doc(
        "Tova Lind",
        ["Tova Lind released the albums Glass Harbor and Night Ferry .", "Night Ferry came out in 2017 ."],
        [
            ("PER", [(0, "Tova Lind")]),
            ("MISC", [(0, "Glass Harbor")]),
            ("MISC", [(0, "Night Ferry"), (1, "Night Ferry")]),
            ("TIME", [(1, "2017")]),
        ],
        [(1, 0, "P175", [0]), (2, 0, "P175", [0]), (2, 3, "P577", [1])],
    ),
]

out = Path(__file__).with_name("sample_docred.json")
out.write_text("[\n" + ",\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\n]\n", encoding="utf-8")
print(f"wrote {len(docs)} documents to {out.name}")
