"""`memllm fill-memory`: the command line of `pipeline.fill_memory` (a write model fills a memory's triples
from a corpus, with Beam).

    memllm fill-memory --model BASE --adapter WRITE_ADAPTER [--source docred|wikipedia] [--input PATH_OR_GLOB ...]
                       --output OUT [--batch-size N] [--split NAME] [BEAM OPTIONS]

Kept free of Beam imports, like `pipeline.cli`: the options, the inputs' extras, the adapter and the base model
(config and tokenizer, no weights) are checked before Beam is imported, and a user's mistake ends with one
line on stderr and exit status 2 (`InputError`, handled by `pipeline.cli.main`). Exit status 1: the run kept
no valid document (its stats.json and dead letters stay in OUT).
"""

from __future__ import annotations

import argparse
import sys

from memllm.pipeline.errors import InputError
from memllm.pipeline.extras import missing_extra
from memllm.pipeline.output_dir import check_output_dir
from memllm.pipeline.runners import check_runner_options, resolve_runner, runner_given

NO_VALID_RECORD = 1


def add_fill_memory_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from memllm.runtime.cli import add_decoding_arguments

    p = sub.add_parser(
        "fill-memory",
        help="extract the triples of a corpus with a write adapter into Parquet shards (Apache Beam)",
        description="Run a MemLLM write adapter over a corpus (DocRED-format documents or Wikipedia articles) and "
        "write the triples it extracts to OUT/triples as Parquet shards, one row per triple with its document and "
        "sentence; load them with `memllm memory build --from OUT/triples`. Options not listed here are Beam "
        "pipeline options (--runner, --direct_num_workers, Dataflow/Flink/Spark).",
        epilog="Exit status: 0 when at least one document was read; 1 when no input record was valid (stats.json "
        "and the dead letters stay in OUTPUT); 2 for a usage or input error, found before anything is written.",
    )
    p.add_argument("--model", required=True, metavar="PATH_OR_ID", help="the base causal LM the adapter was trained on")
    p.add_argument("--adapter", required=True, metavar="DIR", help="the write adapter (`memllm train --task write`)")
    p.add_argument(
        "--source",
        choices=["docred", "wikipedia"],
        default="docred",
        help="input kind: DocRED-format JSON (sentences as given) or Wikipedia articles (HF wikimedia/wikipedia "
        "Parquet, or JSON lines with id, url, title, text; split into sentences here)",
    )
    p.add_argument(
        "--input",
        nargs="+",
        action="extend",
        dest="inputs",
        required=True,
        metavar="PATH_OR_GLOB",
        help="input files",
    )
    p.add_argument("--output", required=True, help="output directory (an earlier memllm output there is rewritten)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --output that is no memllm output")
    p.add_argument("--split", default=None, help="split name for every input (default: from each file name)")
    p.add_argument("--dataset", default=None, help="value of the `source` column (default: from file names)")
    p.add_argument(
        "--sections",
        choices=["lead", "full"],
        default="lead",
        help="Wikipedia: the lead section only (as MemLLM's Wikipedia memory) or the full text",
    )
    p.add_argument("--batch-size", type=int, default=16, help="sentences decoded together (default 16)")
    p.add_argument(
        "--docs-per-chunk",
        type=int,
        default=None,
        metavar="N",
        help="documents per chunk, the unit of decoding and resuming (default 100)",
    )
    p.add_argument("--device", help="torch device of the workers' model (default cuda when available, else cpu)")
    p.add_argument(
        "--torch-threads",
        type=int,
        metavar="N",
        help="torch CPU threads per worker process (default torch's: every core; with several worker processes "
        "on one machine give each cores / processes)",
    )
    p.add_argument("--rows-per-shard", type=int, default=50_000, metavar="N", help="rows per Parquet shard")
    p.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="decode every chunk again (default: reuse the chunks an earlier run with the same arguments, model "
        "and adapter finished, kept in OUTPUT/_resume)",
    )
    add_decoding_arguments(p.add_argument_group("decoding (as `memllm write`)"))
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    talk.add_argument("-v", "--verbose", action="store_true", help="also Beam's own log lines (INFO)")
    p.set_defaults(func=cmd_fill_memory, beam_command=True)
    return p


def check_model(model: str, adapter: str) -> None:
    """The adapter is a write adapter that fits `model` (config and tokenizer only: no weights are loaded)."""
    from memllm.runtime.adapters import check_base, inspect_adapter
    from memllm.runtime.errors import RuntimeInputError
    from memllm.trainer.config import TrainerInputError
    from memllm.trainer.tokenization import load_tokenizer, prepare_tokenizer
    from transformers import AutoConfig

    try:
        info = inspect_adapter(adapter, "write")
        try:
            config = AutoConfig.from_pretrained(model)
            token_info = prepare_tokenizer(load_tokenizer(model))
        except (OSError, ValueError, TrainerInputError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"--model {model}: cannot load it ({first})") from None
        check_base(info, model, config, token_info.vocab_after)
    except RuntimeInputError as e:
        raise InputError(str(e)) from None


def cmd_fill_memory(args: argparse.Namespace, beam_args: list[str]) -> int:
    for name in ("batch_size", "max_new_tokens", "k", "rows_per_shard", "docs_per_chunk", "torch_threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_sents < 0:
        raise InputError("--max-sents must not be negative")
    wikipedia = args.source == "wikipedia"
    if not wikipedia and args.sections != "lead":
        raise InputError("--sections needs --source wikipedia")
    if missing := missing_extra("train", *(["wikipedia"] if wikipedia else [])):
        raise InputError(missing)
    if wikipedia:
        from memllm.runtime.text import splitter_error

        if error := splitter_error():
            raise InputError(error)
    runner = runner_given(beam_args)
    if runner:
        resolve_runner(runner)
    check_output_dir(args.output, args.overwrite)
    check_model(args.model, args.adapter)
    return _fill(args, beam_args)


def _fill(args: argparse.Namespace, beam_args: list[str]) -> int:
    from memllm.pipeline.cli import check_beam_args
    from memllm.pipeline.fill_memory import DOCS_PER_CHUNK, FillConfig, run, summary_table

    cfg = FillConfig(
        inputs=args.inputs,
        output=args.output,
        model=args.model,
        adapter=args.adapter,
        source=args.source,
        sections=args.sections,
        dataset=args.dataset,
        split=args.split,
        device=args.device,
        torch_threads=args.torch_threads,
        batch_size=args.batch_size,
        docs_per_chunk=args.docs_per_chunk or DOCS_PER_CHUNK,
        max_sents=args.max_sents,
        max_prompt_tokens=args.max_prompt_tokens,
        max_new_tokens=args.max_new_tokens,
        k=args.k,
        length=args.length,
        force_non_empty=args.force_non_empty,
        rows_per_shard=args.rows_per_shard,
        resume=args.resume,
        beam_args=check_beam_args(beam_args),
    )
    cfg.beam_args = check_runner_options(cfg.beam_args, cfg.output, args.inputs)
    stats = run(cfg)
    print(summary_table(stats, cfg.output))
    if stats.get("documents.valid", 0) == 0:
        records = stats.get("input.records", 0)
        print(
            f"memllm: error: no valid document among {records:,} input record(s) (the dead letters are in "
            f"{cfg.output}/errors)",
            file=sys.stderr,
        )
        return NO_VALID_RECORD
    return 0
