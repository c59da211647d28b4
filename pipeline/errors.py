"""`InputError`: a user-facing problem with the input or the options (a missing file, a file that is not
JSON, a flag that does not apply). The run stops with one line, no traceback.

Kept free of Beam imports, like `pipeline.runners` and `pipeline.index_ahead`: the CLI checks its arguments
and starts the index helper before it imports Beam (~1.5 s).
"""


class InputError(ValueError):
    """A user-facing problem with the input files (missing, unreadable, not JSON): the run stops."""


__all__ = ["InputError"]
