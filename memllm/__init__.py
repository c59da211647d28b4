"""memllm: training data for MemLLM-style models (arXiv 2404.11672), made with Apache Beam, and their finetuning.

Installed, every part of the project lives under this one name: `memllm.schemas` (data contracts),
`memllm.annotators` (pure logic), `memllm.memory` (the explicit memory), `memllm.pipeline` (Beam and the
`memllm` command) and `memllm.trainer` (LoRA finetuning). In the repository these are the top-level folders
of the same names; `setup.py` maps them here, so nothing generic (`pipeline`, `trainer`, ...) is installed.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memllm")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
