"""Training runs on CPU: the loss falls, resume continues the same run, packing equals padding, a seed fixes
the run, two torchrun processes train as one, outputs.

The tiny model is a random 2-layer Mistral with the real Mistral tokenizer (conftest); the smoke test at the
end trains the real SmolLM2-135M weights for a few steps (marked `slow`: deselect with `-m "not slow"`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from memllm.trainer.collate import PadCollator, make_collator
from memllm.trainer.config import DataSource, TrainConfig
from memllm.trainer.modeling import load_base_model, prepare_model
from memllm.trainer.recipe import train
from memllm.trainer.tokenization import Encoder, load_tokenizer, prepare_tokenizer

from tests.trainer.conftest import read_examples, write_examples, write_shards


def config(tmp_path, model, data, out="run", **kw) -> TrainConfig:
    base = dict(
        task="write",
        batch_size=2,
        micro_batch_size=2,
        max_steps=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_every=1000,
        eval_every=1000,
        eval_split="none",
        progress=False,
        cache_dir=str(tmp_path / "cache"),
    )
    base.update(kw)
    return TrainConfig(data=[DataSource(data)], model=str(model), output=tmp_path / out, **base)


def losses(metrics: dict) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in metrics["log_history"] if "loss" in h}


@pytest.fixture
def two_writes(tmp_path):
    """A fixed batch: two short write examples (first sentences); every 2-example step sees the same data."""
    firsts = [e for e in write_examples(2, seed=4) if e.sent_id == 0]
    return write_shards(tmp_path / "fixed", "memory_write", "train", firsts)


def test_loss_falls_on_a_fixed_batch(tmp_path, tiny_mistral, two_writes):
    m = train(config(tmp_path, tiny_mistral, two_writes, max_steps=24, learning_rate=1e-2, warmup_ratio=0.0))
    steps = losses(m)
    assert len(steps) == 24
    # measured: from 10.37 (~ln(32000)) to 2.94, 0.28 of the start
    assert steps[24] < 0.33 * steps[1], steps
    out = tmp_path / "run"
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "train_config.json",
        "metrics.json",
        "metrics.jsonl",
    ):
        assert (out / name).is_file(), name
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], adapter["lora_dropout"], adapter["bias"]) == (
        16,
        8,
        0.1,
        "lora_only",
    )
    assert set(adapter["target_modules"]) == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
        "lm_head",
    }
    resolved = json.loads((out / "train_config.json").read_text())
    assert resolved["warmup_ratio"] == 0.0 and resolved["derived"]["tokenizer"]["pad_id"] == 0
    # The adapter holds only LoRA weights: the frozen lm_head (32000 x 64) is not copied into it.
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert all("lora_" in k for k in f.keys())


def test_resume_continues_the_same_run(tmp_path, tiny_mistral, read_data):
    kw = dict(task="read", max_steps=6, save_every=3, micro_batch_size=2, batch_size=4, seed=7)
    full = losses(train(config(tmp_path, tiny_mistral, read_data, out="full", **kw)))
    # An interrupted run is a run that stopped after checkpoint-3: copy just that checkpoint and resume.
    (tmp_path / "cut").mkdir()
    shutil.copytree(tmp_path / "full" / "checkpoint-3", tmp_path / "cut" / "checkpoint-3")
    resumed = train(config(tmp_path, tiny_mistral, read_data, out="cut", resume="auto", **kw))
    # Steps 1-3 come from the checkpoint's trainer state; only 4-6 were computed again.
    logged = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [4, 5, 6]
    again = losses(resumed)
    assert sorted(again) == sorted(full) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert again[step] == pytest.approx(full[step], rel=1e-5)


def adapter(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter_model.safetensors"))


def test_a_seed_fixes_the_run(tmp_path, tiny_mistral, read_data):
    """LoRA's A matrices are drawn when the adapter is built: the seed must be set before that, not only when
    the Trainer starts. With dropout on, the same seed gives the same losses and adapter; another seed not."""
    kw = dict(task="read", max_steps=2, micro_batch_size=2, batch_size=4)
    runs = {
        name: train(config(tmp_path, tiny_mistral, read_data, out=name, seed=seed, **kw))
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    }
    a, b, c = (adapter(tmp_path / name) for name in "abc")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert losses(runs["a"]) == losses(runs["b"])
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("options", [(), ("streaming", "packing")])
def test_two_torchrun_processes_train_as_one(tmp_path, tiny_mistral, options):
    """`torchrun --nproc-per-node 2 -m memllm.trainer` (gloo on CPU) against one process with the same effective
    batch: each process takes half the micro batches, so the two runs see the same examples per optimizer
    step and must log the same losses and save the same adapter (tolerances: float sums in another order).
    Dropout off: each process draws its own masks. Two shards of 12 and 11 examples and 7 steps of 4: the
    first epoch ends in step 6, where one process deals the last 3 examples and two processes 4 (the
    samplers even out the processes' last batches), so steps 1-5 must agree and every step must run
    (streamed, the processes used to fall out of step there). Packed, each process packs its own batch.
    The validation split has an odd number of examples: its evaluation after step 5 must agree too (the
    sampler's copy on the second process used to bias transformers' eval_loss)."""
    data = write_shards(tmp_path / "data", "memory_read", "train", read_examples(9, seed=3), n_shards=2)
    write_shards(data, "memory_read", "validation", read_examples(2, seed=6, split="validation"))
    shards = {f.name: pq.read_metadata(f).num_rows for f in (data / "memory_read").iterdir()}
    assert sorted(n for name, n in shards.items() if name.startswith("train")) == [11, 12]
    assert shards["validation-00000-of-00001.parquet"] % 2 == 1
    kw = dict(task="read", max_steps=7, batch_size=4, seed=7, learning_rate=1e-2, warmup_ratio=0.0, use_cpu=True)
    kw.update(lora_dropout=0.0, save_every=5, eval_every=5, eval_split=None, **dict.fromkeys(options, True))
    one = train(config(tmp_path, tiny_mistral, data, out="one", micro_batch_size=2, **kw))
    cli = [
        "--data", str(data), "--task", "read", "--model", str(tiny_mistral), "--output", str(tmp_path / "two"),
        "--cpu", "--batch-size", "4", "--micro-batch-size", "1", "--max-steps", "7", "--seed", "7",
        "--lr", "1e-2", "--warmup-ratio", "0", "--lora-dropout", "0", "--logging-steps", "1", "--eval-every", "5",
        "--save-every", "5", "--no-progress", "--report-to", "none", "--cache-dir", str(tmp_path / "cache2"),
    ] + [f"--{option}" for option in options]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*launcher, "-m", "memllm.trainer", *cli], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("memllm train:") == 1  # the counts are reported once, by rank 0
    plan = json.loads((tmp_path / "two" / "train_config.json").read_text())["derived"]["plan"]
    assert (plan["processes"], plan["accumulation"], plan["effective_batch"]) == (2, 2, 4)
    two_metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    two, expected = losses(two_metrics), losses(one)
    assert sorted(two) == sorted(expected) == list(range(1, 8))
    logged = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == list(range(1, 8))  # one writer
    for step in range(1, 6):
        assert two[step] == pytest.approx(expected[step], rel=1e-5), step
    assert expected[5] < expected[1]  # the steps moved the weights: equal losses are not equal inits only
    eval_one, eval_two = ({h["step"]: h for h in m["log_history"] if "eval_loss" in h} for m in (one, two_metrics))
    assert eval_two[5]["eval_loss"] == pytest.approx(eval_one[5]["eval_loss"], rel=1e-5)
    assert eval_two[5]["eval_tokens"] == eval_one[5]["eval_tokens"] > 0
    # Adam moves each weight by up to lr = 1e-2 per step; the runs differ by float noise (measured < 4e-6
    # after 3 steps), another seed or other examples per step by ~1e-2 to 1e-1.
    a, b = (adapter(tmp_path / run / "checkpoint-5") for run in ("one", "two"))
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) < 5e-5


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packing_gives_the_unpacked_per_token_loss(tiny_mistral, attn):
    tok = load_tokenizer(str(tiny_mistral))
    info = prepare_tokenizer(tok)
    rows = [e.to_row() for e in read_examples(2, seed=11)]
    batch = {k: [r[k] for r in rows] for k in rows[0]}
    enc = Encoder(tok, info, "read")(batch)
    feats = [{"input_ids": i, "labels": lab} for i, lab in zip(enc["input_ids"], enc["labels"])]
    assert len({len(f["input_ids"]) for f in feats}) > 1  # unequal lengths: padding happens
    cfg = TrainConfig(data=[], task="read", model=str(tiny_mistral), output=Path("unused"), attn_implementation=attn)
    model = prepare_model(load_base_model(cfg, "fp32"), cfg, info).eval()  # LoRA starts as the identity
    padded = PadCollator(info.pad_id)(feats)
    packed = make_collator(info.pad_id, packing=True, attn_implementation=attn)(feats)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    with torch.no_grad():
        loss_padded = model(**padded).loss
        loss_packed = model(**packed).loss
    assert loss_packed.item() == pytest.approx(loss_padded.item(), rel=1e-5)


@pytest.mark.parametrize("options", [{"packing": True, "gradient_checkpointing": True}, {"streaming": True}])
def test_training_options_run(tmp_path, tiny_mistral, write_data, options):
    """Packing with gradient checkpointing, and streaming data (the step count comes from the counting pass),
    each with evaluation on the validation split."""
    m = train(
        config(
            tmp_path,
            tiny_mistral,
            write_data,
            max_steps=2,
            eval_split=None,
            eval_every=2,
            micro_batch_size=4,
            batch_size=4,
            **options,
        )
    )
    assert len(losses(m)) == 2 and m["eval"]["eval_loss"] > 0
    # The step-2 evaluation is the final one: not run a second time at the end.
    assert [h["step"] for h in m["log_history"] if "eval_loss" in h] == [2]
    assert m["eval"]["eval_loss"] == m["log_history"][-2]["eval_loss"]


@pytest.mark.slow
def test_smollm2_real_weights_smoke(tmp_path, smollm2, two_writes):
    """Real SmolLM2-135M: `-->` is not in its vocabulary, so one row is added and trained; loss falls."""
    m = train(config(tmp_path, smollm2, two_writes, max_steps=4, learning_rate=2e-3, warmup_ratio=0.0))
    steps = losses(m)
    assert steps[1] < 8  # a real LM, not a random one (ln 49153 = 10.8)
    assert steps[4] < steps[1]
    resolved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    tok = resolved["derived"]["tokenizer"]
    assert tok["vocab_after"] == tok["vocab_before"] + 1 and tok["new_token_ids"] == [tok["special_ids"]["-->"]]
    assert tok["bos_id"] is None  # SmolLM2's tokenizer does not add BOS, so neither do we
