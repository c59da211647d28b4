"""The training recipe, top to bottom: check inputs, tokenize, report, load the model, train, save.

Everything that can be wrong with the input (data, tokenizer, options, output directory) fails in steps 1-2,
before a single weight is loaded, and the data counts (kept, skipped, truncated, tokens, steps) are printed
before training starts. Training is transformers' `Trainer` (with the eval step of `trainer.evaluation`): it
brings gradient accumulation, evaluation, checkpoints and resume, mixed precision, and multi-GPU through
`torchrun` / `accelerate launch` (each process runs this same recipe; `main_process_first` lets rank 0
tokenize and the others reuse its cache).

Output directory: `adapter_model.safetensors` + `adapter_config.json` (the LoRA adapter), the tokenizer files,
`train_config.json` (the resolved configuration and what it derived), `metrics.json` / `metrics.jsonl`,
and `checkpoint-<step>/` directories for `--resume`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memllm.trainer import data
from memllm.trainer.collate import make_collator
from memllm.trainer.config import TrainConfig, TrainerInputError
from memllm.trainer.evaluation import eval_metrics, make_trainer_class
from memllm.trainer.metrics import JsonLinesLogger, default_report_to, write_json
from memllm.trainer.modeling import count_parameters, load_base_model, prepare_model, resolve_precision
from memllm.trainer.tokenization import Encoder, TokenizerInfo, load_tokenizer, prepare_tokenizer


@dataclass
class Plan:
    """How the effective batch and the step count come out for this run."""

    processes: int
    accumulation: int
    effective_batch: int
    steps_per_epoch: int
    max_steps: int  # -1: let the Trainer count from the epochs


def plan_steps(cfg: TrainConfig, n_train: int, processes: int) -> Plan:
    per_step = cfg.micro_batch_size * processes
    accumulation = max(1, round(cfg.batch_size / per_step))
    effective = per_step * accumulation
    steps_per_epoch = max(1, math.ceil(math.ceil(n_train / per_step) / accumulation))
    max_steps = cfg.max_steps
    if max_steps <= 0 and cfg.streaming:  # an IterableDataset has no length: the Trainer needs a step count
        max_steps = max(1, math.ceil(cfg.epochs * n_train / effective))
    return Plan(processes, accumulation, effective, steps_per_epoch, max_steps)


def find_resume_checkpoint(cfg: TrainConfig) -> str | None:
    """The checkpoint to resume from; refuses to start over on top of an earlier run's checkpoints."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(cfg.output)) if cfg.output.is_dir() else None
    if cfg.resume == "auto":
        if last is None:
            raise TrainerInputError(f"--resume: no checkpoint-* directory in {cfg.output}")
        return last
    if cfg.resume:
        if not Path(cfg.resume).is_dir():
            raise TrainerInputError(f"--resume {cfg.resume}: no such checkpoint directory")
        return cfg.resume
    if last is not None and not cfg.overwrite and not cfg.export_tokenized:
        raise TrainerInputError(f"{cfg.output} holds checkpoints of an earlier run: pass --resume or --overwrite")
    return None


def prepare_inputs(cfg: TrainConfig) -> tuple[Any, TokenizerInfo, data.PreparedData]:
    """Steps 1-2: check the shards and the tokenizer, then tokenize, filter and mix the data."""
    from accelerate import PartialState

    found = [data.discover(source, cfg.table) for source in cfg.data]
    eval_name = data.check_splits(cfg, found)
    tokenizer = load_tokenizer(cfg.model)
    info = prepare_tokenizer(tokenizer)
    encoder = Encoder(tokenizer, info, cfg.task, cfg.masking, cfg.cutoff, cfg.max_triples)
    with PartialState(cpu=cfg.use_cpu).main_process_first():
        prepared = data.prepare(cfg, found, eval_name, encoder)
    return tokenizer, info, prepared


def report(cfg: TrainConfig, prepared: data.PreparedData, plan: Plan, info: TokenizerInfo) -> None:
    """The counts of the run, printed before training starts (skips, truncations, tokens, steps)."""
    cols = ("rows", "kept", ">=max_triples", "no_loss", "truncated", "rate", "examples", "tokens", "trained")
    lines = [f"memllm train: {cfg.table} from {len(prepared.sources)} source(s), masking={cfg.masking}"]
    lines.append(f"  {'source':<36}" + "".join(f"{c:>14}" for c in cols))
    for s in [*prepared.sources, *([prepared.eval_stats] if prepared.eval_stats else [])]:
        no_loss = s.skipped["nothing_trained"] + s.skipped["nothing_trained_after_truncation"]
        vals = (
            s.rows,
            s.kept,
            s.skipped["too_many_triples"],
            no_loss,
            s.truncated,
            s.rate,
            s.examples,
            s.tokens,
            s.trained_tokens,
        )
        lines.append(
            f"  {s.path[-36:]:<36}" + "".join(f"{v:>14,g}" if isinstance(v, float) else f"{v:>14,}" for v in vals)
        )
    lines.append(
        f"  tokenizer: {info.vocab_after} tokens ({len(info.new_token_ids)} added), special ids "
        f"{info.special_ids}, pad {info.pad_id}, BOS {info.bos_id}, EOS {info.eos_id}"
    )
    steps = plan.max_steps if plan.max_steps > 0 else math.ceil(plan.steps_per_epoch * cfg.epochs)
    lines.append(
        f"  {prepared.train_examples:,} training examples; effective batch {plan.effective_batch} = "
        f"{cfg.micro_batch_size} x {plan.accumulation} accumulation x {plan.processes} process(es); "
        f"{steps:,} optimizer steps"
    )
    if plan.effective_batch != cfg.batch_size:
        lines.append(f"  note: --batch-size {cfg.batch_size} is not a multiple of the micro batch")
    sys.stderr.write("\n".join(lines) + "\n")


def training_arguments(cfg: TrainConfig, plan: Plan, precision: str, has_eval: bool) -> Any:
    from transformers import TrainingArguments

    def steps(x: float) -> float | int:
        return x if x < 1 else int(x)  # < 1: a fraction of the total steps, as transformers reads it

    return TrainingArguments(
        output_dir=str(cfg.output),
        per_device_train_batch_size=cfg.micro_batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=plan.accumulation,
        num_train_epochs=cfg.epochs,
        max_steps=plan.max_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type="linear",
        optim=cfg.optim,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **_checkpointing_args(TrainingArguments, cfg.gradient_checkpointing),
        eval_strategy="steps" if has_eval else "no",
        eval_steps=steps(cfg.eval_every) if has_eval else None,
        save_strategy="steps",
        save_steps=steps(cfg.save_every),
        save_total_limit=cfg.save_total_limit,
        logging_steps=steps(cfg.logging_steps),
        logging_first_step=True,
        report_to=(cfg.report_to if cfg.report_to is not None else default_report_to()) or "none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=cfg.use_cpu,
        remove_unused_columns=False,  # the datasets hold exactly input_ids and labels
        dataloader_pin_memory=_has_cuda() and not cfg.use_cpu,  # pinning is for host-to-GPU copies
        label_names=["labels"],
        disable_tqdm=not cfg.progress,
        ddp_find_unused_parameters=False,
        # Streaming data with several processes: accelerate's default has rank 0 read every batch and
        # concatenate the processes' batches, which fails on micro batches padded to different widths (and
        # on packed rows). Each process reads the stream itself instead (`data.WholeStream`).
        accelerator_config={"dispatch_batches": False},
    )


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _checkpointing_args(args_class: type, enabled: bool) -> dict:
    # transformers 5.x renamed gradient_checkpointing to activation_checkpointing (the old name warns).
    # Non-reentrant checkpointing works with frozen base weights without forcing grads on the inputs.
    names = {f.name for f in dataclasses.fields(args_class)}
    prefix = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {prefix: enabled, f"{prefix}_kwargs": {"use_reentrant": False}}


def build_trainer(
    cfg: TrainConfig,
    model: Any,
    tokenizer: Any,
    info: TokenizerInfo,
    prepared: data.PreparedData,
    plan: Plan,
    precision: str,
    callbacks: Sequence[Any] = (),
) -> Any:
    return make_trainer_class()(
        model=model,
        args=training_arguments(cfg, plan, precision, prepared.eval is not None),
        train_dataset=data.for_processes(prepared.train, plan.processes),
        eval_dataset=data.eval_for_processes(prepared.eval, plan.processes),
        data_collator=make_collator(info.pad_id, cfg.packing, cfg.attn_implementation),
        processing_class=tokenizer,
        compute_metrics=eval_metrics,
        callbacks=[JsonLinesLogger(cfg.output / "metrics.jsonl"), *callbacks],
    )


def export_tokenized(prepared: data.PreparedData, tokenizer: Any, out: Path) -> None:
    """The tokenized data (BOS, EOS, truncation, loss masks exactly as `memllm train` uses them) as Parquet:
    `out/axolotl/{train,eval}.parquet` with `input_ids`, `attention_mask`, `labels` (axolotl's pre-tokenized
    format, which wants exactly these columns) and `out/trl/{train,eval}.parquet` with `input_ids` and
    `completion_mask` (what TRL's SFTTrainer reads from a pre-tokenized dataset), plus `out/tokenizer/`."""
    if data.is_streaming(prepared.train):
        raise TrainerInputError("--export-tokenized needs the data loaded without --streaming")

    def add(batch: dict) -> dict:
        return {
            "attention_mask": [[1] * len(x) for x in batch["input_ids"]],
            "completion_mask": [[int(label != -100) for label in ls] for ls in batch["labels"]],
        }

    for name, ds in (("train", prepared.train), ("eval", prepared.eval)):
        if ds is None:
            continue
        full = ds.map(add, batched=True)
        for fmt, cols in (
            ("axolotl", ["input_ids", "attention_mask", "labels"]),
            ("trl", ["input_ids", "completion_mask"]),
        ):
            (out / fmt).mkdir(parents=True, exist_ok=True)
            full.select_columns(cols).to_parquet(str(out / fmt / f"{name}.parquet"))
    tokenizer.save_pretrained(str(out / "tokenizer"))  # with the API tokens registered


def train(cfg: TrainConfig, callbacks: Sequence[Any] = ()) -> dict:
    """Run one training (or, with `export_tokenized`, only the data preparation). Returns the metrics."""
    from accelerate import PartialState
    from transformers import set_seed

    # 1. Options and output directory.
    cfg = cfg.resolved()
    resume = find_resume_checkpoint(cfg)
    # The first PartialState fixes the process group for the whole run (it is a singleton). Without
    # `cpu=True`, torchrun processes on a machine without GPUs each see a world of one and plan the
    # accumulation as if alone, while the Trainer still trains them as one data-parallel job.
    state = PartialState(cpu=cfg.use_cpu)

    # 2. Shards and tokenizer checked, data tokenized and counted; the counts go out before training.
    tokenizer, info, prepared = prepare_inputs(cfg)
    plan = plan_steps(cfg, prepared.train_examples, state.num_processes)
    if state.is_main_process:
        report(cfg, prepared, plan, info)
    if cfg.export_tokenized:
        if state.is_main_process:  # under torchrun the other processes would write the same files
            export_tokenized(prepared, tokenizer, Path(cfg.export_tokenized))
        return {"data": prepared.summary()}

    # 3. Model: base weights, embeddings fitted to the tokenizer, LoRA adapter.
    precision = resolve_precision(cfg.precision, cfg.use_cpu)
    # Seeded before the model exists: the Trainer seeds only when it is built, after LoRA's A matrices (and
    # any resized embedding rows) have been drawn, which made two runs with one seed train different adapters.
    set_seed(cfg.seed)
    model = prepare_model(load_base_model(cfg, precision), cfg, info)
    cfg.output.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:
        derived = {
            "precision": precision,
            "plan": vars(plan),
            "tokenizer": vars(info),
            "parameters": count_parameters(model),
            "resume_from": resume,
            "versions": _versions(),
        }
        (cfg.output / "train_config.json").write_text(cfg.to_json(derived=derived) + "\n", encoding="utf-8")
        if not resume:  # a resumed run appends to its log; a new one starts it
            (cfg.output / "metrics.jsonl").unlink(missing_ok=True)

    # 4. Train; evaluate the final weights when there is eval data.
    trainer = build_trainer(cfg, model, tokenizer, info, prepared, plan, precision, callbacks)
    result = trainer.train(resume_from_checkpoint=resume)
    final_eval = final_evaluation(trainer) if prepared.eval is not None else {}

    # 5. Save the adapter, the tokenizer and the metrics.
    trainer.save_model(str(cfg.output))
    metrics = {
        "data": prepared.summary(),
        "train": result.metrics,
        "eval": final_eval,
        "log_history": trainer.state.log_history,
    }
    if state.is_main_process:
        write_json(cfg.output / "metrics.json", metrics)
    return metrics


def final_evaluation(trainer: Any) -> dict:
    """The eval metrics of the final weights: the last step's evaluation when `--eval-every` ran one there
    (an eval pass can take as long as many training steps), else a new one."""
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    if evals and evals[-1].get("step") == trainer.state.global_step:
        return {k: v for k, v in evals[-1].items() if k != "step"}
    return trainer.evaluate()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "datasets"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
