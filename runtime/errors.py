"""The exception the runtime raises for a caller's mistake (missing adapter, wrong task, wrong base model).

A `ValueError`, so library callers can catch it generically; `memllm write` / `memllm complete` turn it into
one line on stderr and exit code 2. Bugs and I/O failures keep their own exceptions and tracebacks.
"""

from __future__ import annotations


class RuntimeInputError(ValueError):
    """A user-facing error at inference: adapter, base model, memory or input that cannot be used."""
