"""Local runs: index DocRED-format input files in a helper process while Beam starts.

The reader's index pass (`annotators.docred.index_file`) reads every record of a file in order, to cut
chunks and replay the reference's random stream, so it cannot be split; on the local runner it ran while
every other worker idled (2.45 s of a 29.7 s run on 10,000 documents with 2 workers). Meanwhile the
launching process leaves a core idle before any worker runs (~3.7 s importing Beam, building and
translating the graph; then ~1.9 s of worker start-up). `start` launches a helper process that indexes the
files in that time and writes one result per file; the Index step (`IndexJsonFile`) takes a result with
`load`, which waits for the helper if it is still running, and indexes the file itself when there is no
usable result (helper failed, file changed since, other chunk sizes). Same chunks either way: the output
does not depend on whether the helper was used.

Only where the launching machine is the one that runs the workers and reads the files: the local runners
and local paths (`generate.run` decides), on a system with `fcntl` (the helper holds a lock while it works:
the OS releases it when the helper ends, however it ends). This module imports no Beam: the helper starts
in ~0.3 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys

try:
    import fcntl
except ImportError:  # not POSIX: the Index step indexes the files itself
    fcntl = None

from annotators.docred import ChunkSpan, RecordError, index_file

REQUEST, LOCK, LOG = "request.json", "lock", "helper.log"


def _result_path(directory: str, path: str) -> str:
    return os.path.join(directory, hashlib.sha1(path.encode("utf-8")).hexdigest() + ".pkl")


def start(files: list[tuple[str, str]], directory: str, params: tuple[int, int, int]) -> subprocess.Popen | None:
    """Start indexing `files` ((path, format) pairs; `params`: chunk documents, chunk bytes, seed) into
    `directory`. Returns the helper process (to be waited for), or None when it cannot run here."""
    if fcntl is None:
        return None
    try:
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, REQUEST), "w") as f:
            json.dump({"files": files, "params": list(params)}, f)
        fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # the Index step indexes the files itself
        return None
    try:
        # Locked before the helper exists and handed to it: no reader can find the lock free in between.
        fcntl.flock(fd, fcntl.LOCK_EX)
        with open(os.path.join(directory, LOG), "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "pipeline.index_ahead", directory, str(fd)],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
    except OSError:
        return None
    finally:
        os.close(fd)  # the helper's copy keeps the lock until it exits


def load(directory: str, path: str, fmt: str, params: tuple[int, int, int]) -> list[ChunkSpan | RecordError] | None:
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
    expected = {"path": path, "format": fmt, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "params": list(params)}
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
        result = {"path": path, "format": fmt, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        result |= {"params": params, "spans": spans}
        out = _result_path(directory, path)
        with open(out + ".tmp", "wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(out + ".tmp", out)


if __name__ == "__main__":
    _lock_fd = int(sys.argv[2])  # held (not closed) until this process ends: that releases the lock
    _index_all(sys.argv[1])
