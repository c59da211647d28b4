"""`python -m trainer ...` = `memllm train ...`; also what `torchrun -m trainer` and
`accelerate launch -m trainer` run on every process."""

import sys

from trainer.cli import main

sys.exit(main())
