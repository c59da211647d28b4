"""A finetuned MemLLM at inference: memory writes over text and generation with memory reads.

Pure logic over transformers, PEFT and `memllm.memory` (no Beam; `memllm.pipeline` wraps it for corpus-scale
memory filling). One base model holds both LoRA adapters, `write` and `read`, switched per call.
"""
