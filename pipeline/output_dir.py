"""What `memllm generate` (and `memllm fill-memory`) may write into: `--output` checked before the job starts.

A rerun rewrites an earlier memllm output (its shards, stats.json and dataset card, keeping `_resume/` and
a built `kb/`), so a folder is taken as one when it holds what the pipeline writes and, if it has a
README.md, that file is a memllm dataset card. Any other non-empty folder is refused unless `--overwrite`
is given: its README.md would be replaced by the card. A path that is a file is refused too.

Local paths only (`gs://...` and other remote outputs are not checked); kept free of Beam imports.
"""

from __future__ import annotations

from pathlib import Path

from memllm.pipeline.errors import InputError

TABLES = ("memory_write", "memory_read", "documents", "errors", "evidence", "triples")
# what a run writes at the top of OUT: the tables, the counters and card, a KB built from a dump (kb), the
# default embedding memory (memory), the resumable chunks (_resume) and the spill of a run in progress
PIPELINE_ENTRIES = frozenset({*TABLES, "stats.json", "README.md", "kb", "memory", "_resume", "_spill"})
# entries only a memllm run makes (a table folder's name alone could be anyone's)
MARKERS = frozenset({"stats.json", "_resume", "_spill"})
CARD_HEADING = "# memllm training data"  # pipeline.card.render_card's title


def is_memllm_card(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return f"\n{CARD_HEADING}\n" in head


def is_memllm_output(path: Path) -> bool:
    """Whether the directory `path` holds an earlier memllm output (finished, or stopped part way)."""
    entries = {p.name for p in path.iterdir()}
    if "README.md" in entries and not is_memllm_card(path / "README.md"):
        return False
    ours = entries & PIPELINE_ENTRIES
    if not ours:
        return False
    # other files next to a run's markers (e.g. the input itself) are left alone by a rerun
    return entries <= PIPELINE_ENTRIES or bool(ours & MARKERS) or "README.md" in ours


def check_output_dir(output: str, overwrite: bool = False) -> None:
    """Raise `InputError` unless `output` is missing, empty, an earlier memllm output, or `overwrite` is set."""
    if "://" in output:
        return
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise InputError(f"--output {output}: is a file, not a directory")
    if not path.is_dir() or overwrite or not any(path.iterdir()) or is_memllm_output(path):
        return
    names = sorted(p.name for p in path.iterdir())
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise InputError(
        f"--output {output} is not empty ({shown}) and holds no earlier memllm output: choose another "
        "directory, or pass --overwrite to write into it (its README.md is replaced by the dataset card)"
    )


__all__ = ["TABLES", "check_output_dir", "is_memllm_output"]
