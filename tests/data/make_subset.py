"""Cut the shipped Re-DocRED dev subset and its reference outputs from the full files (see README.md here).

    python tests/data/make_subset.py DEV_JSON MEMWRITE_JSONL MEMREAD_JSON [--docs 50] [--out tests/data]

DEV_JSON is the Re-DocRED dev split (a DocRED-format JSON array), MEMWRITE_JSONL and MEMREAD_JSON the
original MemLLM implementation's memory-write and exact-memory memory-read outputs on it. Writes:

- `redocred_dev_head50.json`: the first `--docs` documents, unchanged (one per line).
- `redocred_dev_head50_memory.json`: the rest of the split's gold triples that the exact-match memory can
  return to a query of those documents, carried by DocRED-format documents (see `memory_carriers`).
- `golden/memwrite_head50.jsonl.gz`: the memory-write lines with `doc_idx` < `--docs`, verbatim.
- `golden/memread_exact_head50.json.gz`: the memory-read examples with `data_idx` < `--docs`.

The file names hold 50 whatever `--docs` is; the tests expect 50. The gzip files carry no time stamp, so
the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

HEAD = "redocred_dev_head50.json"
MEMORY = "redocred_dev_head50_memory.json"
MEMWRITE = "golden/memwrite_head50.jsonl.gz"
MEMREAD = "golden/memread_exact_head50.json.gz"


def mention_names(entity: list[dict]) -> list[str]:
    return list(dict.fromkeys(m["name"] for m in entity))


def memory_keys(doc: dict, labels: dict[str, str]) -> set[tuple[str, str, str]]:
    """Every key of the exact-match memory the document's gold triples fill that Algorithm 1 may ask:
    (known name, relation label, asked side) under every mention-name combination, less the reference's
    SKIP_QUERIES. Every query Algorithm 1 asks for a document is one of these keys (a source is a mention of
    the other argument of one of its relations), so this is a superset of what its examples depend on."""
    from memllm.annotators.read_examples import is_skipped
    from memllm.schemas.api import Query

    keys = set()
    for lab in doc["labels"]:
        label = labels[lab["r"]]
        if not is_skipped(Query("x", label, None)):
            keys.update((h, label, "tail") for h in mention_names(doc["vertexSet"][lab["h"]]))
        if not is_skipped(Query(None, label, "x")):
            keys.update((t, label, "head") for t in mention_names(doc["vertexSet"][lab["t"]]))
    return keys


def memory_carriers(rest: list[dict], keys: set, labels: dict[str, str]) -> list[dict]:
    """For each document of `rest` with a relation that answers one of `keys`: a document holding just those
    relations, so its gold triples (every mention-name combination) are a subset of the whole split's and
    include every triple answering a key. Each kept entity has one mention per distinct name, each in a
    sentence of its own made of the original mention's tokens; relations carry no evidence."""
    out = []
    for doc in rest:
        kept = []
        for lab in doc["labels"]:
            label = labels[lab["r"]]
            heads, tails = mention_names(doc["vertexSet"][lab["h"]]), mention_names(doc["vertexSet"][lab["t"]])
            if any((h, label, "tail") in keys for h in heads) or any((t, label, "head") in keys for t in tails):
                kept.append(lab)
        if not kept:
            continue
        entities = list(dict.fromkeys(e for lab in kept for e in (lab["h"], lab["t"])))
        sents, vertex_set = [], []
        for e in entities:
            mentions = []
            for name in mention_names(doc["vertexSet"][e]):
                m = next(m for m in doc["vertexSet"][e] if m["name"] == name)
                tokens = doc["sents"][m["sent_id"]][m["pos"][0] : m["pos"][1]]
                mentions.append({"name": name, "sent_id": len(sents), "pos": [0, len(tokens)], "type": m["type"]})
                sents.append(tokens)
            vertex_set.append(mentions)
        at = {e: i for i, e in enumerate(entities)}
        labels_out = [{"h": at[lab["h"]], "t": at[lab["t"]], "r": lab["r"], "evidence": []} for lab in kept]
        out.append({"title": doc["title"], "sents": sents, "vertexSet": vertex_set, "labels": labels_out})
    return out


def json_array_lines(items: list) -> str:
    return "[\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in items) + "\n]\n"


def write_gzip(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(text.encode("utf-8"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dev")
    p.add_argument("memwrite")
    p.add_argument("memread")
    p.add_argument("--docs", type=int, default=50)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent))
    args = p.parse_args(argv)
    from memllm.annotators.relation_labels import property_labels

    labels = property_labels()
    out = Path(args.out)
    with open(args.dev, encoding="utf-8") as f:
        dev = json.load(f)
    head, rest = dev[: args.docs], dev[args.docs :]
    keys = set().union(*(memory_keys(d, labels) for d in head))
    (out / HEAD).write_text(json_array_lines(head), encoding="utf-8")
    (out / MEMORY).write_text(json_array_lines(memory_carriers(rest, keys, labels)), encoding="utf-8")
    with open(args.memwrite, encoding="utf-8") as f:
        write_gzip(out / MEMWRITE, "".join(line for line in f if json.loads(line)["doc_idx"] < args.docs))
    with open(args.memread, encoding="utf-8") as f:
        reads = [g for g in json.load(f) if g["data_idx"] < args.docs]
    write_gzip(out / MEMREAD, json_array_lines(reads))


if __name__ == "__main__":
    main()
