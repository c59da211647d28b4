"""The one exception the memory raises for a caller's mistake (bad input, wrong file, wrong embedder).

It is a `ValueError`, so library callers can catch it generically; the CLI turns it into a one-line message
and exit code 2. Bugs and I/O failures raise their own exceptions and keep their tracebacks.
"""

from __future__ import annotations


class MemoryUsageError(ValueError):
    """A user-facing error: malformed triple or query, missing file, dimension or embedder mismatch."""
