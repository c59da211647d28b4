"""Tokenization and loss masks with the real Mistral-7B tokenizer (docs/method.md §3, §6.1, §6.3, §12.1/3/7)."""

from __future__ import annotations

import pytest
from memllm.schemas import api
from memllm.schemas.records import DocRef, ReadExample, WriteExample, WriteTriple
from memllm.trainer import formats
from memllm.trainer.tokenization import (
    IGNORE,
    SKIP_TRIPLES,
    SKIP_TRUNCATED,
    Encoder,
    load_tokenizer,
    prepare_tokenizer,
)

from tests.trainer.conftest import read_examples, write_examples


@pytest.fixture(scope="module")
def mistral(mistral_tokenizer_dir):
    tok = load_tokenizer(str(mistral_tokenizer_dir))
    return tok, prepare_tokenizer(tok)


def encode(tok, info, rows, task, **kw) -> list[dict]:
    batch = {k: [r[k] for r in rows] for k in rows[0]}
    out = Encoder(tok, info, task, **kw)(batch)
    return [{k: out[k][i] for k in out} for i in range(len(rows))]


def trained_runs(ex: dict) -> list[list[int]]:
    """Contiguous runs of trained token ids."""
    runs, cur = [], []
    for tid, label in zip(ex["input_ids"], ex["labels"]):
        if label != IGNORE:
            assert label == tid
            cur.append(tid)
        elif cur:
            runs.append(cur)
            cur = []
    return runs + ([cur] if cur else [])


def test_special_tokens_keep_the_mistral_vocabulary(mistral):
    tok, info = mistral
    assert len(tok) == 32000 and info.vocab_before == info.vocab_after == 32000
    assert info.new_token_ids == []
    assert info.special_ids == {"({": 2882, "})": 1542, "-->": 26345}
    assert (info.pad_id, info.bos_id, info.eos_id) == (0, 1, 2)
    # Registered as special, so `({MEM_WRITE` can never merge `({` with what follows.
    assert tok("x({MEM_WRITE-->a})", add_special_tokens=False)["input_ids"][1:3] == [
        2882,
        tok.convert_tokens_to_ids("MEM"),
    ]


def test_write_loss_covers_exactly_the_call_and_eos(mistral):
    tok, info = mistral
    exs = write_examples(3, seed=5)
    for ex, enc in zip(exs, encode(tok, info, [e.to_row() for e in exs], "write")):
        assert enc["skip"] == "" and enc["input_ids"][0] == 1 and enc["labels"][0] == IGNORE
        runs = trained_runs(enc)
        assert len(runs) == 1
        call = api.render_write_call(t.names for t in ex.triples)
        assert tok.decode(runs[0]) == call + "</s>"


def test_read_loss_covers_exactly_the_trained_segments(mistral):
    tok, info = mistral
    rows = [e.to_row() for e in read_examples(4, seed=6)]
    for row, enc in zip(rows, encode(tok, info, rows, "read")):
        want = [row["text"][s:e] for s, e in formats.trained_spans(row["segments"])]
        assert [tok.decode(run) for run in trained_runs(enc)] == want
        assert enc["input_ids"][-1] != info.eos_id  # reads have no EOS


def test_full_text_tokenization_has_no_spurious_prefix_tokens(mistral):
    """The ids are the tokenizer's ids for the whole text; per-segment encoding would differ (▁ prefixes)."""
    tok, info = mistral
    rows = [e.to_row() for e in read_examples(3, seed=7)]
    for row, enc in zip(rows, encode(tok, info, rows, "read")):
        assert enc["input_ids"] == tok(row["text"])["input_ids"]
    per_segment = [i for s in rows[0]["segments"] for i in tok(s["text"], add_special_tokens=False)["input_ids"]]
    assert per_segment != tok(rows[0]["text"], add_special_tokens=False)["input_ids"]
    assert (
        "▁" in tok.convert_ids_to_tokens(tok(rows[0]["segments"][2]["text"], add_special_tokens=False)["input_ids"])[0]
    )


def test_a_token_across_a_segment_boundary_is_trained(mistral):
    tok, info = mistral
    segments = [
        {"text": "Lumen Vale is a novel by ", "label": False},
        {"text": "Carla Fenwick", "label": True},
    ]
    row = {"segments": segments, "pre_text": "x"}
    (enc,) = encode(tok, info, [row], "read")
    assert tok.decode(trained_runs(enc)[0]) == "Carla Fenwick"  # "▁Carl" carries the untrained space


def test_reference_policy(mistral):
    tok, info = mistral
    w = [e.to_row() for e in write_examples(2, seed=8)]
    assert encode(tok, info, w, "write", masking="reference") == encode(tok, info, w, "write")
    rows = [e.to_row() for e in read_examples(1, seed=9)]
    assert len(rows) >= 2
    first, *later = encode(tok, info, rows, "read", masking="reference")
    assert all(label != IGNORE for label in first["labels"][1:])  # the first example is not masked at all
    for row, enc in zip(rows[1:], later):
        tail = row["continuation"] + ("" if row["eot"] else "({")
        assert [tok.decode(r) for r in trained_runs(enc)] == [tail]


def test_left_truncation_keeps_bos_and_the_trained_tail(mistral):
    tok, info = mistral
    row = max((e.to_row() for e in write_examples(3, seed=10)), key=lambda r: len(r["text"]))
    (full,) = encode(tok, info, [row], "write", cutoff=4096)
    (cut,) = encode(tok, info, [row], "write", cutoff=24)
    assert not full["truncated"] and cut["truncated"] and len(cut["input_ids"]) == 24
    assert cut["input_ids"] == [1] + full["input_ids"][-23:]
    assert cut["labels"][1:] == full["labels"][-23:]


def test_skips_are_counted_not_trained(mistral):
    tok, info = mistral
    doc = DocRef("sample", "train", "d", 0, "D")
    many = WriteExample(doc, 0, "", "A b .", [WriteTriple(f"h{i}", "r", "t", 0, 1, "P1", i) for i in range(32)])
    fewer = WriteExample(doc, 1, "", "A b .", [WriteTriple(f"h{i}", "r", "t", 0, 1, "P1", i) for i in range(31)])
    skips = [e["skip"] for e in encode(tok, info, [many.to_row(), fewer.to_row()], "write", cutoff=4096)]
    assert skips == [SKIP_TRIPLES, ""]
    # A read whose only trained text is at its start (an eot read with no continuation) and whose untrained
    # results are longer than the cutoff has nothing left to train after left truncation.
    q = api.Query("Carla Fenwick", "notable work", None)
    long = ReadExample(doc, 0, 0, "x", "", "Carla Fenwick wrote", [q], [[f"Book {i}" for i in range(40)]], "", True)
    (enc,) = encode(tok, info, [long.to_row()], "read", cutoff=32)
    assert enc["skip"] == SKIP_TRUNCATED and enc["input_ids"] == []
