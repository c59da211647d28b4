"""`memllm train` (and `python -m memllm.trainer`): argparse front end of `trainer.recipe.train`.

    memllm train --data OUT [--data OUT2:2 ...] --task write|read --model PATH_OR_ID --output DIR [options]

`add_train_parser(subparsers)` registers the subcommand on the `memllm` parser; its handler returns the exit
code: 0, or 2 with a one-line `memllm train: error: ...` for bad input (`TrainerInputError`), the same code
argparse uses for bad options. Multi-GPU: `torchrun --nproc-per-node N -m memllm.trainer ...` or
`accelerate launch -m memllm.trainer ...`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memllm.trainer.config import (
    LORA_TARGETS,
    MASKING_POLICIES,
    PRECISIONS,
    TASKS,
    DataSource,
    TrainConfig,
    TrainerInputError,
)

DESCRIPTION = "Finetune a causal LM with a LoRA adapter on memllm shards (memory-write or memory-read)."


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends `(default: ...)` to an option's help where there is a default to show: not for flags (off
    by default), options without a default (None), or help that already says its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or isinstance(action.default, bool) or "default" in text:
            return text
        return super()._get_help_string(action)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig(data=[], task="write", model="", output=Path("."))  # the defaults, shown in --help
    req = p.add_argument_group("required")
    req.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="DIR[:RATE]",
        help="pipeline output (or table) directory; repeat to mix, RATE oversamples (e.g. DIR:2)",
    )
    req.add_argument("--task", required=True, choices=TASKS, help="which adapter: memory-write or memory-read")
    req.add_argument("--model", required=True, metavar="PATH_OR_ID", help="base causal LM (local dir or hub id)")
    req.add_argument(
        "--output", required=True, type=Path, metavar="DIR", help="directory of the checkpoints and the adapter"
    )

    g = p.add_argument_group("data")
    g.add_argument(
        "--masking",
        choices=MASKING_POLICIES,
        default=d.masking,
        help="segments: the shards' labels; reference: the reference code's masking rule",
    )
    g.add_argument("--cutoff", type=int, default=d.cutoff, help="max tokens per example, left truncation")
    g.add_argument("--max-triples", type=int, default=d.max_triples, help="drop write examples with >= N triples")
    g.add_argument("--train-split", default=d.train_split, help="split of the shards to train on")
    g.add_argument("--eval-split", default=None, help="default: validation or dev when present; 'none' for none")
    g.add_argument(
        "--eval-fraction",
        type=float,
        default=d.eval_fraction,
        help="without an eval split, hold out this fraction of the training documents",
    )
    g.add_argument("--streaming", action="store_true", help="stream the shards instead of caching them as Arrow")
    g.add_argument("--num-proc", type=int, default=None, help="processes for tokenization")
    g.add_argument("--cache-dir", default=None, help="datasets cache directory")
    g.add_argument(
        "--export-tokenized",
        metavar="DIR",
        default=None,
        help="write the tokenized data as Parquet for axolotl and TRL (DIR/axolotl, DIR/trl) and stop",
    )

    g = p.add_argument_group("LoRA")
    g.add_argument("--lora-r", type=int, default=d.lora_r, help="LoRA rank")
    g.add_argument("--lora-alpha", type=int, default=d.lora_alpha, help="LoRA scaling (alpha / r scales the update)")
    g.add_argument("--lora-dropout", type=float, default=d.lora_dropout, help="dropout on the LoRA input")
    g.add_argument("--target-modules", default=",".join(LORA_TARGETS), help="comma-separated module names")
    g.add_argument(
        "--init-adapter",
        default=None,
        metavar="DIR",
        help="start from these LoRA weights (optimizer and schedule start fresh)",
    )

    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--lr", "--learning-rate", dest="learning_rate", type=float, default=d.learning_rate, help="peak learning rate"
    )
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    g.add_argument("--warmup-ratio", type=float, default=None, help="default: 0.01 write, 0.05 read")
    g.add_argument("--epochs", type=float, default=d.epochs, help="passes over the training data (may be fractional)")
    g.add_argument("--max-steps", type=int, default=d.max_steps, help="> 0 overrides --epochs")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="effective batch (all processes)")
    g.add_argument("--micro-batch-size", type=int, default=d.micro_batch_size, help="per device and step")
    g.add_argument("--eval-batch-size", type=int, default=None, help="per device (default: --micro-batch-size)")
    g.add_argument("--optim", default=d.optim, help="a transformers optimizer name (adamw_torch_fused on GPUs)")
    g.add_argument(
        "--precision", choices=PRECISIONS, default=d.precision, help="auto: bf16 on GPUs that support it, else fp32"
    )
    g.add_argument("--attn-implementation", default=None, help="eager, sdpa, flash_attention_2, ...")
    g.add_argument(
        "--packing",
        action="store_true",
        help="padding-free packing of each micro batch into one row (with sdpa/eager, attention over the "
        "row grows with its square: large micro batches want flash_attention_2)",
    )
    g.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute activations in the backward pass (less memory)"
    )
    g.add_argument("--cpu", dest="use_cpu", action="store_true", help="train on the CPU even with a GPU")

    g = p.add_argument_group("run")
    g.add_argument("--eval-every", type=float, default=d.eval_every, help="steps, or a fraction (< 1) of them")
    g.add_argument("--save-every", type=float, default=d.save_every, help="steps, or a fraction (< 1) of them")
    g.add_argument("--save-total-limit", type=int, default=None, help="keep only the last N checkpoints")
    g.add_argument(
        "--logging-steps", type=float, default=d.logging_steps, help="log every N steps, or a fraction (< 1) of them"
    )
    g.add_argument("--seed", type=int, default=d.seed, help="seed of the data order, LoRA init and dropout")
    g.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CHECKPOINT",
        help="continue from the latest checkpoint in --output (or the one given)",
    )
    g.add_argument("--overwrite", action="store_true", help="start over even if --output holds checkpoints")
    g.add_argument(
        "--report-to",
        default=None,
        help="comma-separated integrations (tensorboard, wandb, ...); default: those installed; 'none'",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    report_to = None if args.report_to is None else [x for x in args.report_to.split(",") if x and x != "none"]
    return TrainConfig(
        data=[DataSource.parse(s) for s in args.data],
        task=args.task,
        model=args.model,
        output=args.output,
        masking=args.masking,
        cutoff=args.cutoff,
        max_triples=args.max_triples,
        train_split=args.train_split,
        eval_split=args.eval_split,
        eval_fraction=args.eval_fraction,
        streaming=args.streaming,
        num_proc=args.num_proc,
        cache_dir=args.cache_dir,
        export_tokenized=args.export_tokenized,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=[t for t in args.target_modules.split(",") if t],
        init_adapter=args.init_adapter,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        eval_batch_size=args.eval_batch_size,
        optim=args.optim,
        precision=args.precision,
        attn_implementation=args.attn_implementation,
        packing=args.packing,
        gradient_checkpointing=args.gradient_checkpointing,
        use_cpu=args.use_cpu,
        eval_every=args.eval_every,
        save_every=args.save_every,
        save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps,
        seed=args.seed,
        resume=args.resume,
        overwrite=args.overwrite,
        report_to=report_to,
        progress=args.progress,
    )


def run_train(args: argparse.Namespace) -> int:
    """The subcommand handler: train, or print a one-line error and return 2 for bad input."""
    from memllm.pipeline.extras import missing_extra

    if missing := missing_extra("train"):  # before importing the recipe, which imports torch
        print(f"memllm train: error: {missing}", file=sys.stderr)
        return 2
    from memllm.trainer.recipe import train

    try:
        train(config_from_args(args))
        code = 0
    except TrainerInputError as e:
        print(f"memllm train: error: {e}", file=sys.stderr)
        code = 2
    leave_process_group(wait=code == 0)
    return code


def leave_process_group(wait: bool) -> None:
    """Under torchrun, leave the process group before the process exits. Exiting with gloo's threads still
    up aborted a process in CI once ("terminate called without an active exception", SIGABRT) after the
    run had trained and saved everything, failing the launch."""
    dist = sys.modules.get("torch.distributed")  # not imported: no group to leave
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    if wait:
        dist.barrier()
    dist.destroy_process_group()


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `train` on the `memllm` parser; `args.func(args)` then returns the exit code."""
    p = subparsers.add_parser("train", help=DESCRIPTION, description=DESCRIPTION, formatter_class=HelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run_train)
    return p


def main(argv: list[str] | None = None) -> int:
    """`python -m memllm.trainer ...`: the same options as `memllm train`."""
    p = argparse.ArgumentParser(prog="memllm train", description=DESCRIPTION, formatter_class=HelpFormatter)
    add_arguments(p)
    return run_train(p.parse_args(argv))
