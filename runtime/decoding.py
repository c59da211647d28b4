"""Late-stopping greedy decoding of memory writes (paper arXiv 2404.11672, Appendix A; docs/method.md §8.1).

A write model tends to close its call (`})`) too early, after one triple of several. Late stopping lets it
go on: whenever `})` (END) is the most likely token, the position is recorded as a *cutting point* with the
score (sum of the chosen tokens' log-probs + log p(END)) / length, and the second-best token is taken
instead. At the end the output is cut at the best-scoring cutting point and `})` appended.

`LateStopping` is the rule for one sequence, a pure function of each step's top-2 tokens and their
log-probs; `decode_batch` runs it for many sequences at once over a causal LM with a KV cache.

Choices (each an option):
- K (`k`, default 5, the paper's value; the reference's vLLM scripts use 4): a cutting point is recorded when
  fewer than K exist or the best one is among the last K recorded. When neither holds, END is let through and
  the sequence ends: later cuts could no longer win against the best one.
- Length (`length`): "output" (default) divides by the generated tokens so far + 1 (END itself), as the
  reference's vLLM scripts do; "sequence" adds the prompt's tokens, as the reference library does. With the
  prompt in the denominator every score is scaled by nearly the same long length, which flattens the
  differences between cuts; the output length compares the candidate write calls themselves.
- Ties between cut scores go to the earliest cut.
- `force_non_empty` (used for knowledge editing): when the best cut is right after `-->` (an empty write
  `({MEM_WRITE-->})`), the best of the other cuts is used; with none, the raw output.
A sequence also ends at EOS (not kept in the output) or after `max_new_tokens` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

K = 5
LENGTHS = ("output", "sequence")


@dataclass(frozen=True, slots=True)
class Cut:
    position: int  # generated tokens kept before the appended END
    score: float


@dataclass
class LateStopping:
    """The late-stopping rule for one sequence. Feed `step()` each step's top-2 (ids, log-probs) and emit
    the token it returns; `done` tells when the sequence has ended; `output()` is the final token ids."""

    end_id: int
    eos_id: int
    k: int = K
    max_new_tokens: int = 256
    length: str = "output"
    prompt_len: int = 0  # counted in the length when `length == "sequence"`
    force_non_empty: bool = False
    wait_id: int | None = None  # the `-->` token (needed by `force_non_empty`)
    tokens: list[int] = field(default_factory=list)
    cuts: list[Cut] = field(default_factory=list)
    logp_sum: float = 0.0
    done: bool = False

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.length not in LENGTHS:
            raise ValueError(f"length must be one of {', '.join(LENGTHS)}, got {self.length!r}")
        if self.force_non_empty and self.wait_id is None:
            raise ValueError("force_non_empty needs wait_id (the `-->` token)")

    def can_record(self) -> bool:
        """Fewer than K cutting points, or the best one is among the last K."""
        if len(self.cuts) < self.k:
            return True
        return _best(range(len(self.cuts)), self.cuts) >= len(self.cuts) - self.k

    def step(self, top_ids: Sequence[int], top_logps: Sequence[float]) -> int:
        """The token to emit after seeing the two most likely next tokens (best first) and their log-probs."""
        if self.done:
            raise RuntimeError("step() after the sequence ended")
        token, logp = top_ids[0], top_logps[0]
        if token == self.end_id:
            if self.can_record():
                denominator = len(self.tokens) + 1 + (self.prompt_len if self.length == "sequence" else 0)
                self.cuts.append(Cut(len(self.tokens), (self.logp_sum + logp) / denominator))
                token, logp = top_ids[1], top_logps[1]  # END forbidden here: the second best goes on
            else:
                self.done = True  # END let through: the call is closed and no later cut can win
        self.logp_sum += logp
        if token == self.eos_id:
            self.done = True
            return token
        self.tokens.append(token)
        if len(self.tokens) >= self.max_new_tokens:
            self.done = True
        return token

    def step_logprobs(self, logprobs: Sequence[float]) -> int:
        """`step` from a full log-prob vector (ties to the lower id, for hand-written tests)."""
        order = sorted(range(len(logprobs)), key=lambda i: (-logprobs[i], i))[:2]
        return self.step(order, [logprobs[i] for i in order])

    def best_cut(self) -> Cut | None:
        candidates = list(range(len(self.cuts)))
        if self.force_non_empty:
            candidates = [i for i in candidates if not self._empty(self.cuts[i])]
        if not candidates:
            return None
        return self.cuts[_best(candidates, self.cuts)]

    def output(self) -> list[int]:
        """The generated ids cut at the best cutting point + END; the raw output without one."""
        cut = self.best_cut()
        if cut is None:
            return list(self.tokens)
        return [*self.tokens[: cut.position], self.end_id]

    def _empty(self, cut: Cut) -> bool:
        return cut.position > 0 and self.tokens[cut.position - 1] == self.wait_id


def _best(indices: Sequence[int] | range, cuts: list[Cut]) -> int:
    best = -1
    for i in indices:  # strict `>`: the earliest of equal scores wins
        if best < 0 or cuts[i].score > cuts[best].score:
            best = i
    return best


def decode_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    end_id: int,
    eos_id: int,
    pad_id: int,
    k: int = K,
    max_new_tokens: int = 256,
    length: str = "output",
    force_non_empty: bool = False,
    wait_id: int | None = None,
) -> list[LateStopping]:
    """Late-stopping greedy decoding of `prompts` (token ids, BOS included) as one batch.

    Left padding with an attention mask and explicit position ids (each sequence sees the positions it would
    see alone), one forward pass per step over the new tokens with the KV cache; finished sequences leave the
    batch (their cache rows are dropped), so a batch costs what its longest write costs."""
    import torch

    device = next(model.parameters()).device
    states = [
        LateStopping(end_id, eos_id, k, max_new_tokens, length, len(p), force_non_empty, wait_id) for p in prompts
    ]
    if not prompts:
        return states
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError("an empty prompt (a prompt has at least BOS or one token)")
        ids[i, width - len(p) :] = torch.as_tensor(list(p))
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    active = list(range(len(prompts)))  # state index of each batch row
    cache_arg = _cache_argument(model)
    cache = None
    with torch.inference_mode():
        while active:
            step = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, cache_arg: cache}
            out = model(**step, use_cache=True, logits_to_keep=1)  # logits of the last position only
            cache = _cache_of(out)
            logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
            top = torch.topk(logprobs, 2, dim=-1)
            top_ids, top_logps = top.indices.tolist(), top.values.tolist()
            next_ids, keep = [], []
            for row, i in enumerate(active):
                next_ids.append(states[i].step(top_ids[row], top_logps[row]))
                if not states[i].done:
                    keep.append(row)
            if not keep:
                break
            last = positions[:, -1:]
            ids = torch.as_tensor(next_ids, device=device).unsqueeze(-1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            positions = last + 1
            if len(keep) < len(active):
                rows = torch.as_tensor(keep, device=device)
                cache.batch_select_indices(rows)
                ids, mask, positions = ids[rows], mask[rows], positions[rows]
                active = [active[row] for row in keep]
    return states


def _cache_argument(model: Any) -> str:
    """The forward argument of the KV cache: `cache` in recent transformers, `past_key_values` before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _cache_of(out: Any) -> Any:
    for name in ("cache", "past_key_values"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    raise RuntimeError("the model returned no KV cache (use_cache=True)")
