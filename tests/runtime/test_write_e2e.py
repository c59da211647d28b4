"""End to end: `memllm generate` makes the sample's write examples, `memllm train` fits SmolLM2-135M to them,
and `MemLLM.write` over the sample's text (split into sentences by spaCy) stores their triples."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest
from memllm.memory.exact import ExactMemory
from memllm.pipeline.cli import main, sample_path
from memllm.runtime.model import MemLLM
from memllm.trainer.config import DataSource, TrainConfig
from memllm.trainer.recipe import train


@pytest.mark.slow
def test_an_adapter_fitted_to_the_sample_writes_its_triples(smollm2, nlp, tmp_path):
    out = tmp_path / "out"
    assert main(["generate", "-q", "--runner=FnApiRunner", "--output", str(out)]) == 0
    rows = [r for f in sorted((out / "memory_write").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    cfg = TrainConfig(
        data=[DataSource(out)],
        task="write",
        model=str(smollm2),
        output=tmp_path / "adapter",
        batch_size=6,
        micro_batch_size=6,
        max_steps=30,  # 10 epochs of the 17 trained examples at a high rate: the loss ends near 0.05
        learning_rate=2e-3,
        warmup_ratio=0.0,
        lora_dropout=0.0,
        save_every=1000,
        eval_split="none",
        progress=False,
        report_to=[],
        cache_dir=str(tmp_path / "cache"),
    )
    start = time.perf_counter()
    train(cfg)
    trained_s = time.perf_counter() - start

    docs = json.loads(open(sample_path(), encoding="utf-8").read())
    texts = [" ".join(w for s in d["sents"] for w in s) for d in docs]  # raw text, sentence ends not marked
    mm = MemLLM.from_pretrained(str(smollm2), write_adapter=str(cfg.output), memory=ExactMemory(), device="cpu")
    result = mm.write(texts, batch_size=16, max_new_tokens=64)
    # the gold of the examples training kept (a write of >= max_triples triples is not trained)
    gold = {
        (t["head"], t["relation"], t["tail"]) for r in rows if len(r["triples"]) < cfg.max_triples for t in r["triples"]
    }
    got = set(result.triples())
    recall = len(gold & got) / len(gold)
    print(f"trained in {trained_s:.0f}s; wrote in {time.perf_counter() - start - trained_s:.0f}s; recall {recall:.2f}")
    assert result.sentences == sum(len(d["sents"]) for d in docs)
    assert recall >= 0.9, sorted(gold - got)
    assert result.stored == len(mm.memory) >= len(gold & got)
