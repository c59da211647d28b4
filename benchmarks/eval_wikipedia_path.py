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
    python benchmarks/make_wikidata_dump.py --items 1000000 --embed DATA/kb/redocred_dev_wikidata.json \
        --output D1M.json.gz
    python benchmarks/eval_wikipedia_path.py --kb D1M.json.gz --work W1M      # the dev KB inside 1M items

The KB goes through the pipeline's own build (Beam `BuildKB` into Parquet tables, then the memory-mapped
`KBIndex`), in a child process whose peak memory is reported apart; the annotation runs in this process,
whose peak RSS and anonymous / file-backed RSS are what one worker would hold (spaCy included).
`--in-memory` loads the dump into a `KnowledgeBase` instead (the path before the index).

`DATA` is the directory holding `wikipedia/`, `kb/` and `redocred/` (default: `shared/data` beside the
repository).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from memllm.annotators.articles import article_text
from memllm.annotators.kb import KnowledgeBase, alias_key
from memllm.annotators.kb_index import KBIndex
from memllm.annotators.wikidata import DOCRED_PROPERTIES, parse_dump_line, time_key
from memllm.annotators.wikipedia import AnnotationConfig, WikipediaAnnotator, load_nlp
from memllm.schemas.article import Article

ROOT = Path(__file__).resolve().parent.parent
PRONOUNS = frozenset("he she it they him her them his hers its their theirs himself herself itself themselves".split())


def memory_status() -> dict[str, float]:
    """Peak RSS (VmHWM) and the current anonymous / file-backed RSS of this process, in MB (Linux)."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmHWM", "RssAnon", "RssFile"):
                out[name] = int(value.split()[0]) / 1024
    return out


def _build(dump: str, work: str, queue) -> None:
    from memllm.pipeline.kb_source import build_kb, built_from, dump_marker, ensure_kb_index

    t0 = time.perf_counter()
    kb_dir = str(Path(work) / "kb")
    if built_from(kb_dir) != dump_marker(dump, DOCRED_PROPERTIES):
        build_kb(dump, kb_dir, ["--runner=FnApiRunner"])
    t_tables = time.perf_counter() - t0
    manifest = ensure_kb_index(kb_dir)
    size = manifest["bytes"] / 2**20
    queue.put(dict(kb_dir=kb_dir, tables_s=t_tables, seconds=time.perf_counter() - t0, index_mb=size))


def build_kb_in_child(dump: Path, work: Path) -> dict:
    """The pipeline's own KB build (Beam `BuildKB`, then `ensure_kb_index`) in a child process, so its memory
    is measured apart from the annotation's; reused from `work` when built from the same dump."""
    import multiprocessing as mp
    import resource

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_build, args=(str(dump), str(work), queue))
    child.start()
    out = queue.get()
    child.join()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out["index"] = str(Path(out["kb_dir"]) / "index")
    return out


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
    ap.add_argument("--kb", type=Path, help="a Wikidata JSON dump holding the dev KB (default: the dev KB alone)")
    ap.add_argument("--work", type=Path, help="where the KB tables and index go (reused by a later run)")
    ap.add_argument("--in-memory", action="store_true", help="load the KB into a KnowledgeBase instead")
    args = ap.parse_args(argv)

    rows = pq.read_table(args.shared / "wikipedia" / "redocred_dev_as_wikipedia.parquet").to_pylist()
    gold = load_gold(args.shared)
    n = min(len(rows), args.limit or len(rows))
    articles = [Article(r["id"], r["url"], r["title"], r["text"], i) for i, r in enumerate(rows[:n])]

    dump = args.kb or args.shared / "kb" / "redocred_dev_wikidata.json"
    if args.in_memory:
        t0 = time.perf_counter()
        with open(dump, "rb") as f:
            kb = KnowledgeBase.from_entities(e for line in f if (e := parse_dump_line(line)) is not None)
        built = {"seconds": time.perf_counter() - t0, "peak_rss_mb": None, "entities": len(kb), "facts": kb.num_facts}
    else:
        built = build_kb_in_child(dump, args.work or Path(tempfile.mkdtemp(prefix="eval-kb-")))
        kb = KBIndex.open(built["index"])
    rss_before = memory_status()
    nlp = load_nlp()
    config = AnnotationConfig(batch_size=args.batch_size, fuzzy_threshold=args.fuzzy_threshold, max_words=100_000)
    t0 = time.perf_counter()
    annotator = WikipediaAnnotator(kb, config, nlp=nlp)
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

    rss = memory_status()
    kind = "in memory (KnowledgeBase)"
    if not args.in_memory:
        kind = f"memory-mapped index (KBIndex, {built['index_mb']:,.0f} MB)"
    print(f"KB: {dump.name}, {len(kb):,} entities, {kb.num_facts:,} facts, {kind}")
    peak = f"{built['peak_rss_mb']:,.0f} MB" if built["peak_rss_mb"] is not None else "n/a (this process)"
    print(f"KB build: {built['seconds']:.1f} s, peak RSS {peak}; annotator setup {t_setup:.1f} s")
    print(
        f"this process (the worker's share): peak RSS {rss['VmHWM']:,.0f} MB; at the end RssAnon "
        f"{rss['RssAnon']:,.0f} MB, RssFile {rss['RssFile']:,.0f} MB "
        f"(after the KB, before spaCy: RssAnon {rss_before['RssAnon']:,.0f} MB)"
    )
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
