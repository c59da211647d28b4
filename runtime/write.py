"""Memory writes over text: prompts per sentence, late-stopping decoding, parsing, storing (paper arXiv
2404.11672 §3 and Appendix A; docs/method.md §3, §8.1).

For each sentence of a text the write adapter is prompted with `pretext({USER_ST})sentence({USER_END})`,
the pretext being up to `max_sents` (25) previous sentences joined by spaces, and generates
`({MEM_WRITE-->h>>r>>t;...})`. The prompt is tokenized as `memllm train` tokenized the same text (one
encoding of the whole string, BOS first when the tokenizer uses one) and truncated from the left to
`max_prompt_tokens` (default half the adapters' training length, the reference's `model_max_length / 2`),
BOS kept. The output is parsed as the reference controller does: the text after the last `-->` before the
first `})`, split on `;` then `>>`, keeping items of three non-empty parts (whitespace around each part is
stripped: it comes from decoding, not from the model's strings).

Storing: `insert` by default, as the reference code does. With `overwrite_functional`, triples of a
*functional* relation (`FUNCTIONAL_RELATIONS`: one value at a time, e.g. a date of birth) are written in
the memory's `overwrite` mode, which replaces stored triples with the same head and relation (the paper:
a new fact overwrites an old one; the reference code only inserts). Sentences are stored in text order,
so a later sentence's fact replaces an earlier one's. Needs a memory with `add_triples(..., mode=)`
(`EmbeddingMemory`); the in-process `ExactMemory` supports inserts only.

What it doesn't do: reads (`runtime.read`), corpus-scale filling with Beam (`memllm fill-memory`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from memllm.runtime.decoding import K, decode_batch
from memllm.runtime.errors import RuntimeInputError
from memllm.runtime.text import split_sentences
from memllm.schemas import api

Triple = tuple[str, str, str]
MAX_SENTS = 25  # the reference library's int(model_max_length / 40) with its 1024-token length
MAX_NEW_TOKENS = 256  # the reference's vLLM scripts

# Wikidata properties that hold one value at a time (English labels, as the write model emits them).
FUNCTIONAL_RELATIONS = frozenset(
    {
        "date of birth",  # P569
        "place of birth",  # P19
        "date of death",  # P570
        "place of death",  # P20
        "father",  # P22
        "mother",  # P25
        "inception",  # P571
        "dissolved or abolished",  # P576
        "country of origin",  # P495
        "location of formation",  # P740
    }
)


@dataclass(frozen=True)
class SentenceWrite:
    text_index: int  # which input text
    sentence_index: int  # which sentence of it
    sentence: str
    output: str  # the decoded write call, cut by late stopping
    triples: list[Triple]


@dataclass
class WriteResult:
    sentences: int = 0
    extracted: int = 0  # triples parsed from the outputs
    stored: int = 0  # triples new to the memory
    replaced: int = 0  # stored triples removed by overwrites
    writes: list[SentenceWrite] = field(default_factory=list)

    def triples(self) -> list[Triple]:
        return [t for w in self.writes for t in w.triples]


def parse_write_output(text: str) -> list[Triple]:
    """The triples of a generated write call (see the module docstring); malformed items are dropped."""
    end = text.find(api.END)
    head = text if end < 0 else text[:end]
    at = head.rfind(api.WAIT)
    if at < 0:
        return []
    body = head[at + len(api.WAIT) :]
    out = []
    for item in body.split(api.ITEM_SEP):
        parts = [p.strip() for p in item.split(api.FIELD_SEP)]
        if len(parts) == 3 and all(parts):
            out.append((parts[0], parts[1], parts[2]))
    return out


def build_prompts(
    sentences: Sequence[str],
    tokenizer: Any,
    bos_id: int | None,
    max_sents: int = MAX_SENTS,
    max_prompt_tokens: int = 512,
) -> list[list[int]]:
    """Token ids of the write prompt of each sentence of one text (see the module docstring)."""
    texts = [
        api.render_write_context(" ".join(sentences[max(0, i - max_sents) : i]), s) for i, s in enumerate(sentences)
    ]
    if not texts:
        return []
    keep = max_prompt_tokens - (1 if bos_id is not None else 0)
    if keep < 1:
        raise RuntimeInputError(f"max_prompt_tokens {max_prompt_tokens} leaves no room for the prompt")
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    head = [bos_id] if bos_id is not None else []
    return [head + ids[-keep:] for ids in encoded]


def store_triples(
    memory: Any, writes: Sequence[Sequence[Triple]], overwrite_functional: bool = False
) -> tuple[int, int]:
    """Store each write's triples in order; returns (new triples, replaced triples)."""
    if not hasattr(memory, "add_triples"):
        if overwrite_functional:
            raise RuntimeInputError(f"{type(memory).__name__} cannot overwrite: use an EmbeddingMemory")
        before = len(memory)
        memory.add([t for w in writes for t in w])
        return len(memory) - before, 0
    added = replaced = 0
    pending: list[Triple] = []

    def flush(triples: list[Triple], mode: str) -> None:
        nonlocal added, replaced
        if triples:
            result = memory.add_triples(triples, mode=mode)
            added += result.added
            replaced += len(result.deleted_ids)

    for triples in writes:
        if not overwrite_functional:
            pending.extend(triples)
            continue
        functional = [t for t in triples if t[1] in FUNCTIONAL_RELATIONS]
        pending.extend(t for t in triples if t[1] not in FUNCTIONAL_RELATIONS)
        if functional:  # earlier inserts first, so this overwrite sees (and may replace) them
            flush(pending, "insert")
            pending = []
            flush(functional, "overwrite")
    flush(pending, "insert")
    return added, replaced


def extract(
    mm: Any,
    texts: Sequence[str | Sequence[str]],
    batch_size: int = 16,
    *,
    max_sents: int = MAX_SENTS,
    max_prompt_tokens: int | None = None,
    k: int = K,
    max_new_tokens: int = MAX_NEW_TOKENS,
    length: str = "output",
    force_non_empty: bool = False,
    first_index: int = 0,
) -> list[SentenceWrite]:
    """The write call and triples of every sentence of `texts`, in text order, with `mm`'s write adapter;
    nothing is stored (`write` stores them; `memllm fill-memory` writes them to shards).

    Texts are as in `write`. Sentences are decoded `batch_size` at a time, grouped by prompt length.
    `text_index` counts from `first_index`."""
    if batch_size < 1:
        raise RuntimeInputError(f"batch_size must be positive, got {batch_size}")
    info = mm.token_info
    max_prompt_tokens = max_prompt_tokens or mm.max_length // 2
    ids = info.special_ids
    docs = _sentences(list(texts))
    items = [(first_index + t, s, sent) for t, sents in enumerate(docs) for s, sent in enumerate(sents)]
    prompts = [
        p for sents in docs for p in build_prompts(sents, mm.tokenizer, info.bos_id, max_sents, max_prompt_tokens)
    ]
    outputs: list[list[int]] = [[] for _ in prompts]
    with mm.using("write"):
        # Similar lengths together: less padding. The outputs do not depend on the grouping.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            states = decode_batch(
                mm.model,
                [prompts[i] for i in rows],
                end_id=ids[api.END],
                eos_id=info.eos_id,
                pad_id=info.pad_id,
                k=k,
                max_new_tokens=max_new_tokens,
                length=length,
                force_non_empty=force_non_empty,
                wait_id=ids[api.WAIT],
            )
            for i, state in zip(rows, states):
                outputs[i] = state.output()
    texts_out = mm.tokenizer.batch_decode(outputs, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return [SentenceWrite(t, s, sent, out, parse_write_output(out)) for (t, s, sent), out in zip(items, texts_out)]


def write(
    mm: Any,
    texts: Iterable[str | Sequence[str]],
    batch_size: int = 16,
    show: bool = False,
    *,
    max_sents: int = MAX_SENTS,
    max_prompt_tokens: int | None = None,
    k: int = K,
    max_new_tokens: int = MAX_NEW_TOKENS,
    length: str = "output",
    force_non_empty: bool = False,
    overwrite_functional: bool = False,
    texts_per_chunk: int = 256,
) -> WriteResult:
    """Extract triples from each text with `mm`'s write adapter and store them in `mm.memory`.

    A text is a string (split into sentences by `runtime.text.split_sentences`) or a sequence of sentences
    used as given (e.g. DocRED `sents`, words already joined). Sentences are decoded `batch_size` at a time,
    grouped by prompt length (`extract`); results are stored and returned in text order. `show` prints each
    sentence's triples as they are stored."""
    if batch_size < 1:
        raise RuntimeInputError(f"batch_size must be positive, got {batch_size}")
    options = dict(max_sents=max_sents, max_prompt_tokens=max_prompt_tokens, k=k, max_new_tokens=max_new_tokens)
    options |= dict(length=length, force_non_empty=force_non_empty)
    result = WriteResult()
    for chunk_start, chunk in _chunks(texts, texts_per_chunk):
        writes = extract(mm, chunk, batch_size, first_index=chunk_start, **options)
        added, replaced = store_triples(mm.memory, [w.triples for w in writes], overwrite_functional)
        result.sentences += len(writes)
        result.extracted += sum(len(w.triples) for w in writes)
        result.stored += added
        result.replaced += replaced
        result.writes.extend(writes)
        if show:
            for w in writes:
                print(f"[{w.text_index}:{w.sentence_index}] {w.sentence}")
                for h, r, t in w.triples:
                    print(f"    {h} >> {r} >> {t}")
    return result


def _chunks(texts: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    it, start = iter(texts), 0
    while chunk := list(itertools.islice(it, size)):
        yield start, chunk
        start += len(chunk)


def _sentences(chunk: list[str | Sequence[str]]) -> list[list[str]]:
    raw = [i for i, t in enumerate(chunk) if isinstance(t, str)]
    split = split_sentences([chunk[i] for i in raw]) if raw else []
    out = [list(t) if not isinstance(t, str) else [] for t in chunk]
    for i, sents in zip(raw, split):
        out[i] = sents
    return out
