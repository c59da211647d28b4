"""Memory-read examples: the paper's Algorithm 1, reference-faithful (docs/method.md §6.2).

Split in two so the memory lookup can happen in between, anywhere (an in-process memory, a Beam join):
- `plan_reads(doc)` — steps 1-5 and the "already in the text" check: the document's target groups in
  document order, each with its sources (the queries that could fetch the target) in merge order, and the
  queries that need a memory result (`ReadPlan.needed`).
- `finish_reads(plan, results)` — steps 7-9 given the result of every needed query: which queries are
  included, their priorities, the read points, and the examples.
`build_read_examples(doc, memory)` runs both around any `memory.Memory`.

Every quirk of the reference is kept, on purpose (checked against the reference's outputs): the target is the
first mention at which both arguments of a relation have been seen, each relation queries once; groups merge
by (sentence, span) of the target and collapse a repeated (source name, relation) only when it is the last
one appended; SKIP_QUERIES on the masked query; inclusion at <= Q_thr results but selection at < Q_thr;
priority 5 for an empty result; read points de-duplicated by their top query (ties broken by the query's
JSON text, as the reference sorts them); queries taken in merge order, at most 3; all-empty results replaced
by the target string; the first example of a document trains its prefix (`preapi_text`).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from memllm.memory.base import Q_THR, Memory
from memllm.memory.exact import query_key
from memllm.schemas.api import MAX_QUERIES, Query
from memllm.schemas.document import Document
from memllm.schemas.records import DocRef, ReadExample

HEAD, TAIL = "HEAD", "TAIL"  # which argument of the relation the target is
EMPTY_RESULT_PRIORITY = 5

# Over-broad queries never asked (reference `mr_data_config.SKIP_QUERIES`), as (direction, relation):
# "head" = (?, r, X) finds a subject, "tail" = (X, r, ?) finds an object. The last "tail" entry never
# matches: the Wikidata label is "contains administrative territorial entities" (plural); kept as is.
SKIP_QUERIES = frozenset(
    [
        ("head", r)
        for r in (
            "country of citizenship",
            "country",
            "country of origin",
            "religion",
            "place of birth",
            "place of death",
            "work location",
            "location of formation",
            "location",
            "basin country",
            "residence",
            "publication date",
            "production company",
            "original language of work",
            "applies to jurisdiction",
            "platform",
            "located in the administrative territorial entity",
            "headquarters location",
            "inception",
            "employer",
            "date of birth",
            "date of death",
            "educated at",
        )
    ]
    + [("tail", "continent"), ("tail", "contains administrative territorial entity")]
)


def is_skipped(query: Query) -> bool:
    return ("tail" if query.is_tail_query else "head", query.relation) in SKIP_QUERIES


@dataclass(frozen=True, slots=True)
class Source:
    """A seen mention name of the other argument: the known side of one candidate query. Immutable and
    shared (`source()`), since a document repeats the same (name, relation) many times."""

    name: str
    relation: str
    target_type: str  # HEAD: the target is the relation's head, so the query is (?, r, source)
    query: Query
    skipped: bool


@functools.lru_cache(maxsize=1 << 16)
def source(name: str, relation: str, target_type: str) -> Source:
    # Cached: building a validated, frozen Query per source was a fifth of planning.
    query = Query(name, relation, None) if target_type == TAIL else Query(None, relation, name)
    return Source(name, relation, target_type, query, is_skipped(query))


@dataclass(slots=True)
class TargetGroup:
    target: str  # surface name of the target mention
    sent_id: int
    span: tuple[int, int]  # in-sentence [start, end) of the target mention
    read_point: int  # global token offset of the target
    sources: list[Source] = field(default_factory=list)
    in_pretext: bool = False  # target string already occurs before the read point: no read here


_plus_one = (1).__add__  # keeps the offsets loop in C


@dataclass(slots=True)
class ReadPlan:
    """What `finish_reads` needs of a document: its reference, its tokens in order, its target groups."""

    ref: DocRef
    words: list[str]
    groups: list[TargetGroup]
    text: str  # " ".join(words)
    starts: list[int]  # character offset in `text` of each word, then len(text) + 1
    needed: list[Query]  # distinct queries whose memory result decides something, in first-use order

    def span(self, start: int, end: int) -> str:
        """`" ".join(words[start:end])`, sliced from `text` (the prefixes of a document's reads overlap)."""
        return self.text[self.starts[start] : self.starts[end] - 1] if end > start else ""


def _needed_queries(groups: list[TargetGroup]) -> list[Query]:
    return list(dict.fromkeys(src.query for g in groups if not g.in_pretext for src in g.sources if not src.skipped))


def plan_reads(doc: Document, relation_labels: Mapping[str, str]) -> ReadPlan:
    offsets = [0]
    for s in doc.sents:
        offsets.append(offsets[-1] + len(s))
    # Step 1: every mention as (global start, entity, sent_id, start, end, name), sorted by (global start,
    # entity). Tuples, not attribute reads: the sweep below reads each mention many times.
    stream = sorted(
        [
            (offsets[m.sent_id] + m.start, e, m.sent_id, m.start, m.end, m.name)
            for e, ent in enumerate(doc.entities)
            for m in ent.mentions
        ],
        key=operator.itemgetter(0, 1),
    )
    rels = [(rel.h, rel.t, relation_labels[rel.r]) for rel in doc.relations]
    rels_of: list[list[int]] = [[] for _ in doc.entities]  # per entity, its relations in label order
    for i, (h, t, _) in enumerate(rels):
        rels_of[h].append(i)
        if t != h:
            rels_of[t].append(i)

    # Step 2: sweep; a relation is covered at the first mention where both arguments have been seen.
    seen: list[list[int]] = [[] for _ in doc.entities]  # per entity, its positions in `stream` so far
    covered = [False] * len(rels)
    records: dict[tuple, None] = {}  # step 3: exact duplicates dropped, first occurrence kept
    for k, (start, e, sent_id, m_start, m_end, name) in enumerate(stream):
        seen[e].append(k)
        for i in rels_of[e]:
            if covered[i]:
                continue
            h, t, label = rels[i]
            if not seen[h] or not seen[t]:
                continue
            covered[i] = True
            target_type = HEAD if e == h else TAIL
            for j in seen[t if target_type == HEAD else h]:
                s_start, _, s_sent, _, s_end, s_name = stream[j]
                s_end += offsets[s_sent]
                records.setdefault(
                    (m_start, m_end, sent_id, start, name, s_name, s_start, s_end, label, target_type), None
                )

    # Step 4: sort by (target start in its sentence, source name), merge records at the same target span.
    ordered = sorted(records, key=operator.itemgetter(0, 5))
    groups: list[TargetGroup] = []
    by_target: dict[tuple[int, int, int], TargetGroup] = {}
    for t_start, t_end, t_sent, t_global, t_name, s_name, _s_start, _s_end, label, target_type in ordered:
        key = (t_sent, t_start, t_end)
        group = by_target.get(key)
        if group is None:
            group = by_target[key] = TargetGroup(t_name, t_sent, (t_start, t_end), t_global)
            groups.append(group)
        else:
            last = group.sources[-1]
            if last.name == s_name and last.relation == label:
                continue  # a repeated surface form of the same source: one query
        group.sources.append(source(s_name, label, target_type))

    # Step 5: document order; step 7's first test: no read for a target already written verbatim.
    groups.sort(key=lambda g: (g.sent_id, g.span[0]))
    words = list(itertools.chain.from_iterable(doc.sents))
    text = " ".join(words)
    starts = list(itertools.accumulate(map(_plus_one, map(len, words)), initial=0))
    for g in groups:
        # `target in " ".join(words[:read_point])`, without building the prefix
        g.in_pretext = text.find(g.target, 0, max(0, starts[g.read_point] - 1)) >= 0
    return ReadPlan(doc.ref, words, groups, text, starts, _needed_queries(groups))


_priority = operator.itemgetter(0)


def _top_query(ranked: list[tuple[int, Query]]) -> Query | None:
    """The top-priority query as the reference sorts them: by priority, ties by the query's JSON text."""
    if len(ranked) < 2:
        return ranked[0][1] if ranked else None
    best = min(map(_priority, ranked))
    tied = [q for p, q in ranked if p == best]
    return tied[0] if len(tied) == 1 else min(tied, key=_json_text)


@functools.lru_cache(maxsize=1 << 16)
def _json_text(query: Query) -> str:
    return json.dumps([query.subject, query.relation, query.object])


def finish_reads(plan: ReadPlan, results: Mapping[Query, list[str]]) -> list[ReadExample]:
    """Steps 7-9 of Algorithm 1, given every needed query's result (sorted distinct names)."""
    # Step 7: included sources per group (<= Q_thr results, not skipped), with their priorities.
    included: list[list[tuple[Query, list[str]]]] = []  # per group: (query, result) of its included sources
    top_query: list[Query | None] = []
    for g in plan.groups:
        inc, ranked = [], []
        if not g.in_pretext:
            for src in g.sources:
                if src.skipped:
                    continue
                res = results[src.query]
                if len(res) <= Q_THR:
                    inc.append((src.query, res))
                    ranked.append((len(res) if res else EMPTY_RESULT_PRIORITY, src.query))
        included.append(inc)
        top_query.append(_top_query(ranked))

    # Step 8: read points, de-duplicated by an identical top-priority query.
    kept: list[int] = []
    for gi, inc in enumerate(included):
        if inc and (not kept or top_query[kept[-1]] != top_query[gi]):
            kept.append(gi)

    # Step 9: one example per group with an included query; continuations end at the next kept point.
    words, ref = plan.words, plan.ref
    examples: list[ReadExample] = []
    for gi, g in enumerate(plan.groups):
        if not included[gi]:
            continue
        queries, query_results = [], []
        for query, res in included[gi]:  # in merge order
            if len(queries) == MAX_QUERIES:
                break
            if len(res) < Q_THR:
                queries.append(query)
                query_results.append(list(res))
        if not queries:
            continue
        if not any(query_results):
            # A read always returns something: the model learns to copy from memory.
            query_results = [[g.target] for _ in queries]
        at = bisect.bisect_right(kept, gi)  # the next kept read point after this group
        nxt = kept[at] if at < len(kept) else None
        next_point = plan.groups[nxt].read_point if nxt is not None else len(words)
        prefix = plan.span(0, g.read_point)
        first = not examples
        examples.append(
            ReadExample(
                doc=ref,
                ordinal=len(examples),
                read_point=g.read_point,
                target=g.target,
                pre_text="" if first else prefix,
                preapi_text=prefix if first else "",
                queries=queries,
                query_results=query_results,
                continuation=plan.span(g.read_point, next_point),
                eot=nxt is None,
            )
        )
    return examples


def gold_triples(doc: Document, relation_labels: Mapping[str, str]) -> Iterator[tuple[str, str, str]]:
    """A document's gold triples under every mention-name combination: what the reference's memory held."""
    for rel in doc.relations:
        label = relation_labels[rel.r]
        tails = dict.fromkeys(m.name for m in doc.entities[rel.t].mentions)
        for head in dict.fromkeys(m.name for m in doc.entities[rel.h].mentions):
            for tail in tails:
                yield (head, label, tail)


def build_read_examples(doc: Document, memory: Memory, relation_labels: Mapping[str, str]) -> list[ReadExample]:
    plan = plan_reads(doc, relation_labels)
    needed = plan.needed
    return finish_reads(plan, dict(zip(needed, memory.query_names(needed))))


__all__ = [
    "ReadPlan",
    "TargetGroup",
    "Source",
    "source",
    "plan_reads",
    "finish_reads",
    "build_read_examples",
    "gold_triples",
    "is_skipped",
    "query_key",
    "SKIP_QUERIES",
]
