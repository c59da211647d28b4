"""`benchmarks/bench_trainer.py` in a CI-sized run: both variants train the same examples, only padding differs.

The figures themselves (speed, memory) are not asserted: they belong to benchmarks/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tiny import mistral_tokenizer_source

ROOT = Path(__file__).resolve().parents[2]


def test_padded_and_packed_train_the_same_tokens(tmp_path):
    if mistral_tokenizer_source() is None:
        pytest.skip("mistral-common (Mistral-7B tokenizer data) is not installed")
    out = tmp_path / "figures.json"
    # Padded 2 x 2 against packed 4 x 1: one effective batch of 4, so every optimizer step sees the same
    # four examples in both variants.
    args = ["--docs", "3", "--steps", "2", "--warmup", "1", "--micro-batch-size", "2", "--accumulation", "2"]
    args += ["--packed-micro-batch-size", "4", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_trainer.py"), *args],
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    padded, packed = json.loads(out.read_text())
    assert (padded["variant"], padded["micro"], packed["variant"], packed["micro"]) == (
        "padded",
        "2 x 2",
        "packed",
        "4 x 1",
    )
    assert padded["tokens"] == packed["tokens"] > 0
    assert padded["trained"] == packed["trained"] > 0
    assert padded["padding"] > 0 and packed["padding"] == 0
    assert "packed/padded throughput:" in done.stdout
