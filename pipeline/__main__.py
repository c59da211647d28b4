"""`python -m pipeline ...` runs the same as `memllm generate ...`."""

import sys

from pipeline.cli import main

sys.exit(main(["generate", *sys.argv[1:]]))
