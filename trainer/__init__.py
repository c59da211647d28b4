"""The trainer: LoRA finetuning of the memory-write and memory-read models from the shards (in progress)."""
