"""Batch collation: right padding (the reference's, to a multiple of 8) or padding-free packing.

Packing concatenates the micro batch into one row of shape [1, total_tokens] with `position_ids` restarting at
0 for every example and no attention mask (transformers' `DataCollatorWithFlattening`). transformers 5 turns
such position ids into a block-diagonal causal mask for eager and SDPA attention (`masking_utils.
find_packed_sequence_indices`), and FlashAttention-2 reads the sequence boundaries from `cu_seq_lens_*`, so
no example attends to another. The label of each example's first token is -100, so no example is trained to
predict the next one; the per-token loss is the same as unpacked, without computing on padding.
With eager and SDPA attention the mask is dense: a packed row costs attention over its whole length, so
large packed micro batches want FlashAttention-2 (or `flex_attention`, which skips the masked blocks; on CPU
it gives the padded loss too, after a minute of compiling).
The model must run without a KV cache (`use_cache=False`, set by `modeling.prepare_model`): with a cache
object transformers skips the packed-sequence detection and the examples attend to each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from memllm.trainer.tokenization import IGNORE


@dataclass
class PadCollator:
    """Right-pad `input_ids` with `pad_id`, `labels` with -100, and add the attention mask."""

    pad_id: int
    pad_to_multiple_of: int = 8

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        m = self.pad_to_multiple_of
        width = -(-longest // m) * m if m else longest
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.as_tensor(f["input_ids"])
            labels[i, :n] = torch.as_tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def make_collator(pad_id: int, packing: bool, attn_implementation: str | None) -> Callable:
    """The collator for the run: padding, or packing (with FlashAttention's varlen kwargs when it is used)."""
    if not packing:
        return PadCollator(pad_id)
    from transformers import DataCollatorWithFlattening

    flash = bool(attn_implementation and "flash" in attn_implementation)
    return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE, return_flash_attn_kwargs=flash)
