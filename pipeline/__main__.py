"""`python -m memllm.pipeline ...` runs the same as `memllm generate ...`."""

import sys

from memllm.pipeline.cli import main

sys.exit(main(["generate", *sys.argv[1:]]))
