"""Metrics: every Trainer log line appended to `OUTPUT/metrics.jsonl` as it happens, and a final
`OUTPUT/metrics.json` (data counts, train and eval results, the whole log history). TensorBoard and W&B get
the same logs through transformers' own integrations when they are installed (see `default_report_to`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class JsonLinesLogger(TrainerCallback):
    """Append `{"step", "epoch", "time", **logs}` per log event; only the main process writes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        rec = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")


def default_report_to() -> list[str]:
    """TensorBoard when installed; W&B when installed and configured (else it would prompt for a login)."""
    from transformers.integrations import is_tensorboard_available, is_wandb_available

    out = []
    if is_tensorboard_available():
        out.append("tensorboard")
    if is_wandb_available() and (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")):
        out.append("wandb")
    return out


def write_json(path: Path, data: dict) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
