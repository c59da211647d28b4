"""Score the Wikipedia path on Re-DocRED dev as raw text, and time it against spaCy alone.

Input (the project's shared data, never copied into the repo):
- `wikipedia/redocred_dev_as_wikipedia.parquet`: the 500 dev documents as articles (`id, url, title, text`;
  the text is the DocRED tokens re-joined, the title is the document's title);
- `kb/redocred_dev_wikidata.json`: the KB in the Wikidata dump format (read with `parse_dump_line`);
- `kb/redocred_dev_gold_facts.jsonl`: per document (same order) the gold facts by KB id, time objects as
  {time, precision}; `redocred/dev_revised.json` for the gold mentions (error breakdown, and to know which
  time value a TIME entity of the gold stands for, since the gold lists TIME entities by item id).

Quality, per half (even documents = tuning half, odd = held-out; defaults were tuned on the even half
only): micro precision / recall / F1 of the facts (subject, property, object) annotated per article
against the gold facts of that document; entity recall (gold entities with at least one mention linked to
their KB id, or, for dates, to their time value); where the missed facts come from (the first missing
argument's cause: no mention at all = detection (NER / alias), a mention with the gold name linked
elsewhere = linking, a date not normalised = dates, gold mentions that are all pronouns = coreference),
and what the extra facts are (both arguments are gold entities: a KB fact the annotators did not mark in
this document; otherwise a wrong or spurious entity).

Speed, side by side in one process on the same texts: words/s of `nlp.pipe` alone (same model, same
components) and of the whole `WikipediaAnnotator.annotate`, per CPU second of this process (per core; the
machine may be shared) and per wall second.

    python benchmarks/eval_wikipedia_path.py [--shared DATA] [--limit N] [--batch-size 64] [--fuzzy-threshold 90]

`DATA` is the directory holding `wikipedia/`, `kb/` and `redocred/` (default: `shared/data` beside the
repository).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from memllm.annotators.articles import article_text
from memllm.annotators.kb import KnowledgeBase, alias_key
from memllm.annotators.wikidata import parse_dump_line, time_key
from memllm.annotators.wikipedia import AnnotationConfig, WikipediaAnnotator, load_nlp
from memllm.schemas.article import Article

ROOT = Path(__file__).resolve().parent.parent
PRONOUNS = frozenset("he she it they him her them his hers its their theirs himself herself itself themselves".split())


def _object(o) -> str:
    return o if isinstance(o, str) else time_key(o["time"], o["precision"])


def load_gold(shared: Path):
    gold = [json.loads(line) for line in open(shared / "kb" / "redocred_dev_gold_facts.jsonl", encoding="utf-8")]
    dev = json.load(open(shared / "redocred" / "dev_revised.json", encoding="utf-8"))
    docs = []
    for g, d in zip(gold, dev, strict=True):
        facts = {(s, p, _object(o)) for s, p, o in g["facts"]}
        ids = list(g["entities"])
        # A TIME entity of the gold is an item id; the facts name its time value instead.
        value_of = {}
        time_facts = {(s, p): _object(o) for s, p, o in g["facts"] if not isinstance(o, str)}
        for lab in d["labels"]:
            v = time_facts.get((ids[lab["h"]], lab["r"]))
            if v is not None and g["types"][lab["t"]] == "TIME":
                value_of[ids[lab["t"]]] = v
        entities = [(value_of.get(e, e), [m["name"] for m in d["vertexSet"][i]]) for i, e in enumerate(ids)]
        docs.append({"facts": facts, "entities": entities})
    return docs


def predicted(documents) -> tuple[set, set, dict[str, str]]:
    facts, ids, names = set(), set(), {}
    for doc in documents:
        for r in doc.relations:
            facts.add((doc.entities[r.h].kb_id, r.r, doc.entities[r.t].kb_id))
        for e in doc.entities:
            if e.kb_id:
                ids.add(e.kb_id)
            for m in e.mentions:
                names.setdefault(alias_key(m.name), e.kb_id)
    return facts, ids, names


def miss_cause(entity_id: str, gold_names: dict[str, list[str]], found_ids: set, found_names: dict) -> str | None:
    if entity_id in found_ids:
        return None
    if entity_id[:1] in "+-":
        return "dates: time value not found"
    mentions = gold_names.get(entity_id, [])
    if mentions and all(m.lower() in PRONOUNS for m in mentions):
        return "coreference: pronoun-only entity"
    keys = [alias_key(m) for m in mentions]
    if any(k in found_names for k in keys):
        linked = {found_names[k] for k in keys if k in found_names}
        return "linking: wrong entity" if linked != {None} else "linking: mention found, not linked"
    return "detection: no mention (NER / alias match)"


def score(results, gold, half: list[int]) -> dict:
    tp = fp = fn = 0
    ent_found = ent_total = 0
    misses, extras = Counter(), Counter()
    for i in half:
        pred_facts, found_ids, found_names = results[i]
        g = gold[i]
        gold_facts = g["facts"]
        tp += len(pred_facts & gold_facts)
        fp += len(pred_facts - gold_facts)
        fn += len(gold_facts - pred_facts)
        gold_names = {e: n for e, n in g["entities"]}
        gold_ids = set(gold_names)
        for e in gold_ids:
            ent_total += 1
            ent_found += e in found_ids
        for s, _p, o in gold_facts - pred_facts:
            cause = miss_cause(s, gold_names, found_ids, found_names) or miss_cause(
                o, gold_names, found_ids, found_names
            )
            misses[cause or "both found, fact not annotated (split apart)"] += 1
        for s, _p, o in pred_facts - gold_facts:
            extras[
                "KB fact between gold entities, not marked here" if {s, o} <= gold_ids else "wrong/extra entity"
            ] += 1
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {
        "docs": len(half),
        "gold": tp + fn,
        "pred": tp + fp,
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "entity_recall": ent_found / ent_total if ent_total else 0.0,
        "misses": misses,
        "extras": extras,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data", help="the data directory")
    ap.add_argument("--limit", type=int, default=None, help="first N documents only")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--fuzzy-threshold", type=float, default=AnnotationConfig.fuzzy_threshold)
    args = ap.parse_args(argv)

    rows = pq.read_table(args.shared / "wikipedia" / "redocred_dev_as_wikipedia.parquet").to_pylist()
    gold = load_gold(args.shared)
    n = min(len(rows), args.limit or len(rows))
    articles = [Article(r["id"], r["url"], r["title"], r["text"], i) for i, r in enumerate(rows[:n])]

    t0 = time.perf_counter()
    with open(args.shared / "kb" / "redocred_dev_wikidata.json", "rb") as f:
        kb = KnowledgeBase.from_entities(e for line in f if (e := parse_dump_line(line)) is not None)
    t_kb = time.perf_counter() - t0
    nlp = load_nlp()
    config = AnnotationConfig(batch_size=args.batch_size, fuzzy_threshold=args.fuzzy_threshold, max_words=100_000)
    t0 = time.perf_counter()
    annotator = WikipediaAnnotator(kb, config, nlp=nlp)
    annotator.linker._build_fuzzy()  # built lazily on the first near-miss; count it as setup, not throughput
    t_setup = time.perf_counter() - t0

    texts = [article_text(a.text, config.sections) for a in articles]
    list(nlp.pipe(texts[:20], batch_size=args.batch_size))  # warm-up, both runs start equal

    c0, w0 = time.process_time(), time.perf_counter()
    words = sum(1 for doc in nlp.pipe(texts, batch_size=args.batch_size) for t in doc if not t.is_space)
    spacy_cpu, spacy_wall = time.process_time() - c0, time.perf_counter() - w0

    c0, w0 = time.process_time(), time.perf_counter()
    outputs = list(annotator.annotate(articles, source="wikipedia", split="validation"))
    path_cpu, path_wall = time.process_time() - c0, time.perf_counter() - w0
    assert annotator.counts["words"] == words, (annotator.counts["words"], words)

    results = []
    for _article, docs in outputs:
        results.append(predicted(docs) if isinstance(docs, list) else (set(), set(), {}))
    halves = {
        "tuning (even)": [i for i in range(n) if i % 2 == 0],
        "held-out (odd)": [i for i in range(n) if i % 2 == 1],
        "all": list(range(n)),
    }
    scores = {name: score(results, gold, idx) for name, idx in halves.items()}

    print(f"KB: {len(kb):,} entities, {kb.num_facts:,} facts, read in {t_kb:.1f} s; annotator setup {t_setup:.1f} s")
    print(f"model {nlp.meta['lang']}_{nlp.meta['name']} {nlp.meta['version']}, components {nlp.pipe_names}")
    print()
    print(f"{'half':<16}{'docs':>6}{'gold':>7}{'pred':>7}{'P':>8}{'R':>8}{'F1':>8}{'ent R':>8}")
    for name, s in scores.items():
        print(
            f"{name:<16}{s['docs']:>6}{s['gold']:>7}{s['pred']:>7}{s['precision']:>8.3f}{s['recall']:>8.3f}"
            f"{s['f1']:>8.3f}{s['entity_recall']:>8.3f}"
        )
    print()
    for name in ("tuning (even)", "held-out (odd)"):
        s = scores[name]
        print(f"missed gold facts, {name} ({s['gold'] - round(s['recall'] * s['gold'])}):")
        for cause, k in s["misses"].most_common():
            print(f"  {k:>6}  {cause}")
        print(f"extra facts, {name} ({s['pred'] - round(s['precision'] * s['pred'])}):")
        for cause, k in s["extras"].most_common():
            print(f"  {k:>6}  {cause}")
    print()
    print(f"{'throughput':<22}{'words':>9}{'CPU s':>8}{'words/CPU s':>13}{'wall s':>8}{'words/s':>9}")
    for name, cpu, wall in (("spaCy alone", spacy_cpu, spacy_wall), ("whole path", path_cpu, path_wall)):
        print(f"{name:<22}{words:>9,}{cpu:>8.1f}{words / cpu:>13,.0f}{wall:>8.1f}{words / wall:>9,.0f}")
    print(f"whole path / spaCy alone, per CPU second: {spacy_cpu / path_cpu:.2f}  (wall: {spacy_wall / path_wall:.2f})")
    print()
    counts = annotator.counts
    print("counts: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
