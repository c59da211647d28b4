"""Conversions of shard rows for external trainers (see docs/external-trainers.md).

- axolotl `type: input_output`: the rows' `segments` are already in its format; axolotl adds no BOS/EOS, so
  `to_axolotl_input_output` puts them in as segments of their own (BOS untrained, EOS trained on writes).
- TRL prompt-completion: `to_prompt_completion` splits at the first trained character; it is exact only when
  everything after that point is trained (every write example; not read examples, whose memory results are
  untrained), and returns None otherwise. For read examples use the pre-tokenized export
  (`memllm train --export-tokenized DIR`: `DIR/trl` with `input_ids` + `completion_mask`, `DIR/axolotl`
  with `input_ids`, `attention_mask`, `labels`).

Both trainers tokenize differently from us: axolotl encodes each segment on its own (a SentencePiece tokenizer
then inserts a "▁" at every segment start), TRL encodes `prompt` and `prompt + completion`. The pre-tokenized
export avoids both differences.
"""

from __future__ import annotations


def trained_spans(segments: list[dict]) -> list[tuple[int, int]]:
    """Character spans of the trained text, adjacent trained segments merged."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for seg in segments:
        end = pos + len(seg["text"])
        if seg["label"] and end > pos:
            if spans and spans[-1][1] == pos:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((pos, end))
        pos = end
    return spans


def to_prompt_completion(segments: list[dict]) -> dict[str, str] | None:
    """`{"prompt", "completion"}` for TRL's SFTTrainer, or None when the trained text is not one suffix.

    TRL appends EOS to the completion itself, as our trainer does for write examples.
    """
    text = "".join(s["text"] for s in segments)
    spans = trained_spans(segments)
    if len(spans) != 1 or spans[0][1] != len(text):
        return None
    return {"prompt": text[: spans[0][0]], "completion": text[spans[0][0] :]}


def to_axolotl_input_output(segments: list[dict], bos: str | None, eos: str | None) -> dict[str, list[dict]]:
    """`{"segments": [...]}` for axolotl's `input_output` type, with BOS first and (writes) EOS last."""
    out = [{"text": bos, "label": False}] if bos else []
    out += [{"text": s["text"], "label": bool(s["label"])} for s in segments if s["text"]]
    if eos:
        out.append({"text": eos, "label": True})
    return {"segments": out}
