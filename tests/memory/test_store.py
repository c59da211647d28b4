"""The tables: uniqueness, stable ids, all-or-nothing batches, overwrite, deletion, persistence."""

from __future__ import annotations

import pytest
from memllm.memory.errors import MemoryUsageError
from memllm.memory.store import TripleStore

LUCA = "Luca Verdecchia"


def test_strings_and_triples_are_stored_once():
    s = TripleStore()
    r = s.add_triples([("a", "r", "b"), ("a", "r", "b"), ("b", "r", "a"), ("A", "r", "b")])
    assert r.added == 3  # the repeat inside the batch is a no-op; "A" and "a" are different strings
    assert r.new_entities == [(1, "a"), (2, "b"), (3, "A")] and r.new_relations == [(1, "r")]
    again = s.add_triples([("a", "r", "b"), ("b", "r", "a")])
    assert (again.added, again.new_entities, again.new_relations) == (0, [], [])
    assert s.counts() == {"entities": 3, "relation_types": 1, "triples": 3}


def test_triple_ids_are_stable_and_never_reused():
    s = TripleStore()
    s.add_triples([("a", "r", "b"), ("a", "r", "c")])
    assert [s.triple_id("a", "r", "b"), s.triple_id("a", "r", "c")] == [1, 2]
    assert s.delete_triples([2, 99]) == 1  # an unknown id is ignored
    s.add_triples([("a", "r", "d")])
    assert s.triple_id("a", "r", "d") == 3  # not 2
    assert s.triple_id("a", "r", "c") is None
    assert list(s.triples()) == [(1, "a", "r", "b"), (3, "a", "r", "d")]
    assert s.delete([("a", "r", "b"), ("x", "r", "y")]) == 1
    assert s.counts()["entities"] == 4  # entity rows stay (they keep their vectors)


@pytest.mark.parametrize("bad", [("a", "", "b"), ("a", "r", "   "), ("a", "r"), ("a", "r", None), "a>>r>>b"])
def test_a_bad_triple_rejects_the_whole_batch(bad):
    s = TripleStore()
    with pytest.raises(MemoryUsageError, match="item 1 of the batch"):
        s.add_triples([("a", "r", "b"), bad, ("c", "r", "d")])
    assert s.counts() == {"entities": 0, "relation_types": 0, "triples": 0}


def test_a_failing_before_commit_hook_rolls_the_batch_back():
    s = TripleStore()
    s.add_triples([("a", "r", "b")])

    def fail(new_entities, new_relations):
        assert new_entities == [(3, "c")] and new_relations == []
        raise RuntimeError("embedder crashed")

    with pytest.raises(RuntimeError):
        s.add_triples([("a", "r", "c")], before_commit=fail)
    assert s.counts() == {"entities": 2, "relation_types": 1, "triples": 1}
    assert s.add_triples([("a", "r", "c")]).new_entities == [(3, "c")]  # the id was not burnt


def test_overwrite_replaces_same_subject_and_relation():
    s = TripleStore()
    s.add_triples(
        [
            (LUCA, "place of birth", "Rome"),
            (LUCA, "child", "Ada"),
            (LUCA, "child", "Bo"),
            ("Rome", "place of birth", "x"),
        ]
    )
    rome = s.triple_id(LUCA, "place of birth", "Rome")
    # insert mode never replaces
    s.add_triples([(LUCA, "place of birth", "Milan")])
    milan = s.triple_id(LUCA, "place of birth", "Milan")
    assert s.conflicting_ids(LUCA, "place of birth", "Naples") == [rome, milan]
    r = s.add_triples([(LUCA, "place of birth", "Naples")], mode="overwrite")
    assert (r.added, sorted(r.deleted_ids)) == (1, [rome, milan])
    bo = s.triple_id(LUCA, "child", "Bo")
    # triples of one batch do not replace each other; the stored one not in the batch goes
    r = s.add_triples([(LUCA, "child", "Cy"), (LUCA, "child", "Ada")], mode="overwrite")
    assert (r.added, r.deleted_ids) == (1, [bo])
    assert sorted((h, rel, t) for _, h, rel, t in s.triples()) == [
        (LUCA, "child", "Ada"),
        (LUCA, "child", "Cy"),
        (LUCA, "place of birth", "Naples"),
        ("Rome", "place of birth", "x"),
    ]
    # re-asserting a stored triple deletes nothing
    assert s.add_triples([(LUCA, "child", "Ada"), (LUCA, "child", "Cy")], mode="overwrite").deleted_ids == []
    with pytest.raises(MemoryUsageError, match="write mode"):
        s.add_triples([("a", "r", "b")], mode="replace")


def test_rows_honour_direction_and_limit():
    s = TripleStore()
    s.add_triples([("p", "child", f"c{i:02d}") for i in range(40)] + [("q", "child", "c00")])
    p, child = s.entity_ids(["p"])["p"], s.relation_ids(["child"])["child"]
    assert len(s.rows_for_pair(p, child, tail_query=True, limit=31)) == 31
    assert s.rows_for_pair(p, child, tail_query=False, limit=31) == []
    c00 = s.entity_ids(["c00"])["c00"]
    heads = s.entity_names(o for _, o in s.rows_for_pair(c00, child, tail_query=False, limit=31))
    assert sorted(heads.values()) == ["p", "q"]
    assert sorted(n for _, n in s.exact_rows("c00", "child", tail_query=False, limit=31)) == ["p", "q"]
    assert s.exact_rows("c00", "nope", tail_query=False, limit=31) == []


def test_tables_survive_reopen(tmp_path):
    path = tmp_path / "m.sqlite"
    with TripleStore(path) as s:
        s.add_triples([("a", "r", "b"), ("b", "r2", "c")])
        s.delete_triples([1])
        s.set_meta("embedder", {"dim": 3})
    with TripleStore(path) as s:
        assert list(s.triples()) == [(2, "b", "r2", "c")]
        assert s.get_meta("embedder") == {"dim": 3}
        s.add_triples([("a", "r", "b")])
        assert s.triple_id("a", "r", "b") == 3


def test_open_errors(tmp_path):
    with pytest.raises(MemoryUsageError, match="no such directory"):
        TripleStore(tmp_path / "missing" / "m.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MemoryUsageError, match="not a memory database"):
        TripleStore(junk)
