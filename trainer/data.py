"""Find, check, load, tokenize and mix the shards of one task.

A `--data` directory is either a pipeline output (`OUT/`, holding `memory_write/` and `memory_read/`) or one
table directory. Shards are `<split>-0000k-of-0000N.parquet` (docs/design.md "Output layout"). Everything that can
be wrong with the input (no shards, missing shards, wrong schema, no training split) is found here from the
Parquet footers alone, before a model is loaded. Loading goes through `datasets.load_dataset("parquet")`:
memory-mapped Arrow by default (large inputs do not need RAM), or streaming with `--streaming`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch.utils.data
from memllm.schemas.records import TABLE_SCHEMAS
from memllm.trainer.config import DataSource, TrainConfig, TrainerInputError
from memllm.trainer.tokenization import SKIP_REASONS, Encoder

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
    """What happened to one source's rows (reported before training and kept in metrics.json)."""

    path: str
    rate: float
    rows: int = 0
    kept: int = 0
    truncated: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    examples: int = 0  # after oversampling
    tokens: int = 0  # of the kept examples, before oversampling
    trained_tokens: int = 0  # idem


@dataclass
class PreparedData:
    """The tokenized training (and eval) data with the counts behind it."""

    train: Any  # datasets.Dataset or IterableDataset with input_ids / labels
    eval: Any | None
    eval_name: str | None
    sources: list[SourceStats]
    eval_stats: SourceStats | None
    train_examples: int  # after filtering and oversampling

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
            raise TrainerInputError(f"{tdir}: split {split!r} has {len(splits[split])} shards, names say {sorted(ns)}")
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


def _encoded_features(keep: tuple[str, ...]) -> Any:
    # Declared, so that streaming datasets need not peek at their first rows to learn the output types.
    from datasets import Features, List, Value

    cols = {
        "input_ids": List(Value("int64")),
        "labels": List(Value("int64")),
        "n_tokens": Value("int64"),
        "n_trained": Value("int64"),
        "truncated": Value("bool"),
        "skip": Value("string"),
    }
    return Features({**{k: Value("string") for k in keep}, **cols})


def _encode(ds: Any, encoder: Encoder, cfg: TrainConfig, keep: tuple[str, ...] = ()) -> Any:
    drop = [c for c in TABLE_SCHEMAS[cfg.table].names if c not in keep]
    kwargs = {} if cfg.streaming else {"num_proc": cfg.num_proc, "desc": "tokenizing"}
    features = _encoded_features(keep)
    return ds.map(encoder, batched=True, batch_size=256, remove_columns=drop, features=features, **kwargs)


def _count(ds: Any, stats: SourceStats) -> None:
    """Fill the counts of one encoded source from its bookkeeping columns.

    Streaming data is counted by one pass over the stream (tokenization, no training), so that skips are
    reported and the step count is exact before training starts, in bounded memory.
    """
    cols = ["skip", "truncated", "n_tokens", "n_trained"]
    if hasattr(ds, "with_format") and not is_streaming(ds):
        batches = [ds.select_columns(cols).with_format("arrow")[:]]
    else:
        batches = (pa.Table.from_pydict(b) for b in ds.select_columns(cols).iter(batch_size=1024))
    stats.rows = stats.kept = stats.truncated = stats.tokens = stats.trained_tokens = 0
    for t in batches:
        stats.rows += t.num_rows
        for item in pc.value_counts(t.column("skip")).to_pylist():
            if item["values"]:
                stats.skipped[item["values"]] += item["counts"]
        kept = pc.equal(t.column("skip"), "")
        stats.truncated += pc.sum(pc.and_(kept, t.column("truncated"))).as_py() or 0
        stats.tokens += pc.sum(t.column("n_tokens")).as_py() or 0  # skipped rows have 0 tokens
        stats.trained_tokens += pc.sum(t.column("n_trained")).as_py() or 0
    stats.kept = stats.rows - sum(stats.skipped.values())


class WholeStream(torch.utils.data.IterableDataset):
    """A streamed dataset that every process reads whole, each keeping its share of the examples.

    accelerate splits a `datasets` stream of at least as many Parquet files as processes by file; files of
    unequal length then leave one process out of batches while the others wait in a collective (measured:
    gloo's size mismatch at the end of the first epoch). A plain torch stream is read whole by every process
    and dealt out evenly (`IterableDatasetShard`): each optimizer step sees the examples one process would,
    for the cost of tokenizing the stream once per process."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __iter__(self):
        return iter(self.ds)

    def set_epoch(self, epoch: int) -> None:  # the Trainer reshuffles the stream every epoch
        self.ds.set_epoch(epoch)


def for_processes(ds: Any, processes: int) -> Any:
    """The training dataset to hand the Trainer when `processes` train together."""
    return WholeStream(ds) if processes > 1 and is_streaming(ds) else ds


def eval_for_processes(ds: Any, processes: int) -> Any:
    """The eval dataset for `processes`: a streamed one is read into memory first. The samplers even out
    the processes' last batches with copies, which evaluation drops only when it knows the set's length."""
    if ds is None or processes == 1 or not is_streaming(ds):
        return ds
    from datasets import Dataset

    return Dataset.from_list(list(ds), features=ds.features)


def is_streaming(ds: Any) -> bool:
    from datasets import IterableDataset

    return isinstance(ds, IterableDataset)


def _holdout(doc_id: str, fraction: float, seed: int, want: bool) -> bool:
    # Whole documents go to one side: the read examples of a document share their text.
    return (zlib.crc32(f"{seed}/{doc_id}".encode()) % 1_000_000 < fraction * 1_000_000) == want


def _oversample(ds: Any, rate: float, seed: int, n: int) -> Any:
    """`rate` copies of `ds` (n rows): the integer part repeats it, the fraction adds a seeded subset."""
    from datasets import concatenate_datasets

    whole, k = int(rate), round((rate - int(rate)) * n)
    parts = [ds] * whole
    if k:
        shuffled = ds.shuffle(seed=seed)
        parts.append(shuffled.take(k))
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _finish(ds: Any) -> Any:
    return ds.filter(lambda skip: skip == "", input_columns=["skip"]).select_columns(MODEL_COLUMNS)


def prepare(cfg: TrainConfig, found: list[SourceShards], eval_name: str | None, encoder: Encoder) -> PreparedData:
    """Tokenize every source, drop the skipped examples, oversample, concatenate; the same for eval data."""
    from datasets import concatenate_datasets

    trains, evals, stats = [], [], []
    for src in found:
        st = SourceStats(path=str(src.source.path), rate=src.source.rate, rows=src.rows[cfg.train_split])
        keep = ("doc_id",) if eval_name == "holdout" else ()
        ds = _encode(_load(src.splits[cfg.train_split], cfg), encoder, cfg, keep)
        if eval_name == "holdout":
            kw = {"fraction": cfg.eval_fraction, "seed": cfg.seed}
            side = {
                want: ds.filter(_holdout, input_columns=["doc_id"], fn_kwargs={**kw, "want": want}).remove_columns(
                    ["doc_id"]
                )
                for want in (True, False)
            }
            evals.append(side[True])
            ds = side[False]
        elif eval_name in src.splits:
            evals.append(_encode(_load(src.splits[eval_name], cfg), encoder, cfg))
        _count(ds, st)
        ds = _oversample(_finish(ds), src.source.rate, cfg.seed, st.kept)
        st.examples = int(src.source.rate) * st.kept + round((src.source.rate % 1) * st.kept)
        trains.append(ds)
        stats.append(st)
    train = trains[0] if len(trains) == 1 else concatenate_datasets(trains)
    if cfg.streaming:
        train = train.shuffle(seed=cfg.seed, buffer_size=cfg.shuffle_buffer)
    ev, eval_stats = None, None
    if evals:
        ev = evals[0] if len(evals) == 1 else concatenate_datasets(evals)
        eval_stats = SourceStats(path=f"eval ({eval_name})", rate=1.0)
        _count(ev, eval_stats)
        eval_stats.examples = eval_stats.kept
        ev = _finish(ev)
    n_train = sum(s.examples for s in stats)
    if n_train == 0:
        raise TrainerInputError("no training example left after filtering (see the counts above)")
    return PreparedData(train, ev, eval_name, stats, eval_stats, n_train)


def check_splits(cfg: TrainConfig, found: list[SourceShards]) -> str | None:
    """Every source has the training split; returns the eval data to use: `--eval-split`, else `validation`
    or `dev` when some source has it, else `holdout` with `--eval-fraction`, else None."""
    for src in found:
        if cfg.train_split not in src.splits:
            raise TrainerInputError(
                f"{src.table_dir}: no {cfg.train_split!r} split (found: {', '.join(sorted(src.splits))})"
            )
    if cfg.eval_split == "none":
        return None
    if cfg.eval_split:
        if not any(cfg.eval_split in s.splits for s in found):
            raise TrainerInputError(f"--eval-split {cfg.eval_split}: no such split in any --data directory")
        return cfg.eval_split
    for name in EVAL_SPLITS:
        if any(name in s.splits for s in found):
            return name
    return "holdout" if cfg.eval_fraction > 0 else None
