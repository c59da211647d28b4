"""Find, check, load, tokenize and mix the shards of one task.

A `--data` directory is either a pipeline output (`OUT/`, holding `memory_write/` and `memory_read/`) or one
table directory. Shards are `<split>-0000k-of-0000N.parquet` (DESIGN.md "Output layout"). Everything that can
be wrong with the input (no shards, missing shards, wrong schema, no training split) is found here from the
Parquet footers alone, before a model is loaded. Loading goes through `datasets.load_dataset("parquet")`:
memory-mapped Arrow by default (large inputs do not need RAM), or streaming with `--streaming`.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.records import TABLE_SCHEMAS
from trainer.config import DataSource, TrainConfig, TrainerInputError
from trainer.tokenization import SKIP_REASONS, Encoder

SHARD_NAME = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
EVAL_SPLITS = ("validation", "dev")
MODEL_COLUMNS = ["input_ids", "labels"]


@dataclass
class SourceShards:
    """The shards of one `--data` directory for one table, by split."""

    source: DataSource
    table_dir: Path
    splits: dict[str, list[Path]]
    rows: dict[str, int]


@dataclass
class SourceStats:
    path: str
    rate: float
    rows: int = 0
    kept: int = 0
    truncated: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    examples: int = 0  # after oversampling
    tokens: int = 0  # after oversampling
    trained_tokens: int = 0


@dataclass
class PreparedData:
    train: Any  # datasets.Dataset or IterableDataset with input_ids / labels
    eval: Any | None
    eval_name: str | None
    sources: list[SourceStats]
    eval_stats: SourceStats | None
    train_examples: int  # exact, or (streaming) an upper bound from the footers

    def summary(self) -> dict:
        return {
            "train_examples": self.train_examples,
            "eval": self.eval_name,
            "sources": [vars(s) for s in self.sources],
            "eval_stats": vars(self.eval_stats) if self.eval_stats else None,
        }


def _table_dir(path: Path, table: str) -> Path:
    if not path.is_dir():
        raise TrainerInputError(f"--data {path}: not a directory")
    return path / table if (path / table).is_dir() else path


def _check_schema(shard: Path, table: str) -> int:
    """The shard's row count; raises when a column of the contract is missing or has another type."""
    try:
        meta = pq.read_metadata(shard)
        schema = meta.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as e:
        raise TrainerInputError(f"{shard}: not a readable Parquet file ({e})") from None
    for want in TABLE_SCHEMAS[table]:
        if want.name not in schema.names:
            raise TrainerInputError(f"{shard}: not a {table} shard (no column {want.name!r})")
        got = schema.field(want.name).type
        if not got.equals(want.type):
            raise TrainerInputError(f"{shard}: column {want.name!r} is {got}, expected {want.type} ({table})")
    return meta.num_rows


def discover(source: DataSource, table: str) -> SourceShards:
    """List and check the shards of `table` under one `--data` directory."""
    tdir = _table_dir(source.path, table)
    files = sorted(tdir.glob("*.parquet"))
    if not files:
        raise TrainerInputError(f"--data {source.path}: no {table} shards (looked for {tdir}/*.parquet)")
    splits: dict[str, list[Path]] = {}
    counts: dict[str, set[int]] = {}
    for f in files:
        m = SHARD_NAME.match(f.name)
        split = m["split"] if m else f.stem
        splits.setdefault(split, []).append(f)
        if m:
            counts.setdefault(split, set()).add(int(m["count"]))
    for split, ns in counts.items():  # a half-copied output must not train silently on part of the data
        if len(ns) != 1 or len(splits[split]) != next(iter(ns)):
            raise TrainerInputError(
                f"{tdir}: split {split!r} has {len(splits[split])} shards, names say {sorted(ns)}"
            )
    rows = {split: sum(_check_schema(f, table) for f in fs) for split, fs in splits.items()}
    return SourceShards(source, tdir, splits, rows)


def _load(files: list[Path], cfg: TrainConfig) -> Any:
    from datasets import load_dataset

    return load_dataset(
        "parquet",
        data_files={"data": [str(f) for f in files]},
        split="data",
        streaming=cfg.streaming,
        cache_dir=cfg.cache_dir,
    )


def _encode(ds: Any, encoder: Encoder, cfg: TrainConfig, keep: tuple[str, ...] = ()) -> Any:
    drop = [c for c in TABLE_SCHEMAS[cfg.table].names if c not in keep]
    kwargs = {} if cfg.streaming else {"num_proc": cfg.num_proc, "desc": "tokenizing"}
    return ds.map(encoder, batched=True, batch_size=256, remove_columns=drop, **kwargs)


def _count(ds: Any, stats: SourceStats) -> None:
    """Fill the per-source counts from the encoded columns (Arrow compute, no Python loop)."""
    table = ds.data.table if hasattr(ds.data, "table") else ds.data
    stats.rows = len(ds)
    for item in pc.value_counts(table.column("skip")).to_pylist():
        if item["values"]:
            stats.skipped[item["values"]] = item["counts"]
    stats.kept = stats.rows - sum(stats.skipped.values())
    kept = pc.equal(table.column("skip"), "")
    stats.truncated = pc.sum(pc.and_(kept, table.column("truncated"))).as_py() or 0


def _holdout(doc_id: str, fraction: float, seed: int) -> bool:
    # Whole documents go to one side: read examples of a document share their text.
    return zlib.crc32(f"{seed}/{doc_id}".encode()) % 1_000_000 < fraction * 1_000_000


def _oversample(ds: Any, rate: float, seed: int, n: int | None) -> Any:
    """`rate` copies of `ds`: the integer part repeats it, the fraction adds a seeded random subset."""
    from datasets import concatenate_datasets

    whole, frac = int(rate), rate - int(rate)
    parts = [ds] * whole
    if frac > 0 and n:
        shuffled = ds.shuffle(seed=seed) if n is not None and hasattr(ds, "select") else ds.shuffle(seed=seed)
        k = round(frac * n)
        parts.append(shuffled.select(range(k)) if hasattr(shuffled, "select") else shuffled.take(k))
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _finish(ds: Any) -> Any:
    return ds.filter(lambda skip: skip == "", input_columns=["skip"]).select_columns(MODEL_COLUMNS)


def prepare(cfg: TrainConfig, found: list[SourceShards], encoder: Encoder) -> PreparedData:
    """Tokenize every source, drop the skipped examples, oversample, concatenate; pick the eval data."""
    from datasets import concatenate_datasets

    eval_name = _eval_split_name(cfg, found)
    trains, evals, stats = [], [], []
    eval_stats = SourceStats(path="eval", rate=1.0) if eval_name else None
    for src in found:
        st = SourceStats(path=str(src.source.path), rate=src.source.rate)
        keep = ("doc_id",) if eval_name == "holdout" else ()
        ds = _encode(_load(src.splits[cfg.train_split], cfg), encoder, cfg, keep)
        if eval_name == "holdout":
            is_eval = lambda d: _holdout(d, cfg.eval_fraction, cfg.seed)  # noqa: E731
            evals.append(ds.filter(is_eval, input_columns=["doc_id"]).remove_columns(["doc_id"]))
            ds = ds.filter(lambda d: not is_eval(d), input_columns=["doc_id"]).remove_columns(["doc_id"])
        elif eval_name and eval_name in src.splits:
            evals.append(_encode(_load(src.splits[eval_name], cfg), encoder, cfg))
        if cfg.streaming:
            st.rows = src.rows[cfg.train_split]
            st.examples = math.floor(st.rows * src.source.rate)
        else:
            _count(ds, st)
            st.examples = math.floor(st.kept * src.source.rate)
        ds = _finish(ds)
        ds = _oversample(ds, src.source.rate, cfg.seed, None if cfg.streaming else len(ds))
        if not cfg.streaming:
            st.examples = len(ds)
            st.tokens = sum(len(x) for x in ds.data.column("input_ids").to_pylist()) if len(ds) < 0 else _tokens(ds)
            st.trained_tokens = _trained_tokens(ds)
        trains.append(ds)
        stats.append(st)
    train = trains[0] if len(trains) == 1 else concatenate_datasets(trains)
    if cfg.streaming:
        train = train.shuffle(seed=cfg.seed, buffer_size=cfg.shuffle_buffer)
    ev = None
    if evals:
        ev = evals[0] if len(evals) == 1 else concatenate_datasets(evals)
        if not cfg.streaming:
            _count(ev, eval_stats)
            eval_stats.examples = eval_stats.kept
        ev = _finish(ev)
        if not cfg.streaming:
            eval_stats.tokens, eval_stats.trained_tokens = _tokens(ev), _trained_tokens(ev)
    n_train = sum(s.examples for s in stats)
    if n_train == 0:
        raise TrainerInputError("no training examples left after filtering (see the counts above)")
    return PreparedData(train, ev, eval_name, stats, eval_stats, n_train)


def _tokens(ds: Any) -> int:
    return pc.sum(pc.list_value_length(ds.data.column("input_ids"))).as_py() or 0


def _trained_tokens(ds: Any) -> int:
    flat = pc.list_flatten(ds.data.column("labels"))
    trained = pc.sum(pc.not_equal(flat, -100)).as_py() or 0
    # Position 0 of a sequence never carries loss (see tokenization.n_trained).
    first = pc.list_element(ds.data.column("labels"), 0)
    return trained - (pc.sum(pc.not_equal(first, -100)).as_py() or 0)


def _eval_split_name(cfg: TrainConfig, found: list[SourceShards]) -> str | None:
    """`validation`/`dev` when some source has it, else `holdout` with --eval-fraction, else None."""
    if cfg.eval_split == "none":
        return None
    for src in found:
        if cfg.train_split not in src.splits:
            raise TrainerInputError(
                f"{src.table_dir}: no {cfg.train_split!r} split (found: {', '.join(sorted(src.splits))})"
            )
    if cfg.eval_split:
        if not any(cfg.eval_split in s.splits for s in found):
            raise TrainerInputError(f"--eval-split {cfg.eval_split}: no such split in any --data directory")
        return cfg.eval_split
    for name in EVAL_SPLITS:
        if any(name in s.splits for s in found):
            return name
    return "holdout" if cfg.eval_fraction > 0 else None
