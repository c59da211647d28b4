"""`memllm write` (and the other inference commands): argparse front ends of `runtime.model.MemLLM`.

    memllm write --model BASE --adapter WRITE_ADAPTER --memory-path DIR [--input FILE|- ...] [--show]
    memllm complete --model BASE --adapter READ_ADAPTER --memory-path DIR [PROMPT | --input FILE] [--trace]

`add_runtime_parsers(subparsers)` registers every inference subcommand on the `memllm` parser; each one has
its own `add_<name>_parser` below. Handlers return the exit code: 0, or 2 with one line on stderr for a
user's mistake (missing adapter, adapter of the other task, base model that does not fit, unreadable input,
missing extra), before any model weight is loaded where the mistake can be seen earlier.

Input of `memllm write` (`--input`, repeatable; `-` is stdin, the default): plain text, one document per
blank-line-separated paragraph block (or per file with `--document-per-file`); JSON lines with a `text`
field; or DocRED-format documents (a JSON array, or JSON lines, with `sents`: tokenized sentences, used as
they are). What it doesn't do: serve a model, read shards of `memllm generate`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memllm.runtime.errors import RuntimeInputError

FORMATS = ("auto", "text", "jsonl", "docred")


def add_runtime_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the inference subcommands (`write`, ...) on the `memllm` parser."""
    add_write_parser(subparsers)
    add_complete_parser(subparsers)


def add_write_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:

    p = subparsers.add_parser(
        "write",
        help="extract triples from text with a write adapter and store them in a memory",
        description="Extract triples from text with a MemLLM write adapter (late-stopping greedy decoding) and "
        "store them in an embedding memory (created when absent).",
    )
    p.add_argument("--model", required=True, metavar="PATH_OR_ID", help="the base causal LM the adapter was trained on")
    p.add_argument("--adapter", required=True, metavar="DIR", help="the write adapter (`memllm train --task write`)")
    p.add_argument("--memory-path", required=True, metavar="DIR", help="the memory directory (created when absent)")
    p.add_argument(
        "--input", action="append", metavar="FILE", help="text, JSON lines or DocRED file; '-' is stdin (default)"
    )
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: from the content)")
    p.add_argument("--document-per-file", action="store_true", help="a plain-text file is one document")
    p.add_argument("--show", action="store_true", help="print each sentence and its triples")
    p.add_argument("--batch-size", type=int, default=16, help="sentences decoded together (default 16)")
    p.add_argument(
        "--overwrite-functional",
        action="store_true",
        help="a new fact of a single-valued relation (date of birth, ...) replaces the stored one",
    )
    p.add_argument("--embedding-model", metavar="DIR_OR_ID", help="the memory's embedder (default Contriever)")
    p.add_argument("--device", help="torch device of the model (default cuda when available, else cpu)")
    add_decoding_arguments(p.add_argument_group("decoding"))
    p.set_defaults(func=cmd_write)
    return p


def add_decoding_arguments(g: argparse._ArgumentGroup) -> None:
    """The write model's decoding options (prompts, late stopping), shared with `memllm fill-memory`."""
    from memllm.runtime.decoding import LENGTHS, K
    from memllm.runtime.write import MAX_NEW_TOKENS, MAX_SENTS

    g.add_argument("--max-sents", type=int, default=MAX_SENTS, help=f"previous sentences in a prompt ({MAX_SENTS})")
    g.add_argument("--max-prompt-tokens", type=int, help="left-truncate prompts to this (default: half the cutoff)")
    g.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS, help=f"per write ({MAX_NEW_TOKENS})")
    g.add_argument("--k", type=int, default=K, help=f"late stopping: candidate cuts (default {K})")
    g.add_argument("--length", choices=LENGTHS, default="output", help="cut score length (default output)")
    g.add_argument("--force-non-empty", action="store_true", help="never cut right after `-->` (empty write)")


def _one_line_errors(command: str, body: Any, args: argparse.Namespace) -> int:
    """Run `body(args)`; a `RuntimeInputError` (a user mistake) is one line on stderr and exit status 2."""
    try:
        return body(args)
    except RuntimeInputError as e:
        print(f"memllm {command}: error: {e}", file=sys.stderr)
        return 2


def _check_options(args: argparse.Namespace, positive: tuple[str, ...], non_negative: tuple[str, ...] = ()) -> None:
    """Before any model loads: the extras a runtime command needs, and its counts in range."""
    from memllm.pipeline.extras import missing_extra

    if missing := missing_extra("train", "memory"):
        raise RuntimeInputError(missing)
    for name in positive + non_negative:
        if getattr(args, name) < (0 if name in non_negative else 1):
            raise RuntimeInputError(f"--{name.replace('_', '-')} must be positive")


def cmd_write(args: argparse.Namespace) -> int:
    return _one_line_errors("write", _write, args)


def _write(args: argparse.Namespace) -> int:
    _check_options(args, positive=("batch_size", "max_new_tokens", "k"), non_negative=("max_sents",))
    inputs = args.input or ["-"]
    for path in inputs:  # before any model is loaded
        if path != "-" and not Path(path).is_file():
            raise RuntimeInputError(f"--input {path}: no such file")
    from memllm.runtime.adapters import inspect_adapter

    inspect_adapter(args.adapter, "write")  # a wrong adapter fails before the memory is created
    documents = list(read_documents(inputs, args.format, args.document_per_file))

    from memllm.runtime.model import MemLLM

    mm = MemLLM.from_pretrained(
        args.model,
        write_adapter=args.adapter,
        memory=args.memory_path,
        device=args.device,
        embedding_model=args.embedding_model,
        create_memory=True,
    )
    try:
        result = mm.write(
            documents,
            batch_size=args.batch_size,
            show=args.show,
            max_sents=args.max_sents,
            max_prompt_tokens=args.max_prompt_tokens,
            k=args.k,
            max_new_tokens=args.max_new_tokens,
            length=args.length,
            force_non_empty=args.force_non_empty,
            overwrite_functional=args.overwrite_functional,
        )
        total = len(mm.memory)
    finally:
        mm.memory.close()
    replaced = f", {result.replaced:,} replaced" if args.overwrite_functional else ""
    print(
        f"memllm write: {len(documents):,} document(s), {result.sentences:,} sentence(s), {result.extracted:,} "
        f"triple(s) extracted, {result.stored:,} new in {args.memory_path}{replaced} (now {total:,} triples)"
    )
    return 0


def read_documents(paths: list[str], fmt: str = "auto", document_per_file: bool = False) -> Iterator[Any]:
    """The documents of the inputs: strings (raw text) or lists of sentences (DocRED `sents`, words joined)."""
    for path in paths:
        text = sys.stdin.read() if path == "-" else _read_text(path)
        yield from parse_documents(text, fmt, document_per_file, where=path if path != "-" else "stdin")


def parse_documents(text: str, fmt: str = "auto", document_per_file: bool = False, where: str = "input") -> list[Any]:
    if fmt == "auto":
        head = text.lstrip()[:1]
        fmt = "docred" if head == "[" else "jsonl" if head == "{" else "text"
    if fmt == "text":
        if document_per_file:
            return [text] if text.strip() else []
        return [block.strip() for block in re.split(r"\n[ \t]*\n", text) if block.strip()]
    if fmt == "docred" and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except ValueError as e:
            raise RuntimeInputError(f"{where}: not a JSON array of documents ({e})") from None
    else:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    raise RuntimeInputError(f"{where} line {n}: not JSON ({e})") from None
    return [_document(r, f"{where} record {i + 1}") for i, r in enumerate(records)]


def _document(record: Any, where: str) -> Any:
    if isinstance(record, dict) and isinstance(record.get("sents"), list):
        try:
            return [" ".join(words) for words in record["sents"]]
        except TypeError:
            raise RuntimeInputError(f"{where}: `sents` must be lists of words") from None
    if isinstance(record, dict) and isinstance(record.get("text"), str):
        return record["text"]
    raise RuntimeInputError(f"{where}: needs a `text` string or DocRED `sents`")


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuntimeInputError(f"--input {path}: cannot read it ({e})") from None


# --- memllm complete ----------------------------------------------------------------------------------------


def add_complete_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`memllm complete`: continue prompts with a read adapter that reads from a stored memory."""
    from memllm.memory.presets import PRESETS
    from memllm.runtime.read import INFERENCE_PRESET, ReadOptions

    defaults = ReadOptions()
    p = subparsers.add_parser(
        "complete",
        help="continue prompts with a read adapter that queries a memory while it writes",
        description="Continue each prompt greedily with a MemLLM read adapter: when the model opens a read "
        "(`({MEM_READ(...)-->`), the memory's answer is inserted and generation goes on. Prints the "
        "continuation (read blocks removed), one prompt per line of output.",
    )
    p.add_argument("prompt", nargs="?", help="the prompt (or --input)")
    p.add_argument("--model", required=True, metavar="PATH_OR_ID", help="the base causal LM the adapter was trained on")
    p.add_argument("--adapter", required=True, metavar="DIR", help="the read adapter (`memllm train --task read`)")
    p.add_argument("--memory-path", required=True, metavar="DIR", help="the memory to read (`memllm write`)")
    p.add_argument("--input", metavar="FILE", help="prompts, one per line ('-' is stdin)")
    p.add_argument("--trace", action="store_true", help="also print each read and each skipped read")
    p.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens, help="tokens the model generates")
    p.add_argument(
        "--stop-after-first-success", action="store_true", help="end after the text that follows the first read"
    )
    p.add_argument(
        "--thresholds", choices=sorted(PRESETS), default=INFERENCE_PRESET, help=f"memory preset ({INFERENCE_PRESET})"
    )
    p.add_argument("--max-results", type=int, default=defaults.max_results, help="names a read inserts (30)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="prompts decoded together (8)")
    p.add_argument("--embedding-model", metavar="DIR_OR_ID", help="the memory's embedder (default Contriever)")
    p.add_argument("--device", help="torch device of the model (default cuda when available, else cpu)")
    p.set_defaults(func=cmd_complete)
    return p


def cmd_complete(args: argparse.Namespace) -> int:
    return _one_line_errors("complete", _complete, args)


def _complete(args: argparse.Namespace) -> int:
    _check_options(args, positive=("max_new_tokens", "max_results", "batch_size"))
    if (args.prompt is None) == (args.input is None):
        raise RuntimeInputError("give a prompt or --input FILE (one of them)")
    if args.input is not None:
        if args.input != "-" and not Path(args.input).is_file():
            raise RuntimeInputError(f"--input {args.input}: no such file")
        text = sys.stdin.read() if args.input == "-" else _read_text(args.input)
        prompts = [line for line in text.splitlines() if line.strip()]
        if not prompts:
            raise RuntimeInputError(f"--input {args.input}: no prompt in it")
    else:
        prompts = [args.prompt]
    from memllm.runtime.adapters import inspect_adapter

    inspect_adapter(args.adapter, "read")  # before any weight is loaded
    _check_memory(Path(args.memory_path))

    from memllm.runtime.model import MemLLM

    mm = MemLLM.from_pretrained(
        args.model,
        read_adapter=args.adapter,
        memory=args.memory_path,
        device=args.device,
        embedding_model=args.embedding_model,
    )
    try:
        traces = mm.generate(
            prompts,
            max_new_tokens=args.max_new_tokens,
            stop_after_first_success=args.stop_after_first_success,
            thresholds=args.thresholds,
            max_results=args.max_results,
            batch_size=args.batch_size,
        )
    finally:
        mm.memory.close()
    for t in traces:
        print(t.text)
        if args.trace:
            for r in t.reads:
                print(f"  read at {r.position}: {r.call} -> {';'.join(r.results)}")
            for s in t.skipped:
                print(f"  skipped read at {s.position} ({s.reason}): {s.call if s.call is not None else '-'}")
    return 0


def _check_memory(path: Path) -> None:
    """Refuse a missing or empty memory before the model is loaded (a read from it could only come back empty)."""
    from memllm.memory.embedding_memory import DB_FILE
    from memllm.memory.store import TripleStore

    if not (path / DB_FILE).is_file():
        raise RuntimeInputError(f"--memory-path {path}: no memory there (no {DB_FILE}; fill one with `memllm write`)")
    with TripleStore(path / DB_FILE) as store:
        if len(store) == 0:
            raise RuntimeInputError(f"--memory-path {path}: the memory is empty (fill it with `memllm write`)")
