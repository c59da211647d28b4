"""Tokenizer set-up and the tokenization of examples into `input_ids` / `labels` (loss masks).

Why the full text is tokenized at once: encoding each segment separately and concatenating (what axolotl's
`input_output` does) is not the tokenization the model sees at inference. With Mistral's SentencePiece
tokenizer a segment encoded on its own gets a dummy-prefix "▁": the read results `Dunmore;Ireland` after
`-->` become `▁Dun more ...` instead of `D un more ...`. So we encode the concatenated text once, with
character offsets, and a token is trained when one of its non-blank characters lies in a trained segment
(a token made only of blanks follows its first character). Segment boundaries in our data sit on the API
markers, which are special tokens, so no token straddles a trained/untrained boundary in practice.

Masking policies:
- `segments` (default): the shards' `label`s: write trains `({MEM_WRITE-->...})` + EOS; read trains
  `preapi_text`, the query call and the continuation (+ `({`), not the memory's results.
- `reference`: the reference code's token rule (docs/method.md §6.1, §6.3): write trains from the third `({`
  through EOS; read trains everything in a document's first example (`pre_text == ""`) and only what follows
  the first `})` in later ones. The rule is applied before truncation, so a long context cannot move it.

Every sequence starts with BOS when the tokenizer adds one itself (Mistral does; SmolLM2 does not), write
examples end with a trained EOS, and sequences longer than the cutoff are truncated on the left, keeping BOS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from memllm.schemas import api
from memllm.trainer.config import TrainerInputError

IGNORE = -100

# Reasons an example is skipped (counted and reported before training starts).
SKIP_TRIPLES = "too_many_triples"
SKIP_UNTRAINED = "nothing_trained"
SKIP_TRUNCATED = "nothing_trained_after_truncation"
SKIP_REASONS = (SKIP_TRIPLES, SKIP_UNTRAINED, SKIP_TRUNCATED)


@dataclass(frozen=True)
class TokenizerInfo:
    """What `prepare_tokenizer` did: recorded in the resolved config."""

    vocab_before: int
    vocab_after: int
    special_ids: dict[str, int]
    new_token_ids: list[int]  # rows the model must grow (empty for Mistral: the strings are in its vocabulary)
    pad_id: int
    bos_id: int | None  # None when the tokenizer does not start sequences with BOS
    eos_id: int


def load_tokenizer(model: str) -> Any:
    """`AutoTokenizer.from_pretrained(model)`, with a one-line error when there is none."""
    from transformers import AutoTokenizer

    if model.startswith(("/", ".")) and not Path(model).is_dir():
        # A path, not a hub id: say so instead of relaying the hub client's complaint about repo ids.
        raise TrainerInputError(f"--model {model}: no such directory")
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
        except ImportError:
            # For a Mistral model type, transformers first probes mistral-common for a Tekken vocabulary; a
            # mistral-common installed without its optional dependencies (tiktoken) breaks the probe. Without
            # a Tekken file transformers loads `TokenizersBackend` (tokenizer.json), so load that directly.
            from transformers import TokenizersBackend

            tokenizer = TokenizersBackend.from_pretrained(model)
    except Exception as e:  # OSError, ValueError, TypeError... depending on what is missing
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainerInputError(f"--model {model}: no usable tokenizer ({msg})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise TrainerInputError(f"--model {model}: the tokenizer has no `tokenizers` backend (needs offsets)")
    return tokenizer


def prepare_tokenizer(tokenizer: Any) -> TokenizerInfo:
    """Register `({`, `})`, `-->` as special tokens (atomic, never split) and choose the pad id."""
    before = len(tokenizer)
    # Tokens already in the vocabulary keep their id (Mistral: 2882, 1542, 26345), so nothing grows.
    tokenizer.add_special_tokens({"extra_special_tokens": list(api.SPECIAL_TOKENS)}, replace_extra_special_tokens=False)
    special_ids = {}
    for s in api.SPECIAL_TOKENS:
        ids = tokenizer(s, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise TrainerInputError(f"the tokenizer does not encode {s!r} as one token after registering it")
        special_ids[s] = ids[0]
    if tokenizer.eos_token_id is None:
        raise TrainerInputError("the tokenizer has no EOS token (write examples end with EOS)")
    # Pad: the tokenizer's own, else <unk> (id 0 for Mistral, as in the reference), else EOS. Padded positions
    # are masked in attention and loss, so the choice only has to be a valid id.
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token_id is not None else tokenizer.eos_token
    probe = tokenizer("a")["input_ids"]
    bos = tokenizer.bos_token_id if probe and probe[0] == tokenizer.bos_token_id else None
    return TokenizerInfo(
        vocab_before=before,
        vocab_after=len(tokenizer),
        special_ids=special_ids,
        new_token_ids=list(range(before, len(tokenizer))),
        pad_id=tokenizer.pad_token_id,
        bos_id=bos,
        eos_id=tokenizer.eos_token_id,
    )


def char_span_labels(text: str, segments: list[dict], offsets: np.ndarray) -> np.ndarray:
    """Per token: True when the token carries a trained character (see the module docstring)."""
    n = len(text)
    trained = np.zeros(n, dtype=bool)
    pos = 0
    for seg in segments:
        end = pos + len(seg["text"])
        if seg["label"]:
            trained[pos:end] = True
        pos = end
    blank = np.fromiter((c.isspace() for c in text), dtype=bool, count=n)
    # Prefix sums turn "any trained char in [s, e)" into two lookups per token.
    c_any = np.concatenate([[0], np.cumsum(trained)])
    c_solid = np.concatenate([[0], np.cumsum(~blank)])
    c_solid_trained = np.concatenate([[0], np.cumsum(trained & ~blank)])
    s, e = offsets[:, 0], offsets[:, 1]
    has_solid = c_solid[e] > c_solid[s]
    out = np.where(has_solid, c_solid_trained[e] > c_solid_trained[s], c_any[e] > c_any[s])
    # Zero-width tokens (rare: an inserted prefix) follow the character at their position.
    zero = e <= s
    if zero.any() and n:
        out[zero] = trained[np.minimum(s[zero], n - 1)]
    return out


def reference_labels(ids: list[int], task: str, first_of_doc: bool, start_id: int, end_id: int) -> np.ndarray:
    """The reference code's token rule (docs/method.md §6.1 / §6.3), over the ids without BOS/EOS."""
    arr = np.asarray(ids)
    out = np.zeros(len(arr), dtype=bool)
    if task == "write":
        starts = np.flatnonzero(arr == start_id)
        if len(starts) >= 3:
            out[starts[2] :] = True
    elif first_of_doc:
        out[:] = True
    else:
        ends = np.flatnonzero(arr == end_id)
        if len(ends):
            out[ends[0] + 1 :] = True
    return out


def n_trained(labels: list[int]) -> int:
    """Tokens that carry loss. Position 0 never does: a causal LM predicts token i from tokens before i."""
    return sum(label != IGNORE for label in labels[1:])


@dataclass(frozen=True)
class Encoder:
    """Batched `datasets.map` function: shard rows -> `input_ids`, `labels` and bookkeeping columns."""

    tokenizer: Any
    info: TokenizerInfo
    task: str
    masking: str = "segments"
    cutoff: int = 1024
    max_triples: int = 32

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        texts = ["".join(s["text"] for s in segs) for segs in batch["segments"]]
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        out: dict[str, list] = {k: [] for k in ("input_ids", "labels", "n_tokens", "n_trained", "truncated", "skip")}
        for i, text in enumerate(texts):
            ids, labels, truncated, skip = self.encode_one(
                text,
                batch["segments"][i],
                enc["input_ids"][i],
                enc["offset_mapping"][i],
                n_triples=len(batch["triples"][i]) if self.task == "write" else 0,
                first_of_doc=self.task == "read" and not batch["pre_text"][i],
            )
            out["input_ids"].append(ids)
            out["labels"].append(labels)
            out["n_tokens"].append(len(ids))
            out["n_trained"].append(n_trained(labels))
            out["truncated"].append(truncated)
            out["skip"].append(skip)
        return out

    def encode_one(
        self,
        text: str,
        segments: list[dict],
        ids: list[int],
        offsets: list,
        n_triples: int,
        first_of_doc: bool,
    ) -> tuple[list[int], list[int], bool, str]:
        """(input_ids, labels, truncated, skip reason or "") for one example."""
        if self.task == "write" and n_triples >= self.max_triples:
            return [], [], False, SKIP_TRIPLES
        if self.masking == "segments":
            offs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
            mask = char_span_labels(text, segments, offs)
        else:
            mask = reference_labels(
                ids, self.task, first_of_doc, self.info.special_ids[api.START], self.info.special_ids[api.END]
            )
        labels = np.where(mask, np.asarray(ids, dtype=np.int64), IGNORE).tolist()
        if self.info.bos_id is not None:
            ids, labels = [self.info.bos_id, *ids], [IGNORE, *labels]
        if self.task == "write":  # the write call ends the example; the model must learn to stop there
            ids, labels = [*ids, self.info.eos_id], [*labels, self.info.eos_id]
        if not n_trained(labels):
            return [], [], False, SKIP_UNTRAINED
        truncated = len(ids) > self.cutoff
        if truncated:
            # Left truncation keeps the trained tail (the write call, the continuation) and BOS.
            keep = self.cutoff - (1 if self.info.bos_id is not None else 0)
            head_ids, head_labels = ([ids[0]], [labels[0]]) if self.info.bos_id is not None else ([], [])
            ids, labels = head_ids + ids[-keep:], head_labels + labels[-keep:]
            if not n_trained(labels):
                return [], [], True, SKIP_TRUNCATED
        return ids, labels, truncated, ""
