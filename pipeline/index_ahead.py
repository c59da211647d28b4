"""Local runs: index DocRED-format input files in a helper process while Beam starts.

The reader's index pass (`annotators.docred.index_file`) reads every record of a file in order, to cut
chunks and replay the reference's random stream, so it cannot be split: 3.1 s for 10,000 documents, while
every worker would idle. But before any worker runs, the launching process spends ~3 s importing Beam and
building and translating the graph on one core. `memllm generate` starts the helper before it imports
Beam (`start_local`, from the CLI; `generate.run` starts one itself when called without), the helper
writes one result per file into a temporary directory, and the Index step (`IndexJsonFile`) takes a result
with `load`, which waits for the helper if it is still running, and indexes the file itself when there is
no usable result (helper failed, file changed since, other chunk sizes). Same chunks either way: the
output does not depend on whether the helper was used.

Only where the launching machine is the one that runs the workers and reads the files: the local runners
and local paths, on a system with `fcntl` (the helper holds a lock while it works: the OS releases it when
the helper ends, however it ends). Neither this module nor the helper imports Beam: it starts in ~0.2 s.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

try:
    import fcntl
except ImportError:  # not POSIX: the Index step indexes the files itself
    fcntl = None

from memllm.annotators.docred import (
    CHUNK_BYTES,
    CHUNK_DOCS,
    ChunkSpan,
    InputFormatError,
    RecordError,
    detect_format,
    index_file,
)
from memllm.pipeline.runners import LOCAL_RUNNERS, runner_kind

REQUEST, LOCK, LOG = "request.json", "lock", "helper.log"


def _result_path(directory: str, path: str) -> str:
    key = os.path.abspath(path)  # the CLI and Beam may spell one file differently
    return os.path.join(directory, hashlib.sha1(key.encode("utf-8")).hexdigest() + ".pkl")


@dataclass
class Helper:
    """A started helper: its directory (for `load`) and process. `close` ends it and removes the directory."""

    directory: str
    process: subprocess.Popen
    owns_directory: bool = True

    def close(self) -> None:
        self.process.kill()  # long done when the pipeline has run; not when it failed before the Index step
        self.process.wait()
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_local(patterns: list[str], seed: int | None, runner: str | None) -> Helper | None:
    """The helper for a run on `runner` (None: the default, local) over the DocRED-format files `patterns`
    name, with the reader's chunk sizes and `seed` (None: no reference stream to replay). None where it
    does not apply: a runner whose workers run elsewhere, a remote path, a pattern that matches nothing or
    a file that is not JSON (the run itself reports those)."""
    if runner and runner_kind(runner) not in LOCAL_RUNNERS:
        return None
    files = []
    for pattern in patterns:
        paths = sorted(glob.glob(pattern)) if "://" not in pattern else []
        if not paths:
            return None
        for path in paths:
            try:
                with open(path, "rb") as f:
                    files.append((path, detect_format(f)))
            except (OSError, InputFormatError):
                return None
    return start(files, (CHUNK_DOCS, CHUNK_BYTES, seed))


def start(
    files: list[tuple[str, str]], params: tuple[int, int, int | None], directory: str | None = None
) -> Helper | None:
    """Start indexing `files` ((path, format) pairs; `params`: chunk documents, chunk bytes, seed) into
    `directory` (default: a new temporary one). None when the helper cannot run here."""
    if fcntl is None:
        return None
    owns = directory is None
    try:
        directory = tempfile.mkdtemp(prefix="memllm-index-") if owns else directory
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, REQUEST), "w") as f:
            json.dump({"files": files, "params": list(params)}, f)
        fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # the Index step indexes the files itself
        if owns and directory:
            shutil.rmtree(directory, ignore_errors=True)
        return None
    try:
        # Locked before the helper exists and handed to it: no reader can find the lock free in between.
        fcntl.flock(fd, fcntl.LOCK_EX)
        with open(os.path.join(directory, LOG), "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "memllm.pipeline.index_ahead", directory, str(fd)],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        return Helper(directory, process, owns)
    except OSError:
        if owns:
            shutil.rmtree(directory, ignore_errors=True)
        return None
    finally:
        os.close(fd)  # the helper's copy keeps the lock until it exits


def load(
    directory: str, path: str, fmt: str, params: tuple[int, int, int | None]
) -> list[ChunkSpan | RecordError] | None:
    """The helper's index of `path`, once the helper has finished; None if it made none that fits the file
    as it is now (size, modification time) and these chunk sizes."""
    lock = os.path.join(directory, LOCK)
    if fcntl is None or not os.path.exists(lock):
        return None
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # returns once the helper has ended
    finally:
        os.close(fd)
    try:
        with open(_result_path(directory, path), "rb") as f:
            result = pickle.load(f)
        stat = os.stat(path)
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    expected = {"path": os.path.abspath(path), "format": fmt, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    expected["params"] = list(params)
    if {k: result.get(k) for k in expected} != expected:
        return None
    return result["spans"]


def _index_all(directory: str) -> None:
    with open(os.path.join(directory, REQUEST)) as f:
        request = json.load(f)
    params = request["params"]
    for path, fmt in request["files"]:
        try:
            stat = os.stat(path)
            with open(path, "rb") as f:
                spans = list(index_file(f, fmt, *params))
        except Exception as e:  # noqa: BLE001 - the Index step indexes this file itself, and reports
            print(f"{path}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        result = {"path": os.path.abspath(path), "format": fmt, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        result |= {"params": params, "spans": spans}
        out = _result_path(directory, path)
        with open(out + ".tmp", "wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(out + ".tmp", out)


if __name__ == "__main__":
    _lock_fd = int(sys.argv[2])  # held (not closed) until this process ends: that releases the lock
    _index_all(sys.argv[1])
