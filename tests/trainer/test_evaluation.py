"""The eval loss: per-example NLL sums and token counts, equal for padded, packed and one-by-one batches."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from memllm.trainer.collate import PadCollator, make_collator
from memllm.trainer.config import TrainConfig
from memllm.trainer.evaluation import eval_metrics, nll_per_example
from memllm.trainer.modeling import load_base_model, prepare_model
from memllm.trainer.tokenization import Encoder, load_tokenizer, prepare_tokenizer

from tests.trainer.conftest import read_examples


def test_eval_metrics_divide_once_over_the_set():
    # Two examples: 3 tokens with NLL sum 6.0 and 1 token with 4.0 -> (6 + 4) / 4, not the mean of 2.0 and 4.0.
    pred = SimpleNamespace(predictions=np.array([[6.0], [4.0]]), label_ids=np.array([[3], [1]]))
    assert eval_metrics(pred) == {"loss": 2.5, "tokens": 4}


def test_nll_per_example_is_the_models_own_loss(tiny_mistral):
    tok = load_tokenizer(str(tiny_mistral))
    info = prepare_tokenizer(tok)
    rows = [e.to_row() for e in read_examples(2, seed=11)]
    enc = Encoder(tok, info, "read")({k: [r[k] for r in rows] for k in rows[0]})
    feats = [{"input_ids": i, "labels": lab} for i, lab in zip(enc["input_ids"], enc["labels"])]
    cfg = TrainConfig(data=[], task="read", model=str(tiny_mistral), output=Path("unused"), attn_implementation="sdpa")
    model = prepare_model(load_base_model(cfg, "fp32"), cfg, info).eval()
    with torch.no_grad():
        # One example at a time, through the model's own loss (a mean over its trained tokens).
        alone = []
        for f in feats:
            out = model(input_ids=torch.tensor([f["input_ids"]]), labels=torch.tensor([f["labels"]]))
            n = sum(label != -100 for label in f["labels"][1:])
            alone.append((out.loss.item() * n, n))
        padded = PadCollator(info.pad_id)(feats)
        labels = padded.pop("labels")
        sums, counts = nll_per_example(model(**padded).logits, labels)
        packed = make_collator(info.pad_id, packing=True, attn_implementation="sdpa")(feats)
        labels = packed.pop("labels")
        psums, pcounts = nll_per_example(model(**packed).logits, labels, packed["position_ids"])
    assert len(feats) > 2 and counts.tolist() == pcounts.tolist() == [n for _, n in alone]
    assert sums.tolist() == pytest.approx([s for s, _ in alone], rel=1e-5)
    assert psums.tolist() == pytest.approx([s for s, _ in alone], rel=1e-5)
