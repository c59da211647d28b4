"""Evaluation loss: the mean negative log-likelihood per trained token of the whole eval set.

transformers 5 averages per-batch losses, and under several processes it normalises each process's batch by
the trained tokens of all processes' batches and scales it by the process count: right per step, but the
eval sampler pads the last step out with copies that `gather_for_metrics` then drops, leaving half of a
pair, so `eval_loss` came out biased whenever the eval set did not divide into full steps (measured on the
tiny model: 10.57 on two processes against 10.35 on one). Here every process returns, per example, its NLL
sum and its trained-token count; the copies are dropped per example, and the loss is one division over the
eval set, the same for any batch size, process count, padding or packing (and `exp` of it is the perplexity).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from memllm.trainer.tokenization import IGNORE


def nll_per_example(
    logits: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the summed NLL of its trained tokens and their count (token t predicts label t + 1).

    A packed batch is one row whose `position_ids` restart at 0 for every example; each example's first
    label is -100 (`DataCollatorWithFlattening`), so no token is scored across a boundary.
    """
    targets = labels[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
    trained = targets != IGNORE
    if position_ids is None or logits.shape[0] != 1:
        return nll.sum(1), trained.sum(1)
    example = (position_ids[0] == 0).cumsum(0)[1:] - 1  # the example of each target position
    n = int(example[-1]) + 1
    sums = torch.zeros(n, dtype=nll.dtype, device=nll.device).index_add_(0, example, nll[0])
    counts = torch.zeros(n, dtype=torch.long, device=nll.device).index_add_(0, example, trained[0].long())
    return sums, counts


@functools.cache
def make_trainer_class() -> type:
    """transformers' `Trainer` with the eval step above (built once, lazily: transformers loads slowly)."""
    from transformers import Trainer

    class MemllmTrainer(Trainer):
        def prediction_step(
            self, model: Any, inputs: dict, prediction_loss_only: bool, ignore_keys: Any = None
        ) -> tuple[None, torch.Tensor, torch.Tensor]:
            inputs = self._prepare_inputs(inputs)
            labels = inputs.pop("labels")
            with torch.no_grad(), self.compute_loss_context_manager():
                logits = model(**inputs).logits
            sums, counts = nll_per_example(logits, labels, inputs.get("position_ids"))
            # Whatever `prediction_loss_only` says: the loss is `eval_metrics` of these sums. One row per
            # example, so that the loop drops the sampler's copies example by example.
            return None, sums[:, None].detach(), counts[:, None]

    return MemllmTrainer


def eval_metrics(prediction: Any) -> dict[str, float]:
    """`compute_metrics`: NLL sums over token counts, for the whole eval set."""
    tokens = int(np.sum(prediction.label_ids))
    return {"loss": float(np.sum(prediction.predictions, dtype=np.float64) / max(tokens, 1)), "tokens": tokens}
