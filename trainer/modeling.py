"""The model: load the base causal LM, fit its embeddings to the tokenizer, wrap it in a LoRA adapter.

LoRA follows the reference (docs/method.md §7): r 16, alpha 8, dropout 0.1, `bias="lora_only"`, on the attention
and MLP projections and `lm_head`. When the tokenizer had to grow (a vocabulary without `({`, `})` or `-->`;
not Mistral's), the embedding matrix is resized and only the new rows are trained, through PEFT's
`trainable_token_indices`; the output side learns them through the `lm_head` LoRA.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from memllm.trainer.config import TrainConfig, TrainerInputError
from memllm.trainer.tokenization import TokenizerInfo


def resolve_precision(precision: str, use_cpu: bool = False) -> str:
    """`auto`: bf16 on a GPU that supports it (the reference trains in bf16), fp32 elsewhere."""
    if precision != "auto":
        return precision
    if not use_cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def load_base_model(cfg: TrainConfig, precision: str) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": DTYPES[precision]}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    try:
        return AutoModelForCausalLM.from_pretrained(cfg.model, **kwargs)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainerInputError(f"--model {cfg.model}: cannot load a causal LM ({first})") from None


def lora_config(cfg: TrainConfig, info: TokenizerInfo, model: Any) -> Any:
    from peft import LoraConfig, TaskType

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in cfg.target_modules if t not in names]
    if missing:
        raise TrainerInputError(f"--model {cfg.model}: no module named {', '.join(missing)} for LoRA")
    extra: dict[str, Any] = {}
    if info.new_token_ids:
        embed = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
        extra["trainable_token_indices"] = {embed.rsplit(".", 1)[-1]: info.new_token_ids}
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        bias="lora_only",
        target_modules=list(cfg.target_modules),
        **extra,
    )


def prepare_model(model: Any, cfg: TrainConfig, info: TokenizerInfo) -> Any:
    """Resize embeddings if needed, set the pad id, attach (or load) the LoRA adapter."""
    from peft import PeftModel, get_peft_model

    if model.get_input_embeddings().weight.shape[0] < info.vocab_after:
        # transformers initialises new rows from the old rows' mean and covariance (mean_resizing).
        model.resize_token_embeddings(info.vocab_after)
    model.config.pad_token_id = info.pad_id
    # No KV cache in training. Besides wasting memory, a cache breaks packing silently: transformers only
    # derives the block-diagonal mask from restarting position_ids when no cache object exists, and models
    # such as Mistral create one whenever `use_cache` is true (measured: packed loss != unpacked loss).
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        # Inputs need grads for checkpointed blocks when only adapters train.
        model.enable_input_require_grads()
    if cfg.init_adapter:
        peft_model = PeftModel.from_pretrained(model, cfg.init_adapter, is_trainable=True)
    else:
        peft_model = get_peft_model(model, lora_config(cfg, info, model))
    if not info.new_token_ids:
        # PEFT saves the whole (frozen) lm_head with every checkpoint when `lm_head` is a LoRA target: 262 MB
        # for Mistral-7B, for weights identical to the base model's. Only a resized vocabulary needs them.
        save = functools.partial(peft_model.save_pretrained, save_embedding_layers=False)
        peft_model.save_pretrained = save
    return peft_model


def count_parameters(model: Any) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": sum(p.numel() for p in model.parameters())}
