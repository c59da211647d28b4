"""`memllm fill-memory`: a write adapter over the shipped sample, into `triples/` shards, then into a memory.

The model is the tiny random Mistral with a write adapter trained here for a few dozen steps on write calls
that always hold the same two triples: it learns the call's shape (so sentences give triples, some cut
differently from others by late stopping), not the sentences. The triples are junk; the plumbing is what
is tested: shards byte-identical across runners and on a resumed rerun (which decodes no finished chunk),
rows equal to `runtime.write.extract` on the same chunks, dead letters with their reasons, records in =
records out + rejected, and the memory built from the shards answering `memllm generate`'s reads.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from memllm.pipeline.cli import main

from tests.memory import conftest as memory_fixtures
from tests.trainer import conftest as trainer_fixtures
from tests.trainer.conftest import write_examples, write_shards

mistral_tokenizer_dir = trainer_fixtures.mistral_tokenizer_dir
tiny_mistral = trainer_fixtures.tiny_mistral
minilm_dir = memory_fixtures.minilm_dir

DECODING = ["--max-new-tokens", "32", "--docs-per-chunk", "3", "--torch-threads", "1"]
CHUNK_DOCS = 3
TRIPLES = [("River", "country", "Castle"), ("Novel", "author", "Poet")]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    """torch on one thread in this process too (see tests/conftest.py)."""


@pytest.fixture(scope="module")
def fill_adapter(tmp_path_factory, tiny_mistral) -> Path:
    """A write adapter that writes `({MEM_WRITE-->River>>country>>Castle;Novel>>author>>...})`-like calls."""
    from memllm.schemas.records import WriteExample, WriteTriple
    from memllm.trainer.config import DataSource, TrainConfig
    from memllm.trainer.recipe import train

    tmp = tmp_path_factory.mktemp("fill-adapter")
    examples = [
        WriteExample(
            e.doc, e.sent_id, e.pretext, e.focus, [WriteTriple(*t, 0, 1, "P17", k) for k, t in enumerate(TRIPLES)]
        )
        for e in write_examples(6, seed=3)
    ]
    data = write_shards(tmp / "data", "memory_write", "train", examples)
    out = tmp / "write-adapter"
    config = TrainConfig(
        data=[DataSource(data)],
        task="write",
        model=str(tiny_mistral),
        output=out,
        batch_size=8,
        micro_batch_size=8,
        max_steps=80,
        learning_rate=3e-2,
        save_every=1000,
        eval_split="none",
        progress=False,
        report_to=[],
        cache_dir=str(tmp / "cache"),
    )
    train(config)
    return out


def fill(out: Path, model: Path, adapter: Path, *args: str, inputs: list[Path] | None = None) -> int:
    argv = ["fill-memory", "-q", "--model", str(model), "--adapter", str(adapter), "--output", str(out)]
    for path in inputs or []:
        argv += ["--input", str(path)]
    return main([*argv, *DECODING, *args])


def digests(out: Path) -> dict[str, str]:
    """Every file a run writes but the card (it records the command line) and the resume cache."""
    return {
        str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "README.md" and "_resume" not in p.parts
    }


def read_rows(out: Path) -> list[dict]:
    shards = sorted((out / "triples").glob("*.parquet"))
    return [r for s in shards for r in pq.read_table(s).to_pylist()]


@pytest.fixture(scope="module")
def filled(tmp_path_factory, tiny_mistral, fill_adapter, sample_path) -> Path:
    out = tmp_path_factory.mktemp("filled")
    assert fill(out, tiny_mistral, fill_adapter, "--runner=FnApiRunner", inputs=[sample_path]) == 0
    return out


def test_sample_fills_triples_with_lineage_and_counts_that_add_up(filled, sample_path):
    stats = json.loads((filled / "stats.json").read_text())
    docs = json.loads(sample_path.read_text())
    sentences = sum(len(d["sents"]) for d in docs)
    assert stats["input.records"] == stats["documents.valid"] == stats["fill.documents"] == len(docs)
    assert stats["fill.sentences"] == sentences and stats["fill.chunks"] == 3  # 9 documents, 3 a chunk
    rows = read_rows(filled)
    assert rows and stats["fill.triples"] == stats["triples.train.rows"] == len(rows)
    assert [p.name for p in (filled / "triples").iterdir()] == ["train-00000-of-00001.parquet"]
    assert [r["id"] for r in rows] == sorted({r["id"] for r in rows})  # unique, sorted
    for r in rows:
        index = int(r["doc_id"].rsplit("-", 1)[1])
        assert r["id"] == f"{r['doc_id']}/s{r['sent_id']:04d}t{r['triple_index']:03d}"
        assert r["doc_index"] == index and r["title"] == docs[index]["title"] and r["split"] == "train"
        assert r["sentence"] == " ".join(docs[index]["sents"][r["sent_id"]])
        assert r["head"] and r["relation"] and r["tail"]
    assert not (filled / "errors").exists() or not any((filled / "errors").iterdir())
    card = (filled / "README.md").read_text()
    assert "memllm fill-memory" in card and "config_name: triples" in card


def test_rows_are_what_extract_gives_for_the_same_sentences(filled, tiny_mistral, fill_adapter, sample_path):
    """The cross-check through the pure function: each chunk of 3 documents decoded by `extract` alone."""
    from memllm.runtime.model import MemLLM
    from memllm.runtime.write import extract

    docs = json.loads(sample_path.read_text())
    mm = MemLLM.from_pretrained(str(tiny_mistral), write_adapter=str(fill_adapter), device="cpu")
    expected = []
    for start in range(0, len(docs), CHUNK_DOCS):
        chunk = [[" ".join(words) for words in d["sents"]] for d in docs[start : start + CHUNK_DOCS]]
        for w in extract(mm, chunk, 16, max_new_tokens=32, first_index=start):
            expected += [(w.text_index, w.sentence_index, *t) for t in w.triples]
    got = [(r["doc_index"], r["sent_id"], r["head"], r["relation"], r["tail"]) for r in read_rows(filled)]
    assert got == expected


def test_multi_processing_gives_the_same_bytes(filled, tiny_mistral, fill_adapter, sample_path, tmp_path):
    out = tmp_path / "mp"
    mp = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert fill(out, tiny_mistral, fill_adapter, *mp, inputs=[sample_path]) == 0
    assert digests(out) == digests(filled)


def test_a_rerun_resumes_finished_chunks_without_decoding_them(
    filled, tiny_mistral, fill_adapter, sample_path, tmp_path, monkeypatch
):
    import memllm.pipeline.fill_memory as fill_memory

    out = tmp_path / "resumed"
    shutil.copytree(filled, out)
    first = digests(filled)
    saved = sorted((out / "_resume").rglob("*.pkl"))
    assert len(saved) == 3, "each finished chunk is kept"
    # as after an interruption: the tables and stats about to be written, one chunk not yet decoded
    shutil.rmtree(out / "triples")
    (out / "stats.json").unlink()
    saved[0].unlink()
    loads = []
    real = fill_memory.load_write_model
    monkeypatch.setattr(fill_memory, "load_write_model", lambda *a: loads.append(a) or real(*a))
    assert fill(out, tiny_mistral, fill_adapter, "--runner=FnApiRunner", inputs=[sample_path]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats.pop("resume.chunks_reused") == 2 and len(loads) == 1  # one chunk decoded again
    assert stats == json.loads((filled / "stats.json").read_text())  # replayed counts add up
    assert {k: v for k, v in digests(out).items() if k != "stats.json"} == {
        k: v for k, v in first.items() if k != "stats.json"
    }

    # every chunk finished: nothing is decoded, no model is even loaded
    monkeypatch.setattr(fill_memory, "load_write_model", lambda *a: pytest.fail("a resumed run loads no model"))
    assert fill(out, tiny_mistral, fill_adapter, "--runner=FnApiRunner", inputs=[sample_path]) == 0
    assert json.loads((out / "stats.json").read_text())["resume.chunks_reused"] == 3
    assert {k: v for k, v in digests(out).items() if k != "stats.json"} == {
        k: v for k, v in first.items() if k != "stats.json"
    }

    # other decoding options: another fingerprint, nothing reused (and the old cache is removed)
    monkeypatch.setattr(fill_memory, "load_write_model", real)
    assert fill(out, tiny_mistral, fill_adapter, "--runner=FnApiRunner", "--k", "4", inputs=[sample_path]) == 0
    assert "resume.chunks_reused" not in json.loads((out / "stats.json").read_text())
    assert len(list((out / "_resume").iterdir())) == 1


def test_bad_documents_become_dead_letters_with_the_reason(
    tiny_mistral, fill_adapter, sample_path, tmp_path, monkeypatch
):
    """Invalid records (the DocRED source's validation, damaged JSON) and a document whose decoding raises
    (its chunk is decoded document by document: the others of the chunk keep their triples)."""
    import memllm.pipeline.fill_memory as fill_memory

    docs = json.loads(sample_path.read_text())
    poison = dict(docs[1], sents=[*docs[1]["sents"], ["POISON", "."]])
    bad_index = dict(docs[3], labels=[{"h": 0, "t": 99, "r": "P17", "evidence": []}])
    # records 0-2 (one chunk): a document, the poisoned one, a document; 3: invalid; 4: not an object
    parts = [json.dumps(d) for d in (docs[0], poison, docs[2], bad_index)] + ["[1, 2]"]
    parts += [json.dumps(d) for d in docs[4:]] + ['{"title": "cut", "sents": [["x"]']
    path = tmp_path / "broken_train.json"
    path.write_text("[" + ",\n".join(parts) + "]")

    real = fill_memory.extract

    def extract(mm, texts, *args, **kwargs):
        if any("POISON ." in s for sents in texts for s in sents):
            raise ValueError("this document cannot be decoded")
        return real(mm, texts, *args, **kwargs)

    monkeypatch.setattr(fill_memory, "extract", extract)
    out = tmp_path / "out"
    assert fill(out, tiny_mistral, fill_adapter, "--runner=FnApiRunner", inputs=[path]) == 0
    stats = json.loads((out / "stats.json").read_text())
    errors = [json.loads(line) for f in sorted((out / "errors").iterdir()) for line in f.read_text().splitlines()]
    reasons = sorted((e["step"], e["reason"].split(" ")[0]) for e in errors)
    assert reasons == [("fill", "decoding"), ("read", "invalid"), ("validate", "a"), ("validate", "labels[0].t")]
    assert [e for e in errors if e["step"] == "fill"][0]["source"].endswith("broken_train.json#1")
    assert all(e["split"] == "train" for e in errors)
    assert stats["input.records"] == stats["documents.valid"] + stats["validate.rejected"]
    assert stats["documents.valid"] == stats["fill.documents"] + stats["fill.rejected"] == 8
    assert stats["fill.rejected"] == 1 and stats["errors.train.rows"] == 4
    rows = read_rows(out)
    assert {r["doc_index"] for r in rows} >= {0, 2}  # the poisoned document's chunk-mates kept theirs
    assert 1 not in {r["doc_index"] for r in rows}


def test_user_mistakes_are_one_line_errors(tiny_mistral, fill_adapter, sample_path, tmp_path, capsys):
    cases = [
        (["--adapter", str(tmp_path / "none")], "adapter"),
        (["--sections", "full"], "--sections needs --source wikipedia"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--no_such_beam_option"], "unknown option"),
    ]
    for args, message in cases:
        argv = ["fill-memory", "--model", str(tiny_mistral), "--adapter", str(fill_adapter)]
        argv += ["--input", str(sample_path), "--output", str(tmp_path / "out"), *args]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_wikipedia_articles_are_split_into_sentences(tiny_mistral, fill_adapter, tmp_path, nlp):
    from memllm.pipeline.cli import WIKIPEDIA_SAMPLE
    from memllm.pipeline.cli import sample_path as shipped

    out = tmp_path / "wiki"
    wiki = ["--source", "wikipedia", "--runner=FnApiRunner"]
    assert fill(out, tiny_mistral, fill_adapter, *wiki, inputs=[Path(shipped(WIKIPEDIA_SAMPLE))]) == 0
    stats = json.loads((out / "stats.json").read_text())
    articles = [json.loads(line) for line in Path(shipped(WIKIPEDIA_SAMPLE)).read_text().splitlines() if line]
    assert stats["input.records"] == len(articles)
    assert stats["input.records"] == stats["documents.valid"] + stats["read_text.rejected"]
    assert stats["documents.valid"] == stats["fill.documents"] and stats["fill.sentences"] > stats["fill.documents"]
    rows = read_rows(out)
    ids = {str(a.get("id")) for a in articles if isinstance(a, dict)}
    assert rows and {r["doc_id"] for r in rows} <= ids and {r["source"] for r in rows} == {"wikipedia"}


def test_generate_reads_against_a_memory_the_write_model_filled(filled, minilm_dir, sample_path, tmp_path, capsys):
    """fill-memory → memory build --from → generate --memory embedding --memory-path: the memory is opened as
    it is (not rebuilt from the input's gold triples), and the read examples are made against it."""
    from memllm.memory.embedding_memory import DB_FILE
    from memllm.memory.sources import table_triples

    memory = tmp_path / "memory"
    model = ["--embedding-model", str(minilm_dir)]
    assert main(["memory", "build", "--from", str(filled / "triples"), "--memory-path", str(memory), *model]) == 0
    distinct = set(table_triples(filled / "triples"))
    assert f"memory {memory}: {len(distinct):,} triples" in capsys.readouterr().out
    before = hashlib.md5((memory / DB_FILE).read_bytes()).hexdigest()

    out = tmp_path / "generated"
    argv = ["generate", "-q", "--runner=FnApiRunner", "--output", str(out), "--input", str(sample_path)]
    assert main([*argv, "--memory", "embedding", "--memory-path", str(memory), *model]) == 0
    assert hashlib.md5((memory / DB_FILE).read_bytes()).hexdigest() == before  # opened as it is
    stats = json.loads((out / "stats.json").read_text())
    assert stats["memory_read.examples"] > 0 and stats["memory_read.queries_asked"] > 0
    rows = [r for s in sorted((out / "memory_read").glob("*.parquet")) for r in pq.read_table(s).to_pylist()]
    stored = {x for h, r, t in distinct for x in (h, t)}
    for row in rows:  # answers come from the filled memory (all-empty results are replaced by the target)
        answers = {a for results in row["query_results"] for a in results}
        assert answers <= stored or row["query_results"] == [[row["target"]]] * len(row["queries"]), row
