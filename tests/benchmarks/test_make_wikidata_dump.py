"""`benchmarks/make_wikidata_dump.py`: a valid Wikidata dump, the embedded KB intact, real homonyms.

Small dumps (2,000 items embedding the shipped sample KB); the figures at scale belong to benchmarks/README.md.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from memllm.annotators.kb import KnowledgeBase, alias_key, is_time_key
from memllm.annotators.wikidata import DOCRED_PROPERTIES, parse_dump_line, time_key

from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "make_wikidata_dump.py"
SAMPLE = ROOT / "pipeline" / "sample" / "sample_wikidata.json"
ITEMS = 2000
TIME = re.compile(r"^[+-]\d{4,}-\d\d-\d\dT00:00:00Z$")
WORD = re.compile(r"[^\W\d_]+")

spec = importlib.util.spec_from_file_location("make_wikidata_dump", SCRIPT)
mwd = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = mwd  # dataclasses look their module up there
spec.loader.exec_module(mwd)


def make(out: Path, items: int = ITEMS, embed: Path = SAMPLE, *extra: str) -> dict:
    return mwd.main(["--items", str(items), "--embed", str(embed), "--output", str(out), *extra])


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().split("\n")


def entity_lines(lines: list[str]) -> list[str]:
    """The entity lines of a dump, without their trailing commas (checked to be there)."""
    assert lines[0] == "[" and lines[-2:] == ["]", ""], (lines[:1], lines[-2:])
    body = lines[1:-2]
    assert all(line.endswith(",") for line in body[:-1]) and not body[-1].endswith(",")
    return [line.removesuffix(",") for line in body]


def embedded_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [s.rstrip().removesuffix(",").rstrip() for s in f if s.strip() not in ("", "[", "]")]


def shares_a_name(label: str, words: set[str], keys: set[str]) -> bool:
    """The homonym test of the option's definition, written anew: same label, or a name word in common."""
    if alias_key(label) in keys:
        return True
    own = {w.casefold() for w in WORD.findall(label) if len(w) >= 3} - mwd.FIXED_WORDS
    return bool(own & words)


def homonym_share(entities: list, embedded_ids: set[str]) -> float:
    embedded = [e for e in entities if e.id in embedded_ids]
    keys = {alias_key(e.label) for e in embedded}
    words = {w.casefold() for e in embedded for w in WORD.findall(e.label) if len(w) >= 3} - mwd.FIXED_WORDS
    generated = [e for e in entities if e.id not in embedded_ids]
    return sum(shares_a_name(e.label, words, keys) for e in generated) / len(generated)


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    out = tmp_path_factory.mktemp("dump") / "dump.json.gz"
    summary = make(out)
    lines = entity_lines(read_lines(out))
    return out, summary, lines, [json.loads(line) for line in lines]


def test_every_line_is_an_item_with_an_english_label(dump):
    _, summary, lines, objects = dump
    assert len(lines) == ITEMS == summary["items"]
    entities = [parse_dump_line(line + ",") for line in lines]  # as a reader sees it, comma included
    assert all(e is not None and e.label for e in entities)
    assert all(o["labels"]["en"]["language"] == "en" for o in objects)
    ids = [e.id for e in entities]
    assert len(set(ids)) == len(ids)
    # Every item-valued object is an item of the dump: links lead somewhere, as in Wikidata.
    objects_ = {obj for e in entities for _, obj in e.facts if not is_time_key(obj)}
    assert objects_ <= set(ids)


def test_the_embedded_kb_is_there_unchanged_and_spread(dump):
    _, summary, lines, _ = dump
    expected = embedded_lines(SAMPLE)
    positions = {line: i for i, line in enumerate(lines)}
    assert all(line in positions for line in expected)
    assert summary["embedded"] == len(expected) and summary["generated"] == ITEMS - len(expected)
    where = sorted(positions[line] for line in expected)
    assert where[0] < ITEMS // 4 and where[-1] > 3 * ITEMS // 4  # not all at the start
    # In their own order, so a KB's items read back in its order.
    assert [lines[i] for i in where] == expected


def test_homonym_share_is_the_option(dump, tmp_path):
    _, summary, lines, _ = dump
    embedded_ids = {json.loads(line)["id"] for line in embedded_lines(SAMPLE)}
    share = homonym_share([parse_dump_line(line) for line in lines], embedded_ids)
    assert share == pytest.approx(0.3, abs=0.045)  # ~4 standard deviations of 1,984 draws
    assert share == pytest.approx(summary["homonym_share"], abs=1e-3)
    assert summary["homonyms_exact"] > 0 and summary["homonyms_partial"] > 0
    for rate in (0.0, 0.8):
        out = tmp_path / f"rate{rate}.json"
        make(out, 800, SAMPLE, "--homonym-rate", str(rate))
        entities = [parse_dump_line(line) for line in entity_lines(read_lines(out))]
        assert homonym_share(entities, embedded_ids) == pytest.approx(rate, abs=0.07)


def test_the_kb_built_from_it_has_homonyms_of_the_embedded_names(dump):
    _, _, lines, _ = dump
    kb = KnowledgeBase.from_entities(parse_dump_line(line) for line in lines)
    embedded = [parse_dump_line(line) for line in embedded_lines(SAMPLE)]
    ambiguous = [e for e in embedded if len(kb.candidates(alias_key(e.label))) > 1]
    assert len(ambiguous) >= len(embedded) // 2, [e.label for e in ambiguous]
    for e in ambiguous:
        assert e.id in kb.candidates(alias_key(e.label))
    # Other people with an embedded person's surname (partial homonyms): "Carla Fenwick", "X Fenwick".
    surnames = {"Fenwick", "Reilly", "Quill", "Vance"}
    labels = {e.label for e in embedded}
    namesakes = [i for i, name in kb.aliases() if name.split()[-1] in surnames and name not in labels]
    assert len(namesakes) > 10


def test_claims_are_docred_properties_in_wikidata_shapes(dump):
    _, summary, lines, objects = dump
    embedded_ids = {json.loads(line)["id"] for line in embedded_lines(SAMPLE)}
    odd = Counter()
    kinds = Counter()
    for obj, line in zip(objects, lines):
        if obj["id"] in embedded_ids:
            continue
        expected_facts = set()
        for prop, statements in obj["claims"].items():
            for st in statements:
                snak = st["mainsnak"]
                assert st["type"] == "statement" and snak["property"] == prop
                if prop not in DOCRED_PROPERTIES:
                    assert snak["datavalue"]["type"] == "string", (prop, st)  # the one unsupported shape
                    odd["string"] += 1
                    continue
                if snak["snaktype"] != "value":
                    odd[snak["snaktype"]] += 1
                    continue
                value, kind = snak["datavalue"]["value"], snak["datavalue"]["type"]
                kinds[kind] += 1
                if kind == "time":
                    assert set(value) == {"time", "timezone", "before", "after", "precision", "calendarmodel"}
                    assert TIME.match(value["time"]) and value["precision"] in (7, 8, 9, 10, 11), value
                    key = time_key(value["time"], value["precision"])
                else:
                    assert kind == "wikibase-entityid" and value["id"] == f"Q{value['numeric-id']}"
                    key = value["id"]
                if st["rank"] == "deprecated":
                    odd["deprecated"] += 1
                else:
                    expected_facts.add((prop, key))
        assert set(parse_dump_line(line).facts) == expected_facts
    assert odd == Counter(summary["odd_claims"]) and set(odd) == set(mwd.ODD_SHAPES)
    assert kinds["time"] > 0 and kinds["wikibase-entityid"] > kinds["time"]
    # The parser's skip counts match the odd shapes: snaks without a value always, strings when all
    # properties are kept; deprecated claims are ignored, not counted.
    generated = [line for obj, line in zip(objects, lines) if obj["id"] not in embedded_ids]
    assert sum(parse_dump_line(line).skipped_claims for line in generated) == odd["somevalue"] + odd["novalue"]
    assert sum(parse_dump_line(line, None).skipped_claims for line in generated) == (
        odd["somevalue"] + odd["novalue"] + odd["string"]
    )


def test_aliases_are_a_realistic_share(dump):
    _, summary, _, objects = dump
    with_aliases = [o for o in objects if o["aliases"].get("en")]
    assert 0.1 < len(with_aliases) / len(objects) < 0.4
    assert all(1 <= len(o["aliases"]["en"]) <= 3 for o in with_aliases if not o["id"].startswith("Q990"))
    assert summary["items_with_aliases"] > 0


def test_same_seed_same_bytes_other_seed_other_bytes(dump, tmp_path):
    out, _, _, _ = dump
    again = tmp_path / "again.json.gz"  # another name: the gzip header holds neither name nor time
    make(again)
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.json.gz"
    make(other, ITEMS, SAMPLE, "--seed", "1")
    assert other.read_bytes() != out.read_bytes()
    plain = tmp_path / "plain.json"  # not .gz: the same text, uncompressed
    make(plain)
    assert plain.read_bytes() == gzip.decompress(out.read_bytes())


def test_generated_ids_skip_the_embedded_ones(tmp_path):
    sample = embedded_lines(SAMPLE)
    embed = tmp_path / "low_ids.json"  # two sample items renumbered Q2 and Q4: ids a generated item would take
    renumbered = [sample[0].replace('"Q990001"', '"Q2"'), sample[1].replace('"Q990002"', '"Q4"')]
    embed.write_text("[\n" + ",\n".join(renumbered) + "\n]\n", encoding="utf-8")
    assert mwd.last_generated_id(8, {2, 4}) == 10
    out = tmp_path / "tiny.json"
    make(out, 10, embed)
    lines = entity_lines(read_lines(out))
    assert sorted(int(json.loads(line)["id"][1:]) for line in lines) == list(range(1, 11))
    assert set(renumbered) <= set(lines)


def test_cli(tmp_path):
    out, summary = tmp_path / "cli.json", tmp_path / "summary.json"
    args = [sys.executable, str(SCRIPT), "--items", "300", "--embed", str(SAMPLE), "--output", str(out)]
    done = subprocess.run([*args, "--json", str(summary)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "names shared with the embedded KB" in done.stdout
    assert json.loads(summary.read_text())["items"] == 300 == len(entity_lines(read_lines(out)))
    too_few = subprocess.run([*args[:3], "5", *args[4:]], capture_output=True, text=True, timeout=120)
    assert too_few.returncode != 0 and "fewer than" in too_few.stderr


def test_embedding_the_dev_kb(tmp_path):
    dev = shared_file("kb", "redocred_dev_wikidata.json")
    out = tmp_path / "dev.json.gz"
    summary = make(out, 15_000, dev)
    lines = entity_lines(read_lines(out))
    assert set(embedded_lines(dev)) <= set(lines)
    assert summary["embedded"] == 7303 and summary["homonym_share"] == pytest.approx(0.3, abs=0.03)
    assert summary["embedded_labels_shared"] > 300
