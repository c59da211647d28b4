"""Resuming long runs: the result of every finished input chunk of the expensive step is kept, and reused.

The expensive step is annotating articles on the Wikipedia path (spaCy, linking: most of a run's hundreds
of core-hours over English Wikipedia) and the LLM evidence judge (`--evidence llm`, GPU) on the DocRED path;
the rest of a run (examples, shards) is cheap next to them and runs again. So each chunk's result (its
`DocumentBatch`, side outputs, dead letters and counts) is written,
once the chunk is done, to `OUT/_resume/<fingerprint>/<chunk key>.pkl` (to a temporary name, then
renamed: a file there is always complete, like datatrove's completion markers). A rerun with the same
arguments reads those files instead of annotating again, so an interrupted run loses at most the chunks
that were in flight; every later step (examples, shards, stats) runs again from the documents and is
cheap next to annotation.

The guarantee: a resumed run writes the same bytes as an uninterrupted one. The fingerprint covers what
the step's results depend on: every input file's path, size and modification time, the KB (the dump it was
built from, or the KB directory's files and sizes) or the judge model (its files, for a local directory),
the step's options and memllm's version; any change gives a new fingerprint, so nothing stale is reused
(older fingerprints' directories are removed at the start of the run). Not covered: Beam options (they do
not change results) and code edited without a version change (a developer's checkout: use `--no-resume`).
`--no-resume` removes `OUT/_resume` and keeps nothing.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable, Iterable
from importlib import metadata

from apache_beam.io.filesystems import FileSystems

RESUME_DIR = "_resume"


def _version() -> str:
    try:
        return metadata.version("memllm")
    except metadata.PackageNotFoundError:
        return "unknown"


def _files_state(paths: list[str]) -> list[tuple[str, int, float]]:
    state = []
    for result in FileSystems.match(paths):
        for m in result.metadata_list:
            state.append((m.path, m.size_in_bytes, getattr(m, "last_updated_in_seconds", 0.0)))
    return sorted(state)


def fingerprint(inputs: list[str], kb_dir: str | None, options: dict) -> str:
    """A digest of everything the annotated documents depend on (see the module docstring)."""
    kb_state = []
    if kb_dir is not None:  # by names inside the KB directory: a moved output directory stays resumable
        tables = [FileSystems.join(kb_dir, "entities", "*"), FileSystems.join(kb_dir, "facts", "*")]
        kb_state = [(p[len(kb_dir) :], size, mtime) for p, size, mtime in _files_state(tables)]
    state = {"inputs": _files_state(inputs), "kb": kb_state, "options": options, "memllm": _version()}
    return hashlib.sha1(json.dumps(state, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def prepare(out_dir: str, print_: str, resume: bool) -> str | None:
    """The cache directory of this run (None without resuming); removes every other cache."""
    root = FileSystems.join(out_dir, RESUME_DIR)
    keep = FileSystems.join(root, print_)
    if FileSystems.exists(root):
        if not resume:
            FileSystems.delete([root])
        else:
            # `match` lists files, not directories (on every filesystem): find the caches from their files
            files = FileSystems.match([FileSystems.join(root, "*", "*")])[0].metadata_list
            stale = sorted({FileSystems.split(m.path)[0] for m in files} - {keep})
            if stale:
                FileSystems.delete(stale)
    return keep if resume else None


class ChunkCache:
    """Finished chunks of one run's fingerprint: `load(key)` → the saved result or None; `save(key, result)`."""

    def __init__(self, directory: str):
        self.directory = directory

    def _path(self, key: str) -> str:
        safe = hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]
        return FileSystems.join(self.directory, f"{safe}.pkl")

    def load(self, key: str):
        path = self._path(key)
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path, compression_type="uncompressed") as f:
            return pickle.loads(f.read())

    def save(self, key: str, result) -> None:
        path = self._path(key)
        tmp = path + ".tmp"
        with FileSystems.create(tmp) as f:
            f.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        FileSystems.rename([tmp], [path])


def run_or_replay(dofn, cache: ChunkCache | None, key: str, run: Callable[[], Iterable]) -> list:
    """The outputs of `run()` for one chunk, saved in `cache`; or, when the cache has them, the saved outputs
    with their counts replayed into `dofn` (a `pipeline.counting.CountingDoFn`): the same outputs and counts
    either way."""
    saved = cache.load(key) if cache else None
    if saved is None:
        saved = dofn.run_counted(run)
        if cache:
            cache.save(key, saved)
    else:
        dofn.count("resume.chunks_reused")
        for name, n in saved[1].items():
            dofn.count(name, n)
    return saved[0]
