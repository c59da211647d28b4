"""Training throughput of `memllm train`, padded vs packed, side by side in one run.

Runs the real trainer code (shards -> `prepare_inputs` -> `prepare_model` -> transformers `Trainer`) on
synthetic memory-write shards with Re-DocRED-like lengths (or on real shards, `--data`), once with right
padding and once with padding-free packing, each in its own process so that peak memory is measured per
variant. Both variants train the same effective batch; the packed one may split it into larger micro batches
(`--packed-micro-batch-size`), which padding makes costly and packing does not. Prints per variant: optimizer
step time, tokens/s (all real tokens, and the trained ones), the share of padding computed, and peak memory
(CUDA: max allocated; CPU: the process's peak RSS).

    python benchmarks/bench_trainer.py                          # CPU, tiny random Mistral, real tokenizer
    python benchmarks/bench_trainer.py --data OUT --micro-batch-size 3 --accumulation 4   # real shards
    # Mistral-7B architecture (random weights) on one GPU, MemLLM's effective batch of 96:
    python benchmarks/bench_trainer.py --model TOKENIZER_DIR --mistral-7b-config --device cuda --bf16 \
        --data OUT --steps 6 --warmup 2 --attn-implementation sdpa --task write --micro-batch-size 3 \
        --accumulation 32 --packed-micro-batch-size 12
    python benchmarks/bench_trainer.py --model TOKENIZER_DIR --mistral-7b-config --device cuda --bf16 \
        --data OUT --steps 6 --warmup 2 --attn-implementation sdpa --task read --micro-batch-size 2 \
        --accumulation 48 --packed-micro-batch-size 12
    python benchmarks/bench_trainer.py --model MODEL_DIR --device cuda --bf16   # a real model's weights

`OUT` is a `memllm generate` output directory; with `--mistral-7b-config`, `--model` supplies only the
tokenizer (without it, Mistral-7B-v0.1's from `mistral-common`). `--mistral-7b-config --layers N` keeps
Mistral-7B's widths with N of its 32 layers (a smaller device, or a check of that code path on CPU in fp32:
a CPU without bf16 units runs bf16 many times slower, over 16 minutes for two steps of the 1-layer model
against 2 minutes in fp32).
With SDPA or eager attention a packed micro batch is one row under a block-diagonal mask, so attention costs
the square of the packed length: large `--packed-micro-batch-size` wants `--attn-implementation
flash_attention_2` (sequence boundaries, no mask).

The tokenizer is Mistral-7B-v0.1's, read from the `mistral-common` package data (or the `--model`'s own).
Both variants see the same examples in the same order; their losses differ only by dropout noise.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memllm.schemas.records import MEMORY_WRITE_SCHEMA, DocRef, WriteExample, WriteTriple  # noqa: E402

from tests.support.tiny import convert_mistral_tokenizer, mistral_tokenizer_source, save_tiny_mistral  # noqa: E402

WORDS = (
    "the of and in a to was is for as by with on at from his an which that first also film album "
    "river county born city season team series new war known united states national university album "
    "novel singer award church village school company league record station island museum"
).split()


def synthetic_shards(out: Path, n_docs: int, seed: int = 0) -> None:
    """Write examples for documents of 4-10 sentences of 10-30 words: prompts of ~30-700 tokens."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    rows = []
    for d in range(n_docs):
        doc = DocRef("sample", "train", f"bench{d}", d, f"Bench {d}")
        sents = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 30))) + " ." for _ in range(rng.randint(4, 10))
        ]
        for i, focus in enumerate(sents):
            triples = [
                WriteTriple(rng.choice(WORDS).title(), rng.choice(WORDS), rng.choice(WORDS).title(), 0, 1, "P1", k)
                for k in range(rng.randint(0, 4))
            ]
            rows.append(WriteExample(doc, i, " ".join(sents[:i]), focus, triples).to_row())
    (out / "memory_write").mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=MEMORY_WRITE_SCHEMA),
        out / "memory_write" / "train-00000-of-00001.parquet",
    )


def mistral_tokenizer(dest: Path) -> Path:
    """Mistral-7B-v0.1's tokenizer from the mistral-common package data, converted once to tokenizer.json."""
    source = mistral_tokenizer_source()
    if source is None:
        sys.exit("bench_trainer: install mistral-common (--no-deps) or pass --model")
    return convert_mistral_tokenizer(source, dest / "spm", dest / "tokenizer")


def build_model_dir(args: argparse.Namespace, work: Path) -> str:
    """A model directory for the run: `--model`, or the tiny random Mistral with the real tokenizer."""
    if args.model:
        return args.model
    tok_dir = mistral_tokenizer(work)
    out = work / ("mistral-7b-tokenizer" if args.mistral_7b_config else "tiny-mistral")
    if args.mistral_7b_config:  # weights are built in the worker; only the tokenizer lives here
        shutil.copytree(tok_dir, out)
        return str(out)
    save_tiny_mistral(out, tok_dir)
    return str(out)


def worker(args: argparse.Namespace, model_dir: str, data: Path, packing: bool, queue: mp.Queue) -> None:
    """One variant in its own process: train `warmup + steps` optimizer steps and report the measured ones."""
    import torch
    from memllm.trainer.config import DataSource, TrainConfig
    from memllm.trainer.modeling import load_base_model, prepare_model
    from memllm.trainer.recipe import build_trainer, plan_steps, prepare_inputs
    from transformers import TrainerCallback, set_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    total = args.warmup + args.steps
    micro = args.packed_micro_batch_size if packing else args.micro_batch_size
    cfg = TrainConfig(
        data=[DataSource(data)],
        task=args.task,
        model=model_dir,
        output=Path(args.work) / f"out-{packing}",
        micro_batch_size=micro,
        batch_size=args.micro_batch_size * args.accumulation,
        max_steps=total,
        packing=packing,
        precision="bf16" if args.bf16 else "fp32",
        cutoff=args.cutoff,
        gradient_checkpointing=args.gradient_checkpointing,
        attn_implementation=args.attn_implementation,
        use_cpu=args.device == "cpu",
        eval_split="none",
        save_every=10**9,
        logging_steps=10**9,
        progress=False,
        report_to=[],
        cache_dir=str(Path(args.work) / "cache"),
        overwrite=True,
        optim=args.optim,
    ).resolved()
    tokenizer, info, prepared = prepare_inputs(cfg)
    plan = plan_steps(cfg, prepared.train_examples, 1)
    set_seed(cfg.seed)
    if args.mistral_7b_config:
        from transformers import AutoModelForCausalLM, MistralConfig

        with torch.device("cuda" if args.device == "cuda" else "cpu"):
            base = AutoModelForCausalLM.from_config(
                MistralConfig(**({"num_hidden_layers": args.layers} if args.layers else {})),
                dtype=torch.bfloat16 if args.bf16 else None,
                attn_implementation=args.attn_implementation,
            )
    else:
        base = load_base_model(cfg, cfg.precision)
    model = prepare_model(base, cfg, info)
    counts: list[tuple[int, int, int]] = []  # per micro batch: computed positions, real tokens, trained tokens
    ends: list[float] = []

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            ends.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            ends.append(time.perf_counter())

    trainer = build_trainer(
        cfg,
        model,
        tokenizer,
        info,
        prepared,
        plan,
        cfg.precision,
        callbacks=[Timer()],
    )
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        real = sum(len(f["input_ids"]) for f in features)
        trained = sum(sum(x != -100 for x in f["labels"][1:]) for f in features)
        counts.append((batch["input_ids"].numel(), real, trained))
        return batch

    trainer.data_collator = counting
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    per_step = plan.accumulation
    measured = counts[args.warmup * per_step : total * per_step]
    seconds = ends[total] - ends[args.warmup]
    if torch.cuda.is_available() and args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    computed, real, trained = (sum(column) for column in zip(*measured))  # of the measured steps
    queue.put(
        {
            "variant": "packed" if packing else "padded",
            "micro": f"{micro} x {plan.accumulation}",
            "tokens": real,
            "trained": trained,
            "step_s": seconds / args.steps,
            "tokens_per_s": real / seconds,
            "trained_per_s": trained / seconds,
            "padding": 1 - real / max(1, computed),
            "peak_gib": peak,
            "loss": trainer.state.log_history[-1].get("train_loss"),
            "examples": prepared.train_examples,
        }
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--model",
        help="model directory or hub id (default: a tiny random Mistral); with --mistral-7b-config, its tokenizer",
    )
    p.add_argument("--mistral-7b-config", action="store_true", help="Mistral-7B architecture, random weights")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--data", type=Path, help="pipeline output directory to train on (default: synthetic shards)")
    p.add_argument("--task", choices=["write", "read"], default="write")
    p.add_argument("--layers", type=int, help="with --mistral-7b-config: this many layers instead of 32")
    p.add_argument("--micro-batch-size", type=int, default=4)
    p.add_argument("--accumulation", type=int, default=2)
    p.add_argument(
        "--packed-micro-batch-size",
        type=int,
        help="the packed variant's micro batch (default: --micro-batch-size); the effective batch stays",
    )
    p.add_argument("--steps", type=int, default=6, help="measured optimizer steps")
    p.add_argument("--warmup", type=int, default=2, help="optimizer steps before measuring")
    p.add_argument("--docs", type=int, default=60, help="synthetic documents (~7 write examples each)")
    p.add_argument("--cutoff", type=int, default=1024)
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--attn-implementation", default="sdpa")
    p.add_argument("--optim", default="adamw_torch")
    p.add_argument("--json", type=Path, help="also write the figures of both variants to this file")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: 1 on CPU, where more lose to contention on a shared box)",
    )
    args = p.parse_args()
    if args.threads is None and args.device == "cpu":
        args.threads = 1
    if args.packed_micro_batch_size is None:
        args.packed_micro_batch_size = args.micro_batch_size
    if (args.micro_batch_size * args.accumulation) % args.packed_micro_batch_size:
        p.error("--packed-micro-batch-size must divide the effective batch (micro batch x accumulation)")
    if args.task == "read" and not args.data:
        p.error("--task read needs --data (the synthetic shards are memory-write)")
    if args.data and not (args.data / f"memory_{args.task}").is_dir():
        p.error(f"--data {args.data}: no memory_{args.task}/ shards there")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        args.work = tmp
        data = args.data or Path(tmp) / "data"
        if not args.data:
            synthetic_shards(data, args.docs)
        model_dir = build_model_dir(args, Path(tmp))
        ctx = mp.get_context("spawn")  # a fresh process per variant: clean peak-memory figures
        results = []
        for packing in (False, True):
            q = ctx.Queue()
            proc = ctx.Process(target=worker, args=(args, model_dir, data, packing, q))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                sys.exit(f"bench_trainer: the {'packed' if packing else 'padded'} run failed")
            results.append(q.get())
    name = (
        f"Mistral-7B config{f' ({args.layers} of 32 layers)' if args.layers else ''}, random weights"
        if args.mistral_7b_config
        else args.model or "tiny random Mistral"
    )
    print(
        f"model: {name}; device {args.device}{' bf16' if args.bf16 else ''}"
        f"{f' ({args.threads} thread)' if args.threads else ''}; "
        f"effective batch {args.micro_batch_size * args.accumulation}; "
        f"{args.steps} measured steps after {args.warmup}; "
        f"{results[0]['examples']} {args.task} examples ({args.data or 'synthetic'}), cutoff {args.cutoff}"
    )
    print(
        f"{'variant':<8} {'micro x acc':>11} {'step s':>8} {'tokens/s':>10} {'trained/s':>10} {'padding':>8} "
        f"{'peak GiB':>9}"
    )
    for r in results:
        print(
            f"{r['variant']:<8} {r['micro']:>11} {r['step_s']:>8.3f} {r['tokens_per_s']:>10,.0f} "
            f"{r['trained_per_s']:>10,.0f} {r['padding']:>8.1%} {r['peak_gib']:>9.2f}"
        )
    print(f"packed/padded throughput: {results[1]['tokens_per_s'] / results[0]['tokens_per_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
