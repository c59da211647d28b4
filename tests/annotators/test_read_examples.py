"""Algorithm 1: the trace of docs/method.md §6.2, each quirk on a hand-made case, and the reference's golden output."""

import collections
import json

from memllm.annotators.read_examples import build_read_examples, finish_reads, is_skipped, plan_reads
from memllm.memory.exact import ExactMemory
from memllm.schemas.api import Query

from tests.conftest import gold_memory


def reads(docs, labels, i):
    return build_read_examples(docs[i], gold_memory(docs, labels), labels)


def test_method_doc_trace_targets(sample_docs, labels):
    # §12 item 10: targets are exactly [2019, Carla Fenwick, Dunmore, Ireland, Harbor Lane Press]
    exs = reads(sample_docs, labels, 0)
    assert [e.target for e in exs] == ["2019", "Carla Fenwick", "Dunmore", "Ireland", "Harbor Lane Press"]
    first = exs[0]
    assert (first.pre_text, first.preapi_text) == ("", "Lumen Vale is a")
    assert first.continuation == "2019 novel by" and not first.eot
    assert first.to_row()["text"] == "Lumen Vale is a({MEM_READ(Lumen Vale>>publication date>>)-->2019})2019 novel by({"
    assert exs[1].pre_text == "Lumen Vale is a 2019 novel by" and exs[1].preapi_text == ""
    assert exs[-1].eot and not exs[-1].to_row()["text"].endswith("({")


def test_skip_queries_are_direction_specific():
    # §12 item 12: (?, country, X) is skipped, (X, country, ?) is not; the plural label never matches.
    assert is_skipped(Query(None, "country", "Kessland"))
    assert not is_skipped(Query("Kessland", "country", None))
    assert is_skipped(Query("Kessland", "continent", None))
    assert not is_skipped(Query("Dunmore", "contains administrative territorial entities", None))


def test_skipped_queries_never_appear(sample_docs, labels):
    exs = reads(sample_docs, labels, 3) + reads(sample_docs, labels, 7)
    assert all(not is_skipped(q) for e in exs for q in e.queries)
    tova = [e for e in exs if e.target == "Tova Lind"][0]
    assert tova.queries == [Query(None, "record label", "Brightwater Records")]  # HEAD read
    assert "Europe" not in {e.target for e in exs}  # (Kessland, continent, ?) only: no read


def test_target_already_in_text_gets_no_read(sample_docs, labels):
    assert [e.target for e in reads(sample_docs, labels, 4)] == ["1998", "Port Amsel"]  # "Amsel" is in "Amsel Bridge"


def test_over_30_results_are_never_included(sample_docs, labels):
    exs = reads(sample_docs, labels, 5)  # (Northwind Tales, author, ?) has 31 answers
    assert [e.target for e in exs] == ["2020"]


def test_aliases_give_one_query_each(sample_docs, labels):
    gray = [e for e in reads(sample_docs, labels, 2) if e.target == "Gray Sea"][0]
    assert [q.subject for q in gray.queries] == ["Orin", "Orin River"]  # sorted by source name


def test_results_from_other_documents(sample_docs, labels):
    salt = reads(sample_docs, labels, 6)[0]
    assert salt.query_results[0] == ["Lumen Vale", "Salt Hours"]


def test_read_points_deduplicated_by_top_query(sample_docs, labels):
    exs = reads(sample_docs, labels, 8)
    assert [e.target for e in exs] == ["Glass Harbor", "Night Ferry", "2017"]
    # Night Ferry repeats Glass Harbor's top query: not a read point, so Glass Harbor's continuation runs past it.
    assert exs[0].continuation == "Glass Harbor and Night Ferry . Night Ferry came out in"
    assert exs[1].continuation == "Night Ferry . Night Ferry came out in"


def test_all_empty_results_fall_back_to_the_target(sample_docs, labels):
    doc = sample_docs[0]
    exs = build_read_examples(doc, ExactMemory(), labels)  # an empty memory
    assert exs and all(r == [e.target] for e in exs for r in e.query_results)


def test_results_at_q_thr_included_but_not_selected(sample_docs, labels):
    plan = plan_reads(sample_docs[0], labels)
    thirty = {q: [f"n{i:02d}" for i in range(30)] for q in plan.needed}
    assert finish_reads(plan, thirty) == []  # <= 30 makes a read point, < 30 is needed to be asked


def test_golden_reference_reproduced(dev, dev_docs, dev_memory_docs, labels):
    """Every reference example identical, none extra (4,250 on the whole split; 442 on the shipped subset,
    whose memory holds the rest of the split's triples that answer its queries)."""
    gold = dev.memread_examples()

    def key(doc_index, pre_text, preapi_text, queries, results, continuation, eot):
        return json.dumps([doc_index, pre_text, preapi_text, queries, [sorted(r) for r in results], continuation, eot])

    ref = collections.Counter(
        key(
            g["data_idx"], g["pre_text"], g["preapi_text"], g["queries"], g["query_result"], g["continuation"], g["eot"]
        )
        for g in gold
    )
    memory = gold_memory(dev_memory_docs, labels)
    ours = collections.Counter(
        key(
            e.doc.doc_index,
            e.pre_text,
            e.preapi_text,
            [[q.subject, q.relation, q.object] for q in e.queries],
            e.query_results,
            e.continuation,
            e.eot,
        )
        for d in dev_docs
        for e in build_read_examples(d, memory, labels)
    )
    assert sum(ref.values()) == dev.pick(4250, 442)
    assert ours == ref
