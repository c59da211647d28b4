"""The training configuration: every knob of `memllm train`, with MemLLM's published values as defaults.

Defaults follow docs/method.md §7 (the reference training scripts): LoRA r 16 / alpha 8 / dropout 0.1 on
all projections and `lm_head` with `bias="lora_only"`, AdamW, lr 2e-5, weight decay 0.001, warmup ratio 0.01
(write) or 0.05 (read), 2 epochs, effective batch 96, cutoff 1024 with left truncation.
`TrainConfig.resolved()` fills the task-dependent values; `to_json()` is `OUTPUT/train_config.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

TASKS = ("write", "read")
TABLES = {"write": "memory_write", "read": "memory_read"}
MASKING_POLICIES = ("segments", "reference")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
WARMUP_RATIO = {"write": 0.01, "read": 0.05}


class TrainerInputError(Exception):
    """Bad input to the trainer (data, model, options): reported as one line, exit code 2, no traceback."""


@dataclass(frozen=True)
class DataSource:
    """One data directory and its oversampling rate (`DIR` or `DIR:RATE`, e.g. `DIR:2` repeats it twice)."""

    path: Path
    rate: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> DataSource:
        # `rpartition` so that a path containing ':' still works when no rate is given.
        head, sep, tail = spec.rpartition(":")
        if sep:
            try:
                rate = float(tail)
            except ValueError:
                return cls(Path(spec))
            if not math.isfinite(rate) or rate <= 0:
                raise TrainerInputError(f"--data {spec}: the oversampling rate must be a positive number")
            return cls(Path(head), rate)
        return cls(Path(spec))


@dataclass
class TrainConfig:
    """Everything a training run needs; the CLI builds one, tests and benchmarks build them directly."""

    data: list[DataSource]
    task: str
    model: str
    output: Path
    # --- data and tokenization ---
    masking: str = "segments"  # `segments`: the shards' labels; `reference`: the reference code's token rule
    cutoff: int = 1024  # max tokens per example (BOS and EOS included); longer ones lose their left part
    max_triples: int = 32  # write examples with this many triples or more are dropped (docs/method.md §6.1.7)
    train_split: str = "train"
    eval_split: str | None = None  # None: `validation` or `dev` when present; "none": no eval split
    eval_fraction: float = 0.0  # hold out this fraction of training documents when there is no eval split
    streaming: bool = False
    num_proc: int | None = None
    cache_dir: str | None = None
    shuffle_buffer: int = 10_000  # streaming only
    # --- LoRA ---
    lora_r: int = 16
    lora_alpha: int = 8
    lora_dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    init_adapter: str | None = None  # start from these LoRA weights (optimizer and schedule start fresh)
    # --- optimisation ---
    learning_rate: float = 2e-5
    weight_decay: float = 0.001
    warmup_ratio: float | None = None  # None: 0.01 for write, 0.05 for read
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 96  # effective batch: micro batch x gradient accumulation x processes
    micro_batch_size: int = 4
    eval_batch_size: int | None = None
    optim: str = "adamw_torch"
    precision: str = "auto"  # auto: bf16 on GPUs that support it, else fp32
    attn_implementation: str | None = None
    packing: bool = False
    gradient_checkpointing: bool = False
    use_cpu: bool = False
    # --- bookkeeping ---
    eval_every: float = 0.05  # < 1: fraction of the total steps (the reference evaluates every 5 %)
    save_every: float = 0.05
    save_total_limit: int | None = None
    logging_steps: float = 10
    seed: int = 42
    resume: str | None = None  # "auto": latest checkpoint in `output`; or a checkpoint directory
    overwrite: bool = False
    report_to: list[str] | None = None  # None: TensorBoard / W&B when installed
    progress: bool = True
    export_tokenized: str | None = None  # write the tokenized data there and stop (for TRL / axolotl)

    def resolved(self) -> TrainConfig:
        """A copy with task-dependent defaults filled in and every option checked."""
        cfg = dataclasses.replace(self, output=Path(self.output), data=list(self.data))
        if cfg.task not in TASKS:
            raise TrainerInputError(f"--task must be one of {', '.join(TASKS)}, not {cfg.task!r}")
        if cfg.masking not in MASKING_POLICIES:
            raise TrainerInputError(f"--masking must be one of {', '.join(MASKING_POLICIES)}")
        if cfg.precision not in PRECISIONS:
            raise TrainerInputError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if not cfg.data:
            raise TrainerInputError("no --data directory given")
        if cfg.cutoff < 8:
            raise TrainerInputError("--cutoff must be at least 8 tokens")
        if not 0 <= cfg.eval_fraction < 1:
            raise TrainerInputError("--eval-fraction must be in [0, 1)")
        if cfg.micro_batch_size < 1 or cfg.batch_size < 1:
            raise TrainerInputError("--batch-size and --micro-batch-size must be positive")
        if cfg.warmup_ratio is None:
            cfg.warmup_ratio = WARMUP_RATIO[cfg.task]
        if cfg.eval_batch_size is None:
            cfg.eval_batch_size = cfg.micro_batch_size
        return cfg

    @property
    def table(self) -> str:
        return TABLES[self.task]

    def to_json(self, **extra: object) -> str:
        d = dataclasses.asdict(self)
        d["output"] = str(self.output)
        d["data"] = [{"path": str(s.path), "rate": s.rate} for s in self.data]
        d.update(extra)
        return json.dumps(d, indent=2, sort_keys=True, default=str)
