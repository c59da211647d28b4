"""`python -m memllm ...` runs the same as the `memllm` command."""

import sys

from memllm.pipeline.cli import main

sys.exit(main())
