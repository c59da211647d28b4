"""`memllm memory build|query|stats`: fill, ask and inspect a stored embedding memory from the shell.

`add_memory_parser(subparsers)` registers the command group on the `memllm` argparse parser; each command
sets `func`, which returns the exit code (`sys.exit(args.func(args))`). A user's mistake (missing file,
malformed query, another embedder's memory) prints one line to stderr and returns 2, without a traceback:
`func` handles `MemoryUsageError` itself, so the caller needs no try/except.
`python -m memllm.memory.cli ...` runs the group on its own.

What it doesn't do: Beam (the pipeline builds memories at scale), serve queries over the network.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from memllm.memory.embedding import CONTRIEVER, Embedder, TransformerEmbedder
from memllm.memory.embedding_memory import DB_FILE, EmbeddingMemory
from memllm.memory.errors import MemoryUsageError
from memllm.memory.presets import DEFAULT_PRESET, PRESETS, get_preset
from memllm.memory.sources import input_triples, relation_labels, table_triples
from memllm.memory.store import TripleStore
from memllm.pipeline.extras import missing_extra
from memllm.schemas.api import APIParseError, parse_query


def add_memory_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `memory` with its subcommands `build`, `query`, `stats` to an argparse subparsers object."""
    group = subparsers.add_parser(
        "memory",
        help="build, query and inspect an embedding memory",
        description="Build, query and inspect a stored embedding memory "
        "(`memllm memory build|query|stats --help` for each command).",
    )
    group.set_defaults(func=lambda args: _usage(group))
    commands = group.add_subparsers(dest="memory_command", metavar="{build,query,stats}")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--memory-path",
        required=True,
        metavar="DIR",
        help="the memory directory (memory.sqlite + entities.index + relations.index)",
    )
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--embedding-model",
        default=CONTRIEVER,
        metavar="DIR_OR_ID",
        help=f"transformers encoder directory or hub id (default {CONTRIEVER})",
    )
    model.add_argument("--device", default="cpu", help="torch device of the embedder (default cpu)")

    build = commands.add_parser(
        "build",
        parents=[common, model],
        help="add triples from memory_write shards, DocRED-format documents or `memllm fill-memory` triples",
    )
    build.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="a .parquet shard, a directory of shards, or a DocRED .json/.jsonl file",
    )
    build.add_argument(
        "--from",
        dest="from_dir",
        metavar="DIR",
        help="instead of INPUTs: the triples/ shards of `memllm fill-memory` (OUT/triples), loaded in id order "
        "(document, sentence, triple); a triple seen twice is stored once",
    )
    build.add_argument(
        "--mode",
        choices=("insert", "overwrite"),
        default="insert",
        help="overwrite: a triple replaces stored ones with the same head and relation",
    )
    build.add_argument("--batch-size", type=int, default=50_000, help="triples per transaction")
    build.add_argument("--labels", metavar="FILE", help="property id → label JSON for DocRED input")
    build.set_defaults(func=_guarded(_build, needs_model=True))

    query = commands.add_parser("query", parents=[common, model], help="answer queries in the API syntax")
    query.add_argument("queries", nargs="+", metavar="QUERY", help="'subject>>relation>>' or '>>relation>>object'")
    query.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help=f"thresholds (default {DEFAULT_PRESET})",
    )
    query.add_argument("--exclude-id", type=int, action="append", default=[], help="triple id to leave out")
    query.add_argument("--json", action="store_true", help="print one JSON object per query")
    query.set_defaults(func=_guarded(_query, needs_model=True))

    stats = commands.add_parser("stats", parents=[common], help="counts, embedder and file sizes")
    stats.set_defaults(func=_guarded(_stats))
    return group


def _guarded(
    command: Callable[[argparse.Namespace], int], needs_model: bool = False
) -> Callable[[argparse.Namespace], int]:
    """`command` with user errors turned into one line on stderr and exit code 2. `needs_model`: the command
    embeds, so it needs the memory extra (torch, transformers, faiss), checked before any input is read."""

    def guarded(args: argparse.Namespace) -> int:
        try:
            if needs_model and (missing := missing_extra("memory")):
                raise MemoryUsageError(missing)
            return command(args)
        except MemoryUsageError as e:
            print(f"memllm memory {args.memory_command}: error: {e}", file=sys.stderr)
            return 2

    return guarded


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: choose a command: build, query or stats (see {parser.prog} --help)", file=sys.stderr)
    return 2


def _require_memory(path: str) -> Path:
    if not (Path(path) / DB_FILE).is_file():
        raise MemoryUsageError(f"no memory at {path} (no {DB_FILE}; build one with `memllm memory build`)")
    return Path(path)


def _embedder(args: argparse.Namespace) -> Embedder:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar on stderr would break the one-line errors
    return TransformerEmbedder(args.embedding_model, device=args.device)


def _build(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise MemoryUsageError(f"--batch-size must be positive, got {args.batch_size}")
    if bool(args.inputs) == bool(args.from_dir):
        raise MemoryUsageError("give INPUT files or --from DIR (the triples of `memllm fill-memory`), not both")
    labels = relation_labels(args.labels) if args.labels else None
    read = table_triples if args.from_dir else (lambda path: input_triples(path, labels))
    paths = [args.from_dir] if args.from_dir else args.inputs
    for path in paths:  # fail on a missing or unreadable input before loading a model
        next(iter(read(path)), None)
    start, added, seen = time.perf_counter(), 0, 0
    with EmbeddingMemory(args.memory_path, _embedder(args)) as memory:
        for path in paths:
            triples = read(path)
            while batch := list(itertools.islice(triples, args.batch_size)):
                added += memory.add_triples(batch, mode=args.mode).added
                seen += len(batch)
                print(f"{path}: {seen:,} triples read, {added:,} new", file=sys.stderr)
        counts = memory.store.counts()
    print(
        f"memory {args.memory_path}: {counts['triples']:,} triples, {counts['entities']:,} entities, "
        f"{counts['relation_types']:,} relations ({added:,} added in {time.perf_counter() - start:.1f}s)"
    )
    return 0


def _query(args: argparse.Namespace) -> int:
    for text in args.queries:  # fail fast, before loading a model
        try:
            parse_query(text)
        except APIParseError as e:
            raise MemoryUsageError(str(e)) from None
    _require_memory(args.memory_path)
    with EmbeddingMemory(args.memory_path, _embedder(args), get_preset(args.preset), create=False) as memory:
        results = memory.query_many(args.queries, exclude_ids=args.exclude_id)
    for text, hits in zip(args.queries, results):
        if args.json:
            print(json.dumps({"query": text, "hits": [asdict(h) for h in hits]}))
            continue
        print(f"{text}  ({len(hits)} hits)")
        for h in hits:
            print(f"  {h.score:.4f}  #{h.id}  {h.head}>>{h.relation}>>{h.tail}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    path = _require_memory(args.memory_path)
    with TripleStore(path / DB_FILE) as store:  # counting needs no model
        counts, embedder = store.counts(), store.get_meta("embedder") or {}
    print(
        f"triples    {counts['triples']:,}\nentities   {counts['entities']:,}\n"
        f"relations  {counts['relation_types']:,}\n"
        f"embedder   {embedder.get('name', '?')} ({embedder.get('dim', '?')}-d)"
    )
    for p in sorted(path.iterdir()):
        if p.is_file():
            print(f"file       {p.name}  {p.stat().st_size / 2**20:.1f} MiB")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `memory` group as a program of its own (`python -m memllm.memory.cli`)."""
    parser = argparse.ArgumentParser(prog="memllm")
    add_memory_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
