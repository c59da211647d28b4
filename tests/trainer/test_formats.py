"""Column conventions for external trainers (docs/external-trainers.md): TRL prompt-completion and axolotl
`input_output` built from `segments` give back `text` and the same trained spans as our trainer."""

from __future__ import annotations

import pytest
from memllm.trainer.formats import to_axolotl_input_output, to_prompt_completion, trained_spans
from memllm.trainer.tokenization import IGNORE, Encoder, load_tokenizer, prepare_tokenizer

from tests.trainer.conftest import read_examples, write_examples


@pytest.fixture(scope="module")
def mistral(mistral_tokenizer_dir):
    tok = load_tokenizer(str(mistral_tokenizer_dir))
    return tok, prepare_tokenizer(tok)


def ours(tok, info, row, task) -> dict:
    batch = {k: [row[k]] for k in row}
    out = Encoder(tok, info, task)(batch)
    return {k: v[0] for k, v in out.items()}


def test_trained_spans_merge_adjacent_segments():
    segs = [
        {"text": "ab", "label": False},
        {"text": "cd", "label": True},
        {"text": "e", "label": True},
        {"text": "f", "label": False},
        {"text": "g", "label": True},
    ]
    assert trained_spans(segs) == [(2, 5), (6, 7)]


def test_trl_prompt_completion_matches_our_write_masks(mistral):
    tok, info = mistral
    for ex in write_examples(2, seed=12):
        row = ex.to_row()
        pc = to_prompt_completion(row["segments"])
        assert pc["prompt"] + pc["completion"] == row["text"]
        assert pc["completion"] == row["segments"][-1]["text"]  # the `({MEM_WRITE-->...})` call
        # What TRL's SFTTrainer does with it: append EOS to the completion, tokenize prompt and
        # prompt + completion, mask the prompt's tokens.
        prompt_ids = tok(pc["prompt"])["input_ids"]
        ids = tok(pc["prompt"] + pc["completion"] + tok.eos_token)["input_ids"]
        assert ids[: len(prompt_ids)] == prompt_ids
        mine = ours(tok, info, row, "write")
        assert ids == mine["input_ids"]
        assert [i >= len(prompt_ids) for i in range(len(ids))] == [label != IGNORE for label in mine["labels"]]


def test_trl_prompt_completion_refuses_reads():
    # Read examples train the call and the continuation but not the memory's results in between.
    assert all(to_prompt_completion(ex.to_row()["segments"]) is None for ex in read_examples(2, seed=13))


def test_axolotl_input_output(mistral):
    tok, info = mistral
    for ex, task in [(e, "write") for e in write_examples(1, seed=14)] + [(e, "read") for e in read_examples(1)]:
        row = ex.to_row()
        eos = "</s>" if task == "write" else None
        io = to_axolotl_input_output(row["segments"], bos="<s>", eos=eos)
        assert "".join(s["text"] for s in io["segments"]) == "<s>" + row["text"] + (eos or "")
        trained = "".join(s["text"] for s in io["segments"] if s["label"])
        assert trained == "".join(row["text"][a:b] for a, b in trained_spans(row["segments"])) + (eos or "")
        # axolotl tokenizes segment by segment without special tokens and concatenates.
        ids, labels = [], []
        for s in io["segments"]:
            seg_ids = tok(s["text"], add_special_tokens=False)["input_ids"]
            ids += seg_ids
            labels += seg_ids if s["label"] else [IGNORE] * len(seg_ids)
        mine = ours(tok, info, row, task)
        if task == "write":  # segment boundaries sit on special tokens: the same ids and masks
            assert (ids, labels[1:]) == (mine["input_ids"], mine["labels"][1:])
        else:  # the results after `-->` get a spurious "▁": use the pre-tokenized export for reads
            assert ids != mine["input_ids"]
