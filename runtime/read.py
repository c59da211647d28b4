"""Generation with memory reads: the read model writes text, asks the memory, and goes on with the answer.

The controller of paper arXiv 2404.11672 §3 as docs/method.md §8.2 reads it. Greedy decoding throughout; per
prompt, until `max_new_tokens`:

1. Text phase: generate until the last token is `({` (skipped when the context already ends with it, e.g. a
   prompt that forces a read). Right after an abandoned read the first token may not be `({`, so the model
   cannot re-open the read it just lost. EOS or the length limit ends the generation.
2. Query phase: the previous successful read block `({MEM_READ(…)-->…})` is first removed from the context
   (so the context holds at most one read block), then the model generates until `-->`. The text after the
   last `({` must be `MEM_READ(q;q;…)`: a query `>>r>>e` is a HEAD query `(?, r, e)`, anything else a TAIL
   query `e>>r>>` (`schemas.api.parse_query`); malformed queries are dropped.
3. Execute: the queries go to the memory (the `perplexity_eval` thresholds by default, exact-match priority
   on, like the reference's reads, for a memory that takes thresholds per call such as `EmbeddingMemory`;
   others answer `query_names` with their own); the names on the unknown side are joined in query order,
   first occurrence first, without duplicates, and the first `max_results` (Q_thr = 30) kept. An
   `EmbeddingMemory` lists a query's names closest first, so the cap keeps the best matches (the
   reference keeps 30 from a Python set, docs/method.md §11.8); `ExactMemory` lists them sorted. An empty
   answer, a query identical to the previous successful read's, or no well-formed query abandons the read:
   its tokens (from `({`) leave the context. Otherwise `;`-joined results and `})` are appended and the
   text phase resumes.

Choices:
- Read blocks are tracked as token spans, not found again by searching the decoded context (the reference
  searches the string, which picks a demonstration block from a few-shot prompt instead, §8.2).
- `max_new_tokens` counts the tokens the model generated (text, `({`, the query call, abandoned reads
  included); the results and `})` that the controller inserts are not counted.
- Results are tokenised as they are inside a training text, i.e. right after `-->` (`WAIT + results + END`
  encoded together, `-->` dropped). Encoding them alone would add SentencePiece's word-start marker to the
  first name, a token sequence the read model never saw after `-->`.
- Text: a training text glues a read to the words on both sides (`…a novel by({…})Carla Fenwick`,
  docs/method.md §3), so the trace's `text` gets the space back at each read made. The context keeps the
  reference's token-level removal: when a block leaves it, the words around it stay glued as generated.
- Batching: prompts run `batch_size` at a time, and each batch is one KV cache for its whole generation: one
  forward pass per step over every unfinished sequence, whatever the others do. A context edit does not end
  anything: inserted results are fed at the next step together with the others' single tokens (left-padded
  within the step); tokens that leave a context (an abandoned read, the previous block before a new query)
  keep their cache columns but the attention mask hides them, and what followed them is fed again at the
  positions it has in the edited context. Position ids are each token's index in its own context, so every
  sequence computes what it would alone (RoPE keys depend on the position, not on the cache column); batched
  output equals one-at-a-time output up to floating-point effects of padding. The cost of a read is the
  tokens it feeds (results, and the text since the previous block when one is removed), not a re-prefill;
  the hidden columns stay in the cache until the batch ends (a sliding attention window, Mistral-7B-v0.1's
  4,096, counts them: far above the 1,024-token contexts the adapters are trained on). A finished
  sequence's rows leave the cache (`batch_select_indices`; a cache without it is rebuilt by prefilling the
  rest).

What it doesn't do: sampling, truncating a context longer than the model was trained on, writes to the
memory (`runtime.write`), the perplexity evaluation's branching over reads (docs/method.md §10.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from memllm.memory.base import Q_THR, RESULT_LIMIT, Memory
from memllm.memory.presets import Thresholds, get_preset
from memllm.schemas.api import (
    END,
    ITEM_SEP,
    MEM_READ,
    START,
    WAIT,
    APIParseError,
    Query,
    parse_query,
    union_results,
)

# The reference's reads use REL_SIM with exact-match priority on: the perplexity evaluation's thresholds.
INFERENCE_PRESET = "perplexity_eval"

# Why a read was skipped.
EMPTY_RESULT = "empty_result"  # the memory answered nothing
REPEATED_QUERY = "repeated_query"  # the same query call as the previous successful read
MALFORMED_QUERY = "malformed_query"  # no well-formed query in the call
NO_WAIT = "no_wait"  # EOS or the length limit came before `-->`
SKIP_REASONS = (EMPTY_RESULT, REPEATED_QUERY, MALFORMED_QUERY, NO_WAIT)

# Why a generation ended.
FINISH_EOS = "eos"
FINISH_LENGTH = "length"
FINISH_FIRST_SUCCESS = "first_success"  # `stop_after_first_success`: the text phase after a read ended

_READ_OPEN = MEM_READ[len(START) :]  # "MEM_READ(": what follows `({` in a read call
_TEXT, _QUERY, _EXECUTE, _DONE = "text", "query", "execute", "done"


@dataclass(frozen=True)
class ReadOptions:
    """Options of `generate_with_reads` / `ReadLoop` (see the module docstring)."""

    max_new_tokens: int = 256
    stop_after_first_success: bool = False
    # memory thresholds: a preset name or `Thresholds`, used by memories that take them per call
    # (`EmbeddingMemory.query_many`); None asks `query_names` with the memory's own thresholds
    thresholds: str | Thresholds | None = INFERENCE_PRESET
    max_results: int = Q_THR
    batch_size: int = 8  # prompts decoded together
    use_cache: bool = True  # False re-encodes every context at every step (slow; for checking the cache)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.max_results < 1:
            raise ValueError(f"max_results must be >= 1, got {self.max_results}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if isinstance(self.thresholds, str):
            get_preset(self.thresholds)  # an unknown name fails here, not at the first read


@dataclass(frozen=True)
class Read:
    """A read that was made: the trace's `text[position:]` is what the model wrote after it."""

    position: int
    call: str  # the model's query call between `MEM_READ(` and `)-->`
    queries: tuple[Query, ...]  # the well-formed queries it holds
    results: tuple[str, ...]  # the names inserted, in order
    dropped: tuple[str, ...] = ()  # malformed queries of the call, left out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "queries": [q.render() for q in self.queries]}


@dataclass(frozen=True)
class SkippedRead:
    """A read the controller abandoned (or the model never finished): `reason` is one of SKIP_REASONS;
    `position` is the character offset in the trace's `text` where the model opened it."""

    position: int
    reason: str
    call: str | None = None  # None for NO_WAIT (the call never closed)
    queries: tuple[Query, ...] = ()
    dropped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "queries": [q.render() for q in self.queries]}


@dataclass(frozen=True)
class ReadTrace:
    """One generation: `text` is the continuation as a user sees it (read blocks removed); `raw` is the
    continuation as the model last saw it (the last successful read block kept, an unfinished call too)."""

    prompt: str
    text: str
    raw: str
    reads: tuple[Read, ...]
    skipped: tuple[SkippedRead, ...]
    new_tokens: int  # tokens the model generated (see the module docstring)
    finish_reason: str  # FINISH_EOS, FINISH_LENGTH or FINISH_FIRST_SUCCESS

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in ("prompt", "text", "raw", "new_tokens", "finish_reason")},
            "reads": [r.to_dict() for r in self.reads],
            "skipped": [s.to_dict() for s in self.skipped],
        }


@dataclass
class _Sequence:
    """The controller state of one prompt."""

    prompt: str
    ids: list[int]  # the context the model sees
    prompt_end: int  # how many leading ids are the prompt's (a forced `({` at its end can be removed)
    phase: str = _TEXT
    new_tokens: int = 0
    phase_tokens: int = 0  # tokens generated in the current text phase
    suppress_start: bool = False  # the previous read was abandoned: no `({` as the next first token
    block: tuple[int, int] | None = None  # span of the live (last successful) read block in `ids`
    read_start: int = -1  # index in `ids` of the `({` that opened the read in progress
    last_call: str | None = None  # the previous successful read's query call
    reads: list[Read] = field(default_factory=list)
    skipped: list[SkippedRead] = field(default_factory=list)
    # (trace list, index, text tokens before the read): positions are computed once the text is final
    marks: list[tuple[list, int, int]] = field(default_factory=list)
    finish: str = ""
    unfinished_call: bool = False  # ended inside a read (the trailing `({…` is not text)
    cols: list[int] = field(default_factory=list)  # the KV-cache column of each token of `ids` fed so far
    edited: bool = False  # tokens left the context: the cache columns to attend to must be set again


class ReadLoop:
    """Greedy generation with memory reads over plain objects.

    `model`: a causal LM called as `model(input_ids=, attention_mask=, position_ids=, past_key_values=,
    use_cache=)` (`cache=` where its forward names the cache so), returning `.logits` (batch, length, vocab)
    and the cache as `.past_key_values` or `.cache` (a transformers
    `PreTrainedModel` / `PeftModel` with the read adapter active, or any callable that behaves so);
    `tokenizer`: a transformers tokenizer with `({`, `})`, `-->` registered as single tokens
    (`trainer.tokenization.prepare_tokenizer`); `memory`: a `memory.base.Memory`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        memory: Memory,
        options: ReadOptions | None = None,
        device: Any = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.memory = memory
        self.options = options or ReadOptions()
        self.device = device if device is not None else _model_device(model)
        self.start_id, self.end_id, self.wait_id = (_single_id(tokenizer, s) for s in (START, END, WAIT))
        self.eos_ids = _eos_ids(model, tokenizer)
        params = _forward_parameters(model)
        # transformers 5.x renames `past_key_values` to `cache` (the old name warns, then goes away)
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        # only the last position's logits are used: a prefill need not build (batch, length, vocab) logits
        self._extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else min(self.eos_ids)

    # --- driving ---------------------------------------------------------------------------------------

    def run(self, prompts: Sequence[str]) -> list[ReadTrace]:
        """One trace per prompt, in order."""
        seqs = [self._start(p) for p in prompts]
        size = self.options.batch_size
        for i in range(0, len(seqs), size):
            self._run_batch(seqs[i : i + size])
        return [self._trace(s) for s in seqs]

    def _start(self, prompt: str) -> _Sequence:
        ids = list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if not ids:
            raise ValueError("an empty prompt (the tokenizer adds no BOS, so there is nothing to continue)")
        s = _Sequence(prompt, ids, len(ids))
        if ids[-1] == self.start_id:  # the prompt opens a read itself: go to the query at once
            s.phase, s.read_start = _QUERY, len(ids) - 1
        return s

    def _run_batch(self, seqs: list[_Sequence]) -> None:
        """Decode one batch to the end: one forward pass per step over every unfinished sequence."""
        import torch

        live = list(seqs)
        cache = None
        mask = torch.zeros((len(live), 0), dtype=torch.long, device=self.device)  # over the cache's columns
        with torch.inference_mode():
            while True:
                for s in live:
                    self._enter(s)
                keep = [row for row, s in enumerate(live) if s.phase in (_TEXT, _QUERY)]
                if not keep:
                    return
                if len(keep) < len(live):
                    live = [live[row] for row in keep]
                    rows = torch.as_tensor(keep, device=self.device)
                    mask = mask[rows]
                    if hasattr(cache, "batch_select_indices"):
                        cache.batch_select_indices(rows)
                    else:
                        cache = None  # a cache that cannot drop rows: prefill the rest again
                if cache is None or not self.options.use_cache:
                    cache, mask = None, mask[:, :0]
                    for s in live:
                        s.cols = []
                mask = self._unmask_edits(live, mask)
                ids, new_mask, positions = self._step_inputs(live, mask.shape[1])
                mask = torch.cat([mask, new_mask], dim=-1)
                out = self.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=self.options.use_cache,
                    **({self._cache_kwarg: cache} if self.options.use_cache else {}),
                    **self._extra,
                )
                if self.options.use_cache:
                    cache = getattr(out, "cache", None)
                    cache = cache if cache is not None else out.past_key_values
                logits = out.logits[:, -1, :]
                for row, s in enumerate(live):
                    if s.phase == _TEXT and s.suppress_start and s.phase_tokens == 0:
                        logits[row, self.start_id] = -math.inf
                for s, token in zip(live, logits.argmax(dim=-1).tolist()):
                    self._accept(s, token)
                self._execute([s for s in live if s.phase == _EXECUTE])

    def _enter(self, s: _Sequence) -> None:
        """Before a step: the edit a query phase needs first, and the length limit."""
        if s.phase == _QUERY and s.block is not None:
            a, b = s.block  # before the new `({`: a query phase starts after the block
            del s.ids[a:b]
            self._rewind(s, a)
            s.read_start -= b - a
            s.prompt_end = min(s.prompt_end, a)  # the block opened with the prompt's own `({`
            s.block = None
        if s.phase in (_TEXT, _QUERY) and s.new_tokens >= self.options.max_new_tokens:
            self._out_of_tokens(s)

    def _out_of_tokens(self, s: _Sequence) -> None:
        if s.phase == _QUERY:
            self._skip(s, NO_WAIT)
            s.unfinished_call = True
        s.phase, s.finish = _DONE, FINISH_LENGTH

    # --- the KV cache ----------------------------------------------------------------------------------

    @staticmethod
    def _rewind(s: _Sequence, index: int) -> None:
        """The context changed from `ids[index]` on: the cache columns of those tokens no longer count."""
        if index < len(s.cols):
            del s.cols[index:]
            s.edited = True

    def _unmask_edits(self, live: list[_Sequence], mask: Any) -> Any:
        """Mask the cache columns of tokens edited out of a context.

        At least the last token of a context is fed again, so that the step yields its next-token logits."""
        for row, s in enumerate(live):
            if len(s.cols) >= len(s.ids):
                del s.cols[len(s.ids) - 1 :]
                s.edited = True
            if s.edited:
                mask[row] = 0
                mask[row, s.cols] = 1
                s.edited = False
        return mask

    def _step_inputs(self, live: list[_Sequence], width_before: int) -> tuple[Any, Any, Any]:
        """Ids, attention mask and position ids of the tokens each context has not fed to the cache yet.

        Left-padded within the step, so the last column is every row's last token. A token's position is its
        index in the context: the same as if the context had been encoded alone, whatever was edited."""
        import torch

        pending = [s.ids[len(s.cols) :] for s in live]
        width = max(len(p) for p in pending)
        ids = torch.full((len(live), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(live), width), dtype=torch.long)
        positions = torch.zeros((len(live), width), dtype=torch.long)
        for row, (s, p) in enumerate(zip(live, pending)):
            pad = width - len(p)
            ids[row, pad:] = torch.as_tensor(p)
            mask[row, pad:] = 1
            positions[row, pad:] = torch.arange(len(s.cols), len(s.ids))
            s.cols.extend(range(width_before + pad, width_before + width))
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)

    # --- decoding --------------------------------------------------------------------------------------

    def _accept(self, s: _Sequence, token: int) -> None:
        """Apply one generated token."""
        if token in self.eos_ids:  # EOS is not kept: the generation ends
            if s.phase == _QUERY:
                self._skip(s, NO_WAIT)
                s.unfinished_call = True
            s.phase, s.finish = _DONE, FINISH_EOS
            return
        s.ids.append(token)
        s.new_tokens += 1
        if s.phase == _TEXT:
            s.phase_tokens += 1
            s.suppress_start = False
            if token == self.start_id:
                s.read_start = len(s.ids) - 1
                if self.options.stop_after_first_success and s.reads:
                    s.phase, s.finish, s.unfinished_call = _DONE, FINISH_FIRST_SUCCESS, True
                    return
                s.phase = _QUERY
        elif token == self.wait_id:
            s.phase = _EXECUTE
            return
        if s.new_tokens >= self.options.max_new_tokens:
            self._out_of_tokens(s)

    # --- reads -----------------------------------------------------------------------------------------

    def _execute(self, seqs: list[_Sequence]) -> None:
        """Parse each sequence's query call, ask the memory once for all of them, insert or abandon."""
        calls = [self._parse_call(s) for s in seqs]
        asked = [
            (s, call, good, bad) for s, (call, good, bad) in zip(seqs, calls) if self._worth_asking(s, call, good, bad)
        ]
        answers = self._ask([q for _, _, good, _ in asked for q in good])
        at = 0
        for s, call, good, bad in asked:
            names = union_results(answers[at : at + len(good)])[: self.options.max_results]
            at += len(good)
            if not names:
                self._abandon(s, EMPTY_RESULT, call, good, bad)
                continue
            self._mark(s, s.reads, Read(0, call, tuple(good), tuple(names), tuple(bad)))
            s.ids += self._encode_results(names)
            s.block = (s.read_start, len(s.ids))
            s.last_call = call
            s.phase, s.phase_tokens, s.suppress_start = _TEXT, 0, False

    def _worth_asking(self, s: _Sequence, call: str | None, good: list[Query], bad: list[str]) -> bool:
        """True when the memory is to be asked; otherwise the read is abandoned here (no query, a repeat)."""
        if not good:
            self._abandon(s, MALFORMED_QUERY, call, good, bad)
            return False
        if call == s.last_call:
            self._abandon(s, REPEATED_QUERY, call, good, bad)
            return False
        return True

    def _parse_call(self, s: _Sequence) -> tuple[str | None, list[Query], list[str]]:
        """(query call, well-formed queries, malformed ones) of the call ending the context with `-->`."""
        tokens = s.ids[s.read_start : -1]  # `({` … before `-->`
        last = max(i for i, t in enumerate(tokens) if t == self.start_id)  # a `({` inside the call restarts it
        # Decoded without the `({`: the tokenizer's decoder puts a space after a special token (`({ MEM_READ(`).
        text = self.tokenizer.decode(tokens[last + 1 :]).strip()
        if not (text.startswith(_READ_OPEN) and text.endswith(")")):
            return text, [], [text]
        call = text[len(_READ_OPEN) : -1]
        good, bad = [], []
        for item in call.split(ITEM_SEP):
            try:
                good.append(parse_query(item))
            except APIParseError:
                bad.append(item)
        return call, good, bad

    def _ask(self, queries: list[Query]) -> list[list[str]]:
        """Per query, the names on its unknown side."""
        if not queries:
            return []
        limit = max(RESULT_LIMIT, self.options.max_results + 1)
        th = self.options.thresholds
        if th is not None and hasattr(self.memory, "query_many"):
            # hits come closest first, so the result cap keeps the best matches
            hits = self.memory.query_many(queries, th, strict=False)
            return [
                list(dict.fromkeys(h.tail if q.is_tail_query else h.head for h in hs))[:limit]
                for q, hs in zip(queries, hits)
            ]
        return self.memory.query_names(queries, limit)

    def _encode_results(self, names: list[str]) -> list[int]:
        """`;`-joined names + `})`, tokenised as they are after `-->` in a training text."""
        ids = list(self.tokenizer(WAIT + ITEM_SEP.join(names) + END, add_special_tokens=False)["input_ids"])
        if ids[0] != self.wait_id or ids[-1] != self.end_id:
            raise ValueError(f"the tokenizer does not keep {WAIT!r} and {END!r} whole around results")
        return ids[1:]

    def _abandon(self, s: _Sequence, reason: str, call: str | None, good: list[Query], bad: list[str]) -> None:
        self._skip(s, reason, call, good, bad)
        del s.ids[s.read_start :]
        self._rewind(s, s.read_start)
        s.prompt_end = min(s.prompt_end, s.read_start)
        s.phase, s.phase_tokens, s.suppress_start = _TEXT, 0, True

    def _skip(
        self, s: _Sequence, reason: str, call: str | None = None, good: Sequence[Query] = (), bad: Sequence[str] = ()
    ) -> None:
        self._mark(s, s.skipped, SkippedRead(0, reason, call, tuple(good), tuple(bad)))

    def _mark(self, s: _Sequence, into: list, entry: Read | SkippedRead) -> None:
        # No read block lies between the prompt and a read in progress (the previous one left the context
        # before the query), so the text before it is ids[prompt_end:read_start], and stays so.
        s.marks.append((into, len(into), max(0, s.read_start - s.prompt_end)))
        into.append(entry)

    # --- traces ----------------------------------------------------------------------------------------

    def _trace(self, s: _Sequence) -> ReadTrace:
        head = s.ids[: s.prompt_end]
        tail = s.ids[s.prompt_end :]
        # the text: no unfinished call at the end, no live block (it lies before an unfinished call)
        text_ids = tail[: max(0, s.read_start - s.prompt_end)] if s.unfinished_call else list(tail)
        if s.block is not None:
            a, b = (max(0, i - s.prompt_end) for i in s.block)
            del text_ids[a:b]
        # A read sits where a space was: training texts glue the call to the word before it and the results'
        # `})` to the word after it (docs/method.md §3), so the text gets the space back at each read made.
        cuts = sorted({k for into, _, k in s.marks if into is s.reads})
        text, offsets, start = "", {}, 0  # offsets: token boundary -> character offset in `text`
        before = s.prompt.removesuffix(START)
        for k in [*cuts, len(text_ids)]:
            text += self._continuation(head + text_ids[:start], text_ids[start:k])
            if k < len(text_ids) and (text or before) and not (text or before)[-1].isspace():
                right = self._continuation(head + text_ids[:k], text_ids[k : k + 1])
                text += " " if right and not right[0].isspace() else ""
            offsets[k], start = len(text), k
        for into, index, k in s.marks:
            if k not in offsets:  # a skipped read between two reads made
                base = max(c for c in (0, *cuts) if c <= k)
                offsets[k] = offsets.get(base, 0) + len(self._continuation(head + text_ids[:base], text_ids[base:k]))
            into[index] = replace(into[index], position=offsets[k])
        return ReadTrace(
            prompt=s.prompt,
            text=text,
            raw=self._continuation(head, tail),
            reads=tuple(s.reads),
            skipped=tuple(s.skipped),
            new_tokens=s.new_tokens,
            finish_reason=s.finish,
        )

    def _continuation(self, head: list[int], ids: list[int]) -> str:
        """`ids` decoded as they read after `head` (a leading space kept, which decoding alone would drop)."""
        if not ids:
            return ""
        before = self.tokenizer.decode(head)
        both = self.tokenizer.decode(head + ids)
        return both[len(before) :] if both.startswith(before) else self.tokenizer.decode(ids)


def generate_with_reads(mm: Any, prompts: str | Sequence[str], **options: Any) -> list[ReadTrace]:
    """Generate from `prompts` with the read adapter of `mm` (a `runtime.model.MemLLM`) and its memory.

    `options`: the fields of `ReadOptions`. A single prompt string is one prompt; one trace per prompt."""
    opts = ReadOptions(**options)
    if isinstance(prompts, str):
        prompts = [prompts]
    with mm.using("read"):
        return ReadLoop(mm.model, mm.tokenizer, mm.memory, opts, device=mm.device).run(list(prompts))


def _single_id(tokenizer: Any, s: str) -> int:
    ids = tokenizer(s, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(
            f"the tokenizer splits {s!r} into {len(ids)} tokens: register the API tokens first "
            "(trainer.tokenization.prepare_tokenizer)"
        )
    return ids[0]


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids |= set(configured) if isinstance(configured, list | tuple) else {configured}
    if not ids:
        raise ValueError("neither the tokenizer nor the model names an EOS token")
    return frozenset(ids)


def _forward_parameters(model: Any) -> frozenset[str]:
    """Parameter names of the forward of `model` (of the base model under a PEFT wrapper)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return frozenset(inspect.signature(base.forward if hasattr(base, "forward") else base).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _model_device(model: Any) -> Any:
    import torch

    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")
