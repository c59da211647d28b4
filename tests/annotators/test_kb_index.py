"""The memory-mapped KB index: the same answers as `KnowledgeBase`, collisions, determinism, reuse, pickling,
and lookups in a process whose data limit is below the index's size."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from memllm.annotators import kb_index
from memllm.annotators.kb import KB_ENTITY_SCHEMA, KB_FACT_SCHEMA, KnowledgeBase, alias_key
from memllm.annotators.kb_index import KBIndex, blake2b_64, build_kb_index
from memllm.annotators.wikidata import WikidataEntity, parse_dump_line

from tests.conftest import shared_file

TIME = "+1963-03-13T00:00:00Z/11"


# -- helpers ----------------------------------------------------------------------------------------------
def write_kb(kb_dir: Path, entities: pa.Table, facts: pa.Table, shards: int = 1) -> Path:
    """The KB tables as BuildKB writes them: `entities/*.parquet`, `facts/*.parquet`, `shards` files each."""
    for name, table in (("entities", entities), ("facts", facts)):
        (kb_dir / name).mkdir(parents=True, exist_ok=True)
        per = -(-table.num_rows // shards) if table.num_rows else 1
        for k in range(shards):
            part = table.slice(k * per, per)
            pq.write_table(part, kb_dir / name / f"kb-{k:05d}-of-{shards:05d}.parquet")
    return kb_dir


def kb_of_dump(path: Path) -> KnowledgeBase:
    with open(path, "rb") as f:
        return KnowledgeBase.from_entities(e for e in map(parse_dump_line, f) if e is not None)


def index_of(kb: KnowledgeBase, tmp_path: Path, **build) -> KBIndex:
    kb_dir = write_kb(tmp_path / "kb", kb.entity_table(), kb.fact_table(), shards=2)
    build_kb_index(kb_dir, **build)
    return KBIndex.open(kb_dir / "index")


def variants(text: str) -> list[str]:
    return [text, text.lower(), text.upper(), f" {text} ", text.replace(" ", "  "), text + "x", text[:-1]]


def assert_same(index: KBIndex, kb: KnowledgeBase) -> None:
    """Every lookup of `kb` answered alike: all alias keys, ids, fact pairs, time values, names, and misses."""
    facts = kb.fact_table().to_pydict()
    entity_ids = kb.entity_table().column("id").to_pylist()
    ids = sorted(set(entity_ids) | set(facts["subject"]) | set(facts["object"]))
    missing = ["Q0", "Q", "", "q1", "Q1 ", "P17", "+1963-03-13T00:00:00Z/9", "\ud800"]
    assert len(index) == len(kb) and index.num_facts == kb.num_facts
    keys = sorted(kb.alias_keys()) + [alias_key(i) for i in ids] + ["", "nosuchname", "\ud800"]
    assert index.candidates_many(keys) == kb.candidates_many(keys) == [kb.candidates(k) for k in keys]
    assert index.candidates_many([]) == []
    for key in keys[:2000]:
        assert index.candidates(key) == kb.candidates(key), key
    for i in ids + missing:
        assert (i in index) == (i in kb), i
        assert index.label(i) == kb.label(i), i
        assert index.names(i) == kb.names(i), i
        assert index.facts(i) == kb.facts(i), i
        assert index.neighbours(i) == kb.neighbours(i), i
        assert index.has_time(i) == kb.has_time(i), i
    rng = random.Random(0)
    pairs = list(zip(facts["subject"], facts["object"]))
    if ids:  # both directions of every fact, and random pairs (mostly without a fact)
        pairs += [(o, s) for s, o in pairs] + [(rng.choice(ids), rng.choice(ids)) for _ in range(500)]
    for s, o in pairs + [("Q0", "Q1"), ("", "")]:
        assert index.facts_between(s, o) == kb.facts_between(s, o), (s, o)
    for _, name in kb.aliases():
        for text in variants(name):
            assert index.is_exact_form(text) == kb.is_exact_form(text), text
    assert not index.is_exact_form("no such name at all")
    assert sorted(index.aliases()) == sorted(kb.aliases())
    assert sorted(index.alias_keys()) == sorted(kb.alias_keys())


def synthetic_tables(n: int, pad: str = "") -> tuple[pa.Table, pa.Table]:
    """n entities: labels shared by three consecutive ids (Q9, Q10, Q11: id order is not string order),
    two aliases each, five facts each (one to a time value)."""
    ids = [f"Q{i}" for i in range(n)]
    labels = [f"Person {i // 3} Smith{pad}" for i in range(n)]
    aliases = [[f"P. {i} Smith{pad}", f"the Smith number {i}"] for i in range(n)]
    subjects = [f"Q{i}" for i in range(n) for _ in range(5)]
    properties = [f"P{17 + j}" for _ in range(n) for j in range(5)]
    objects = [
        f"+{1900 + i % 100}-00-00T00:00:00Z/9" if j == 4 else f"Q{(i * 7 + j * 13 + 1) % n}"
        for i in range(n)
        for j in range(5)
    ]
    entities = pa.table([ids, labels, aliases], schema=KB_ENTITY_SCHEMA)
    return entities, pa.table([subjects, properties, objects], schema=KB_FACT_SCHEMA)


def index_files(index_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(index_dir.iterdir()) if p.is_file()}


# -- equivalence with KnowledgeBase ----------------------------------------------------------------------
def test_sample_kb_answers_as_the_knowledge_base(sample_path, tmp_path):
    kb = kb_of_dump(sample_path.with_name("sample_wikidata.json"))
    assert len(kb) > 10 and kb.num_facts > 10
    assert_same(index_of(kb, tmp_path), kb)


def test_dev_kb_answers_as_the_knowledge_base(tmp_path, monkeypatch):
    kb = kb_of_dump(shared_file("kb", "redocred_dev_wikidata.json"))
    monkeypatch.setattr(kb_index, "BATCH_ROWS", 1000)  # rows found across several record batches
    index = index_of(kb, tmp_path, memory_mb=1)
    assert index.manifest["counts"]["entities"] == len(kb) > 5000
    assert_same(index, kb)


HOMONYMS = [
    WikidataEntity("Q10", "Paris", ("City of Light", "paris"), (("P17", "Q142"), ("P1376", "Q142"))),
    WikidataEntity("Q11", "Paris", ("Paris, Texas",), (("P131", "Q3"), ("P17", "Q30"))),
    WikidataEntity("Q9", "Paris Hilton", ("Paris",), (("P569", "+1981-02-17T00:00:00Z/11"),)),
    WikidataEntity("Q142", "France", ("French Republic", "la France"), (("P36", "Q10"),)),
    WikidataEntity("Q30", "United States", ("the United States", "U.S.", "US", "the States"), ()),
    WikidataEntity("Q1000", "The States", ("States",), (("P17", "Q30"),)),
    WikidataEntity("Q3", "Texas", ("TX", "texas"), (("P17", "Q30"), ("P17", "Q30"))),
    WikidataEntity("Q5", 'Wilfried " Willi " Schneider', ("Schneider",), (("P569", TIME),)),
    WikidataEntity("Q6", 'Wilfried "Willi" Schneider', ("W. Schneider",), (("P569", TIME), ("P26", "Q5"))),
    WikidataEntity("Q7", "New York", ("NEW  YORK", "new york", "NewYork"), (("P31", "Q7"),)),
    WikidataEntity("Q8", "1,500 metres", ("1500 metres", "Alger\u2019s"), ()),
    WikidataEntity("Q12", None, ("Nameless", "   "), (("P17", "Q142"),)),
    WikidataEntity("Q13", "", ("Empty label",), ()),
    WikidataEntity("Q14", None, (), ()),
    WikidataEntity("L1", "Lexeme-like id", ("x",), ()),
]


def test_homonyms_aliases_and_variants(tmp_path):
    kb = KnowledgeBase.from_entities(HOMONYMS)
    index = index_of(kb, tmp_path)
    assert_same(index, kb)
    # Several ids with one name, and a name that is another entity's alias, in the KB's (numeric) id order.
    assert index.candidates(alias_key("PARIS")) == ("Q9", "Q10", "Q11")
    assert index.candidates(alias_key("the united states")) == ("Q30",)
    assert index.candidates(alias_key("The States")) == ("Q30", "Q1000")
    assert index.candidates(alias_key("new york")) == ("Q7",) and index.names("Q7")[0] == "New York"
    assert index.candidates(alias_key('Wilfried "Willi" Schneider')) == ("Q5", "Q6")
    assert index.candidates(alias_key("1500 metres")) == ("Q8",) and index.candidates("alger's") == ("Q8",)
    assert index.candidates("") == () and index.label("Q12") is None and index.label("Q13") == ""
    assert index.names("Q12") == ("Nameless", "   ") and index.is_exact_form("")
    assert "Q14" in index and index.names("Q14") == () and "Q142" in index and "Q0" not in index
    assert index.facts_between("Q10", "Q142") == ("P1376", "P17") and index.facts_between("Q142", "Q10") == ("P36",)
    assert index.neighbours("Q30") == {"Q11", "Q3", "Q1000"} and index.neighbours("Q7") == frozenset()
    assert index.has_time(TIME) and not index.has_time("Q5") and TIME not in index
    assert index.is_exact_form("NewYork") and index.is_exact_form("New York") and not index.is_exact_form("newyork2")


def test_rows_the_knowledge_base_cannot_hold_are_dropped_and_counted(tmp_path):
    kb = KnowledgeBase.from_entities(HOMONYMS)
    entities, facts = kb.entity_table(), kb.fact_table()
    # Two files: Q3 again in the second (its last row wins, as in the KB of the concatenated files), rows with
    # nulls, repeated facts, a fact whose subject is no entity (kept, as the KB keeps it).
    extra_entities = pa.table(
        [["Q3", None, "Q20"], ["Texas, again", "no id", "Twenty"], [["TX"], ["x"], ["XX", None, "XX", "Twenty"]]],
        schema=KB_ENTITY_SCHEMA,
    )
    extra_facts = pa.table(
        [["Q3", "Q3", None, "Q404", "Q20"], ["P17", None, "P1", "P17", "P17"], ["Q30", "Q1", "Q1", "Q20", None]],
        schema=KB_FACT_SCHEMA,
    )
    kb_dir = tmp_path / "kb"
    write_kb(kb_dir, entities, facts)
    pq.write_table(extra_entities, kb_dir / "entities" / "kb-00001-of-00002.parquet")
    pq.write_table(extra_facts, kb_dir / "facts" / "kb-00001-of-00002.parquet")
    manifest = build_kb_index(kb_dir)
    all_entities = pa.concat_tables([entities, extra_entities])
    rows = all_entities.filter(pc.is_valid(all_entities["id"])).to_pydict()
    rows["aliases"] = [[a for a in aliases if a is not None] for aliases in rows["aliases"]]
    expected = KnowledgeBase.from_tables(
        pa.table(rows, schema=KB_ENTITY_SCHEMA), pa.concat_tables([facts, extra_facts]).drop_null()
    )
    index = KBIndex(kb_dir / "index")
    assert_same(index, expected)
    assert index.label("Q3") == "Texas, again" and index.names("Q20") == ("Twenty", "XX")
    assert index.facts("Q404") == (("P17", "Q20"),) and "Q404" not in index and index.neighbours("Q20") == {"Q404"}
    assert manifest["dropped"] == {
        "entity_rows_null_id": 1,
        "entity_rows_repeated_id": 1,
        "aliases_null": 1,
        "names_repeated": 2,  # XX twice, and the alias Twenty = the label
        "fact_rows_null": 3,
        "facts_repeated": 1,  # (Q3, P17, Q30) in both files
    }
    assert manifest["counts"]["facts_subject_not_entity"] == 1
    assert manifest["counts"]["names_empty_key"] == 1  # "   "


def test_empty_kb(tmp_path):
    kb = KnowledgeBase.from_entities([])
    index = index_of(kb, tmp_path)
    assert len(index) == 0 and index.num_facts == 0
    assert index.candidates_many(["a", ""]) == [(), ()] and not index.is_exact_form("a")
    assert index.facts("Q1") == () and index.neighbours("Q1") == frozenset() and "Q1" not in index


# -- hash collisions --------------------------------------------------------------------------------------
def weak_hash(strings):
    # 2 top bits (so there are still partitions) and 2 low bits: 16 values for every string there is.
    return blake2b_64(strings) & np.uint64(0xC000000000000003)


def test_forced_hash_collisions_change_no_answer(tmp_path, monkeypatch, sample_path):
    monkeypatch.setitem(kb_index.HASHES, "weak", weak_hash)
    monkeypatch.setitem(kb_index.HASHES, "constant", lambda strings: np.zeros(len(strings), dtype=np.uint64))
    sample = kb_of_dump(sample_path.with_name("sample_wikidata.json"))
    homonyms = KnowledgeBase.from_entities(HOMONYMS)
    for name, kb in (("weak", sample), ("weak", homonyms), ("constant", homonyms)):
        index = index_of(kb, tmp_path / name / str(len(kb)), hash_name=name, memory_mb=1)
        assert index.manifest["hash"] == name
        hashes = np.asarray(index._key_hash)
        assert len(np.unique(hashes)) <= 16 < len(hashes)  # collisions did happen
        assert_same(index, kb)


def test_hash_is_stable():
    # The hash is part of the file format: a change would make old indexes answer wrongly.
    strings = ["Q42", "", "Paris", "\u00e9t\u00e9"]
    expected = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big") for s in strings]
    assert blake2b_64(strings).tolist() == expected and blake2b_64([]).dtype == np.uint64


# -- determinism, bounded build, reuse --------------------------------------------------------------------
def test_partitioning_and_input_order_do_not_change_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(kb_index, "BATCH_ROWS", 4096)  # string files of many batches, across partitions
    entities, facts = synthetic_tables(20_000)
    small = build_kb_index(write_kb(tmp_path / "a", entities, facts, shards=3), memory_mb=1)
    order = np.random.default_rng(0).permutation
    shuffled = entities.take(order(entities.num_rows)), facts.take(order(facts.num_rows))
    large = build_kb_index(write_kb(tmp_path / "b", *shuffled, shards=2), memory_mb=4096)
    assert small["build"]["partitions"] >= 16 and large["build"]["partitions"] == 1
    a, b = index_files(tmp_path / "a" / "index"), index_files(tmp_path / "b" / "index")
    manifest_a, manifest_b = json.loads(a.pop("manifest.json")), json.loads(b.pop("manifest.json"))
    assert sorted(a) == sorted(b) == sorted(kb_index._FILES)
    assert [name for name in a if a[name] != b[name]] == []  # byte-identical
    assert {k: v for k, v in manifest_a.items() if k != "inputs"} == {
        k: v for k, v in manifest_b.items() if k != "inputs"
    }
    assert manifest_a["counts"]["entities"] == 20_000 and manifest_a["counts"]["facts"] == 100_000


def test_an_index_of_the_same_files_is_reused(tmp_path):
    entities, facts = synthetic_tables(300)
    kb_dir = write_kb(tmp_path / "kb", entities, facts)
    out = tmp_path / "elsewhere"
    first = build_kb_index(kb_dir, out)
    stamp = (out / "names.arrow").stat().st_mtime_ns
    again = build_kb_index(kb_dir, out, memory_mb=1)
    assert again["build"] == {"reused": True} and (out / "names.arrow").stat().st_mtime_ns == stamp
    assert {k: v for k, v in again.items() if k != "build"} == {k: v for k, v in first.items() if k != "build"}
    assert not any(p.name.startswith(".build") for p in out.iterdir())
    write_kb(kb_dir, entities.slice(1), facts)  # a different input file: built again
    assert build_kb_index(kb_dir, out)["build"]["reused"] is False and len(KBIndex(out)) == 299


def test_an_index_made_with_another_alias_key_is_refused(tmp_path):
    entities, facts = synthetic_tables(30)
    kb_dir = write_kb(tmp_path / "kb", entities, facts)
    build_kb_index(kb_dir)
    manifest = json.loads((kb_dir / "index" / "manifest.json").read_text())
    manifest["alias_key_probe"] = "0" * 16
    (kb_dir / "index" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="alias_key"):
        KBIndex(kb_dir / "index")
    assert build_kb_index(kb_dir)["build"]["reused"] is False and len(KBIndex(kb_dir / "index")) == 30
    with pytest.raises(FileNotFoundError):
        KBIndex(tmp_path)


def test_pickling_keeps_only_the_directory(tmp_path):
    kb = KnowledgeBase.from_entities(HOMONYMS)
    index = index_of(kb, tmp_path)
    data = pickle.dumps(index)
    assert len(data) < 300 and b"Paris" not in data
    clone = pickle.loads(data)
    assert clone.index_dir == index.index_dir and clone.candidates(alias_key("paris")) == ("Q9", "Q10", "Q11")
    assert_same(clone, kb)


# -- a KB bigger than the process may hold ----------------------------------------------------------------
LOOKUPS = r"""
import json, resource, sys
index_dir, index_bytes, n, pad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
from memllm.annotators.kb import alias_key
from memllm.annotators.kb_index import KBIndex

def status():
    rows = (line.split(":") for line in open("/proc/self/status"))
    return {k: int(v.split()[0]) << 10 for k, v in rows if k in ("VmData", "RssAnon", "RssFile")}

# RLIMIT_DATA counts the heap and private writable mappings, not read-only file mappings: the limit is what
# the interpreter holds now plus a margin for the lookups' own objects, well below the index's size.
limit = status()["VmData"] + (32 << 20)
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
try:
    bytearray(index_bytes)
    sys.exit("the limit does not bind")
except MemoryError:
    pass
kb = KBIndex(index_dir)
wrong = 0
for start in range(0, n, 5000):  # every alias key of every entity, and every entity's facts
    batch = range(start, min(n, start + 5000))
    keys = [alias_key(text) for i in batch for text in (f"P. {i} Smith{pad}", f"Person {i // 3} Smith{pad}")]
    found = iter(kb.candidates_many(keys))
    for i in batch:
        group = tuple(f"Q{g}" for g in range(i // 3 * 3, min(n, i // 3 * 3 + 3)))
        wrong += next(found) != (f"Q{i}",)
        wrong += next(found) != group
for i in range(0, n, 5):
    wrong += kb.facts_between(f"Q{i}", f"Q{(i * 7 + 14) % n}") != ("P18",) or f"Q{i}" not in kb
    wrong += f"Q{(i * 7 + 1) % n}" not in kb.neighbours(f"Q{i}")
    wrong += kb.label(f"Q{i}") != f"Person {i // 3} Smith{pad}"
    wrong += kb.facts(f"Q{i}")[0] != ("P17", f"Q{(i * 7 + 1) % n}")
print(json.dumps({"limit": limit, "wrong": wrong, **status()}))
"""


def test_lookups_within_a_data_limit_below_the_index_size(tmp_path):
    # Long names make the index big (~2.5x the interpreter's data) at little cost to build.
    n, pad = 150_000, " of the Royal Society for Rather Long Entity Names" * 6
    entities, facts = synthetic_tables(n, pad)
    kb_dir = write_kb(tmp_path / "kb", entities, facts, shards=2)
    del entities, facts
    manifest = build_kb_index(kb_dir)
    size = manifest["bytes"]
    env = {**os.environ, "ARROW_DEFAULT_MEMORY_POOL": "system", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", LOOKUPS, str(kb_dir / "index"), str(size), str(n), pad],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report["wrong"] == 0
    assert report["limit"] < size, (report, size)  # the index does not fit under the limit
    assert report["RssAnon"] < report["limit"]
