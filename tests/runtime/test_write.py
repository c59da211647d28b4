"""Memory writes without a model: the parser, the prompts (token for token what training saw), storing
(insert, and overwrite for functional relations), and the input formats of `memllm write`."""

from __future__ import annotations

import json

import pytest
from memllm.memory.embedding_memory import EmbeddingMemory
from memllm.memory.exact import ExactMemory
from memllm.runtime.cli import parse_documents
from memllm.runtime.errors import RuntimeInputError
from memllm.runtime.write import FUNCTIONAL_RELATIONS, build_prompts, parse_write_output, store_triples
from memllm.schemas.records import DocRef, WriteExample, WriteTriple

from tests.support.embedders import HashingEmbedder


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("({MEM_WRITE-->A>>r>>B;C>>s>>D})", [("A", "r", "B"), ("C", "s", "D")]),
        ("({MEM_WRITE-->})", []),
        ("({MEM_WRITE-->A>>r>>B", [("A", "r", "B")]),  # raw output, never closed
        ("({MEM_WRITE-->A>>r>>B})C>>s>>D})", [("A", "r", "B")]),  # up to the first END
        ("({MEM_WRITE-->x-->A>>r>>B})", [("A", "r", "B")]),  # after the last `-->`
        ("({MEM_WRITE-->A>>r;B>>>>C;>>r>>D;E>>r>>;F>>r>>G>>H;;I>>r>>J})", [("I", "r", "J")]),
        ("({MEM_WRITE--> A >>r >>B ;C>> >>D})", [("A", "r", "B")]),  # blank parts are empty
        ("A>>r>>B})", []),  # no `-->`: no write call
        ("", []),
    ],
)
def test_parse_write_output(output, expected):
    assert parse_write_output(output) == expected


@pytest.fixture(scope="module")
def tokenizer(mistral_tokenizer_dir):
    from memllm.trainer.tokenization import load_tokenizer, prepare_tokenizer

    tok = load_tokenizer(str(mistral_tokenizer_dir))
    return tok, prepare_tokenizer(tok)


SENTS = [
    "Lumen Vale is a 2019 novel by Carla Fenwick .",
    "Fenwick was born in Dunmore , Ireland .",
    "The novel was published by Harbor Lane Press .",
]
TRIPLES = [
    [("Lumen Vale", "author", "Carla Fenwick"), ("Lumen Vale", "publication date", "2019")],
    [("Carla Fenwick", "place of birth", "Dunmore"), ("Dunmore", "country", "Ireland")],
    [],
]


def training_ids(tokenizer, info) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) of the write examples of SENTS, as `memllm train` encodes them."""
    from memllm.trainer.tokenization import Encoder

    doc = DocRef("sample", "train", "d0", 0, "Lumen Vale")
    rows = [
        WriteExample(doc, i, " ".join(SENTS[:i]), s, [WriteTriple(*t, 0, 1, "P0", k) for k, t in enumerate(TRIPLES[i])])
        for i, s in enumerate(SENTS)
    ]
    batch = {"segments": [r.segments() for r in rows], "triples": [r.triples for r in rows], "pre_text": [""] * 3}
    enc = Encoder(tokenizer, info, "write")(batch)
    return list(zip(enc["input_ids"], enc["labels"]))


def test_prompts_are_the_training_context_and_the_call_decodes_back(tokenizer):
    tok, info = tokenizer
    prompts = build_prompts(SENTS, tok, info.bos_id)
    for prompt, (ids, labels), triples in zip(prompts, training_ids(tok, info), TRIPLES):
        first_trained = next(i for i, label in enumerate(labels) if label != -100)
        assert prompt == ids[:first_trained]  # BOS, pretext, ({USER_ST}), focus, ({USER_END})
        assert prompt[0] == info.bos_id
        call = tok.decode(ids[first_trained:-1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        assert parse_write_output(call) == triples


def test_prompt_window_and_left_truncation(tokenizer):
    tok, info = tokenizer
    full = build_prompts(SENTS, tok, info.bos_id)
    window = build_prompts(SENTS, tok, info.bos_id, max_sents=1)
    assert window[:2] == full[:2]
    assert tok.decode(window[2][1:]) == tok.decode(build_prompts(SENTS[1:], tok, info.bos_id)[1][1:])
    cut = build_prompts(SENTS, tok, info.bos_id, max_prompt_tokens=12)
    assert [len(p) for p in cut] == [12, 12, 12]
    assert all(c == [info.bos_id, *f[-11:]] for c, f in zip(cut, full))
    assert build_prompts([], tok, info.bos_id) == []
    with pytest.raises(RuntimeInputError):
        build_prompts(SENTS, tok, info.bos_id, max_prompt_tokens=1)


def stored(memory: EmbeddingMemory) -> set[tuple[str, str, str]]:
    return {(h, r, t) for _, h, r, t in memory.store.triples()}


WRITES = [
    [("Ada", "place of birth", "Oslo"), ("Ada", "child", "Bo")],
    [("Ada", "place of birth", "Bergen"), ("Ada", "child", "Cy"), ("Ada", "date of birth", "1990")],
    [("Ada", "date of birth", "1991"), ("Ada", "date of birth", "1992")],  # one write: both kept
]


def test_store_inserts_by_default():
    memory = EmbeddingMemory(None, HashingEmbedder())
    assert store_triples(memory, WRITES) == (7, 0)
    assert len(stored(memory)) == 7
    assert store_triples(memory, WRITES[:1]) == (0, 0)  # repeats are not new


def test_store_overwrites_functional_relations_in_text_order():
    memory = EmbeddingMemory(None, HashingEmbedder())
    assert {"place of birth", "date of birth"} <= FUNCTIONAL_RELATIONS and "child" not in FUNCTIONAL_RELATIONS
    added, replaced = store_triples(memory, WRITES, overwrite_functional=True)
    # Oslo replaced by Bergen (write 2), 1990 by 1991 and 1992 (write 3); children accumulate
    assert stored(memory) == {
        ("Ada", "place of birth", "Bergen"),
        ("Ada", "child", "Bo"),
        ("Ada", "child", "Cy"),
        ("Ada", "date of birth", "1991"),
        ("Ada", "date of birth", "1992"),
    }
    assert (added, replaced) == (7, 2)


def test_exact_memory_takes_inserts_only():
    memory = ExactMemory()
    assert store_triples(memory, WRITES) == (7, 0)
    with pytest.raises(RuntimeInputError, match="cannot overwrite"):
        store_triples(ExactMemory(), WRITES, overwrite_functional=True)


DOCRED = [{"title": "T", "sents": [["Ada", "was", "born", "."], ["She", "left", "."]]}]


@pytest.mark.parametrize(
    ("text", "fmt", "per_file", "expected"),
    [
        (
            "First doc. Two.\nSame doc.\n\n \nSecond doc.\n",
            "auto",
            False,
            ["First doc. Two.\nSame doc.", "Second doc."],
        ),
        ("First doc.\n\nStill it.\n", "text", True, ["First doc.\n\nStill it.\n"]),
        ("\n\n", "auto", False, []),
        ('{"text": "A b."}\n\n{"text": "C d."}\n', "auto", False, ["A b.", "C d."]),
        (json.dumps(DOCRED), "auto", False, [["Ada was born .", "She left ."]]),
        (json.dumps(DOCRED[0]) + "\n", "docred", False, [["Ada was born .", "She left ."]]),
    ],
)
def test_parse_documents(text, fmt, per_file, expected):
    assert parse_documents(text, fmt, per_file) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"text": "A"}\nnot json\n', "line 2: not JSON"),
        ('{"title": "no text"}\n', "record 1: needs a `text` string or DocRED `sents`"),
        ('[{"sents": [["a"], 3]}]', "`sents` must be lists of words"),
        ("[1, 2", "not a JSON array"),
    ],
)
def test_parse_documents_errors(text, message):
    with pytest.raises(RuntimeInputError, match=message.replace("`", ".").replace("(", ".")):
        parse_documents(text, where="in.json")
