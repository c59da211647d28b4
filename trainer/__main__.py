"""`python -m memllm.trainer ...` = `memllm train ...`; also what `torchrun -m memllm.trainer` and
`accelerate launch -m memllm.trainer` run on every process."""

import sys

from memllm.trainer.cli import main

sys.exit(main())
