"""LoRA finetuning of causal LMs on memllm shards (MemLLM's memory-write and memory-read adapters).

Modules, in the order a run uses them: `config` (options, paper defaults), `data` (find, check, load, mix
shards), `tokenization` (special tokens, loss masks from `segments`), `collate` (padding or packing),
`modeling` (base model + LoRA), `evaluation` (eval loss per trained token), `metrics`, `recipe` (the run,
top to bottom), `cli` (`memllm train`), and `formats` (conversions for TRL and axolotl). Importing the
package is cheap: torch and transformers load only when a run starts.
"""

from memllm.trainer.cli import add_train_parser, run_train
from memllm.trainer.config import DataSource, TrainConfig, TrainerInputError

__all__ = ["DataSource", "TrainConfig", "TrainerInputError", "add_train_parser", "run_train"]
