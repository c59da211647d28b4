"""The `memllm` console script: `generate` (the Beam job), `train`, `memory`.

User mistakes (a missing file, a file that is not JSON, a bad flag, an extra that is not installed, an
`--output` that holds someone else's files) end with one line on stderr and exit status 2, never a
traceback, before anything is written. Beam's own options (`--runner`, `--direct_num_workers`,
Dataflow/Flink/Spark options) pass through to Beam unchanged, spelled as Beam spells them, and unknown ones
are refused up front; memllm's own options are spelled with hyphens (`--rows-per-shard`; the underscore
spellings of the older ones still work).

Exit status of `memllm generate`: 0 when the run wrote at least one valid document; 1 when it ran but no
input record was valid (the stats and dead letters it wrote stay, to explain why; one line on stderr gives
a hint); 2 for a usage or input error found before the run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from importlib import resources

from memllm.annotators.evidence_llm import DEFAULT_JUDGE_MODEL
from memllm.annotators.nlp import model_error
from memllm.annotators.write_examples import reference_stream_seed
from memllm.memory.embedding import CONTRIEVER, check_model_available
from memllm.memory.errors import MemoryUsageError
from memllm.memory.presets import DEFAULT_PRESET, PRESETS
from memllm.pipeline import index_ahead
from memllm.pipeline.errors import InputError
from memllm.pipeline.evidence_eval_cli import add_judge_arguments, judge_options_error
from memllm.pipeline.extras import missing_extra
from memllm.pipeline.output_dir import check_output_dir
from memllm.pipeline.runners import check_runner_options, resolve_runner, runner_given

from memllm import __version__

SAMPLE = "sample_docred.json"
WIKIPEDIA_SAMPLE = "sample_wikipedia.jsonl"  # with its knowledge base, in the Wikidata dump format:
WIKIPEDIA_SAMPLE_KB = "sample_wikidata.json"
DEFAULT_OUTPUT = "memllm-out"
# Tests and CI pin the FnApiRunner: the default DirectRunner first tries to download Prism.
DEFAULT_RUNNER = "FnApiRunner"
NO_VALID_RECORD = 1  # exit status of a run that wrote no valid document


class _BeamImportNoise(logging.Filter):
    """Drops the warning Beam logs (on the root logger) each time it is imported without its GCP extra:
    `apitools not found, and bigquery client libraries are not available ...`; memllm uses no BigQuery.
    Shown again with --verbose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and str(record.msg).startswith("apitools not found"))


BEAM_IMPORT_NOISE = _BeamImportNoise()


def sample_path(name: str = SAMPLE) -> str:
    return str(resources.files("memllm.pipeline") / "sample" / name)


def _beam_option_parser() -> argparse.ArgumentParser:
    from apache_beam.options.pipeline_options import PipelineOptions

    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    seen, todo = set(), [PipelineOptions]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
                try:
                    sub._add_argparse_args(parser)
                except argparse.ArgumentError:
                    pass  # an option declared by two classes
    return parser


def check_beam_args(args: list[str]) -> list[str]:
    """Refuse options Beam does not know (Beam itself would only log and ignore them)."""
    from memllm.pipeline.runners import register_runner_options

    register_runner_options(args)  # the Dask options are declared only once Beam's dask runner is imported
    _, unknown = _beam_option_parser().parse_known_args(args)
    if unknown:
        raise InputError(f"unknown option(s): {' '.join(unknown)} (see `memllm generate --help`)")
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args = [f"--runner={DEFAULT_RUNNER}", *args]
    return args


def add_generate_parser(sub) -> None:
    g = sub.add_parser(
        "generate",
        help="make memory-write and memory-read examples (Apache Beam)",
        description="Make memory-write and memory-read training examples. Options not listed here are "
        "Beam pipeline options (--runner, --direct_running_mode, --direct_num_workers, Dataflow/Flink/Spark).",
        epilog="Exit status: 0 when at least one valid document was written; 1 when the run kept no valid "
        "record (its stats.json and dead letters stay in OUTPUT, and one line says why); 2 for a usage or input "
        "error, found before anything is written.",
    )
    g.add_argument(
        "--source",
        choices=["docred", "wikipedia"],
        default="docred",
        help="input kind: DocRED-format JSON (DocRED, Re-DocRED, DocRED distant) or Wikipedia articles "
        "(HF wikimedia/wikipedia Parquet, or JSON lines with id, url, title, text)",
    )
    g.add_argument(
        "--input",
        nargs="+",
        action="extend",
        dest="inputs",
        metavar="PATH_OR_GLOB",
        help="input files (JSON array or JSON lines); default: the shipped sample",
    )
    g.add_argument(
        "--output",
        default=None,
        help=f"output directory (default ./{DEFAULT_OUTPUT}); an earlier memllm output there is rewritten, "
        "another non-empty directory is refused without --overwrite",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a non-empty --output that holds no earlier memllm output (its README.md is replaced "
        "by the dataset card; other files are left alone)",
    )
    g.add_argument(
        "--split", default=None, help="split name for every input (default: from each file name: train/validation/test)"
    )
    g.add_argument(
        "--dataset",
        default=None,
        help="value of the `source` column (default: from file names: redocred, docred, docred_distant)",
    )
    g.add_argument(
        "--kb",
        default=None,
        metavar="DUMP_OR_DIR",
        help="Wikipedia path: a Wikidata JSON dump (.json, .json.gz, .json.bz2; built once into OUTPUT/kb as "
        "Parquet and reused) or a KB directory built from one (default with no --input: the sample's KB)",
    )
    g.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="annotate every article (Wikipedia path) or judge every batch (--evidence llm) again (default: "
        "reuse the chunks that an earlier run with the same arguments finished, kept in OUTPUT/_resume)",
    )
    g.add_argument(
        "--sections",
        choices=["lead", "full"],
        default="lead",
        help="Wikipedia path: the lead section only (as MemLLM's Wikipedia memory) or the full text",
    )
    g.add_argument(
        "--memory",
        choices=["exact", "embedding"],
        default="exact",
        help="memory answering Algorithm 1's queries (exact: the input's gold triples, exact strings; "
        "embedding: a stored memory with embedding search, built from the input's gold triples if absent)",
    )
    g.add_argument(
        "--memory-path",
        dest="memory_path",
        default=None,
        metavar="DIR",
        help="embedding memory directory: opened if it holds one, else built there (default OUTPUT/memory)",
    )
    g.add_argument(
        "--embedding-model",
        dest="embedding_model",
        default=CONTRIEVER,
        metavar="DIR_OR_ID",
        help=f"transformers encoder of the embedding memory (default {CONTRIEVER})",
    )
    g.add_argument(
        "--memory-preset",
        dest="memory_preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help=f"thresholds of the embedding memory (default {DEFAULT_PRESET}, the reference's for Algorithm 1)",
    )
    g.add_argument(
        "--evidence",
        choices=["keep", "heuristic", "llm"],
        default="keep",
        help="evidence for relations without any (keep: as the reference, every sentence; heuristic: the "
        "sentence where both entities have first been mentioned; llm: the sentences an LLM judge accepts, "
        "else the last candidate sentence)",
    )
    add_judge_arguments(g)
    g.add_argument("--seed", type=int, default=42, help="seed of the mention-pair choice (reference: 42)")
    g.add_argument(
        "--rows-per-shard",
        "--rows_per_shard",
        dest="rows_per_shard",
        type=int,
        default=50_000,
        metavar="N",
        help="rows per Parquet shard (default 50000)",
    )
    g.add_argument(
        "--write-documents",
        "--write_documents",
        dest="write_documents",
        action="store_true",
        help="also write the validated documents/ table",
    )
    talk = g.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    talk.add_argument(
        "-v", "--verbose", action="store_true", help="also Beam's own log lines (INFO), including its import warnings"
    )


def cmd_generate(args: argparse.Namespace, beam_args: list[str]) -> int:
    wikipedia = args.source == "wikipedia"
    if not wikipedia and (args.kb or args.sections != "lead"):
        raise InputError("--kb and --sections need --source wikipedia")
    if wikipedia and args.inputs and not args.kb:
        raise InputError("--source wikipedia needs --kb (a Wikidata JSON dump or a KB directory)")
    if args.memory != "embedding" and (args.memory_path or args.memory_preset != DEFAULT_PRESET):
        raise InputError("--memory-path and --memory-preset need --memory embedding")
    if args.evidence != "llm" and args.judge_model:
        raise InputError("--judge-model needs --evidence llm")
    if args.rows_per_shard < 1:
        raise InputError("--rows-per-shard must be at least 1")
    features = [f for f, on in (("wikipedia", wikipedia), ("memory", args.memory == "embedding")) if on]
    if missing := missing_extra(*features, *(["judge"] if args.evidence == "llm" else [])):
        raise InputError(missing)
    if args.evidence == "llm" and (error := judge_options_error(args)):
        raise InputError(error)
    if wikipedia and (error := model_error()):  # before Beam is imported, which logs on import
        raise InputError(error)
    runner = runner_given(beam_args)
    if runner:
        runner = resolve_runner(runner)  # an unknown runner fails here, not as Beam's ValueError stack
    check_output_dir(args.output or DEFAULT_OUTPUT, args.overwrite)
    if args.memory == "embedding":  # not in the cache and no hub: fail now, not after a minute of retries
        check_model_available(args.embedding_model)
    inputs = args.inputs or [sample_path(WIKIPEDIA_SAMPLE if wikipedia else SAMPLE)]
    # The index helper starts before Beam is imported (~1.5 s), on the core the launcher leaves idle.
    seed = reference_stream_seed(args.evidence, args.seed)
    ahead = None if wikipedia else index_ahead.start_local(inputs, seed, runner)
    try:
        return _generate(args, beam_args, inputs, ahead)
    finally:
        if ahead is not None:
            ahead.close()


def _generate(args: argparse.Namespace, beam_args: list[str], inputs: list[str], ahead) -> int:
    from memllm.pipeline.generate import GenerateConfig, run, summary_table

    wikipedia = args.source == "wikipedia"
    cfg = GenerateConfig(
        inputs=inputs,
        output=args.output or DEFAULT_OUTPUT,
        source=args.source,
        kb=args.kb or (sample_path(WIKIPEDIA_SAMPLE_KB) if wikipedia else None),
        sections=args.sections,
        resume=args.resume,
        dataset=args.dataset or ("sample" if not args.inputs else None),
        split=args.split,
        memory=args.memory,
        memory_path=args.memory_path,
        embedding_model=args.embedding_model,
        memory_preset=args.memory_preset,
        evidence=args.evidence,
        judge_model=args.judge_model or DEFAULT_JUDGE_MODEL,
        judge_batch_size=args.judge_batch_size,
        judge_max_new_tokens=args.judge_max_new_tokens,
        seed=args.seed,
        rows_per_shard=args.rows_per_shard,
        write_documents=args.write_documents,
        beam_args=check_beam_args(beam_args),
    )
    # Options that do not apply to the runner fail here, before any worker starts (pipeline.runners).
    cfg.beam_args = check_runner_options(cfg.beam_args, cfg.output, args.inputs)
    stats = run(cfg, ahead=ahead)
    print(summary_table(stats, cfg.output))
    if stats.get("documents.valid", 0) == 0:
        print(f"memllm: error: {no_valid_record_message(stats, cfg.output, args.source)}", file=sys.stderr)
        return NO_VALID_RECORD
    return 0


def no_valid_record_message(stats: dict, output: str, source: str) -> str:
    """Why a run wrote no valid document, in one line, with a hint read from its first dead letters."""
    from apache_beam.io.filesystems import FileSystems

    records = stats.get("input.records", 0)
    if records == 0 and not stats.get("input.json_errors", 0):
        return "the input holds no records: no examples were written"
    errors = FileSystems.join(output, "errors")
    head = f"no valid record among {records:,} input record(s) (the dead letters are in {errors})"
    articles = documents = 0
    shards = FileSystems.match([FileSystems.join(errors, "*.jsonl")])[0].metadata_list
    for shard in sorted(shards, key=lambda m: m.path)[:1]:
        with FileSystems.open(shard.path) as f:
            for _, line in zip(range(100), f):
                record = json.loads(line).get("record") or ""
                articles += '"text":' in record and '"sents":' not in record
                documents += '"sents":' in record
    if source == "docred" and articles:
        return f"{head}: they look like Wikipedia articles (a text field, no sents): use --source wikipedia"
    if source == "wikipedia" and documents:
        return f"{head}: they look like DocRED-format documents (sents): drop --source wikipedia"
    return head


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memllm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"memllm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_generate_parser(sub)
    adders = (
        ("memllm.trainer.cli", "add_train_parser"),
        ("memllm.memory.cli", "add_memory_parser"),
        ("memllm.pipeline.evidence_eval_cli", "add_evidence_eval_parser"),
        ("memllm.runtime.cli", "add_runtime_parsers"),
        ("memllm.pipeline.fill_memory_cli", "add_fill_memory_parser"),
    )
    for module, adder in adders:
        # These modules import nothing beyond the base install (their commands check for extras when run), so
        # a failing import is a bug to see, not a command to hide.
        getattr(importlib.import_module(module), adder)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    root = logging.getLogger()
    if verbose:
        root.setLevel(logging.INFO)
        root.removeFilter(BEAM_IMPORT_NOISE)
    else:
        root.addFilter(BEAM_IMPORT_NOISE)  # on the logger: Beam logs it on the root logger itself
    logging.getLogger("memllm").setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        if args.command == "generate":
            return cmd_generate(args, rest)
        if getattr(args, "beam_command", False):  # a Beam job of its own (fill-memory): Beam options pass on
            return args.func(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except (InputError, MemoryUsageError) as e:
        print(f"memllm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memllm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
