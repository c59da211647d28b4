"""Generation with memory reads (`runtime.read`): the controller's rules (docs/method.md §8.2) with a scripted
model over the real Mistral tokenizer and an `ExactMemory`, batching, and runs on the tiny random Mistral."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch
from memllm.memory.exact import ExactMemory
from memllm.runtime.read import (
    EMPTY_RESULT,
    FINISH_EOS,
    FINISH_FIRST_SUCCESS,
    FINISH_LENGTH,
    MALFORMED_QUERY,
    NO_WAIT,
    REPEATED_QUERY,
    ReadLoop,
    ReadOptions,
)
from memllm.schemas.api import END, START, WAIT, Query
from transformers import MistralForCausalLM

FACTS = [
    ("Lumen Vale", "author", "Carla Fenwick"),
    ("Carla Fenwick", "place of birth", "Dunmore"),
    ("Dunmore", "country", "Ireland"),
]
PROMPT = "Lumen Vale is a novel by"
AUTHOR = "({MEM_READ(Lumen Vale>>author>>)-->"


@pytest.fixture(scope="module")
def tokenizer(mistral_tokenizer_dir):
    from memllm.trainer.tokenization import load_tokenizer, prepare_tokenizer

    tok = load_tokenizer(str(mistral_tokenizer_dir))
    prepare_tokenizer(tok)
    return tok


@pytest.fixture
def memory() -> ExactMemory:
    return ExactMemory(FACTS)


def _squash(text: str) -> str:
    # Keys ignore whitespace: the tokenizer decodes `({MEM_READ(` as `({ MEM_READ(` and drops or keeps the
    # space of a word-start piece depending on what precedes it.
    return "".join(text.replace("<s>", "").split())


def _visible(columns: list[int], new_ids, mask, positions) -> list[int]:
    """A row's cache columns with the step's new ids appended, after checking that the new tokens get the
    position ids they would have alone: the count of earlier columns the attention mask keeps."""
    mask = mask.tolist()
    width = len(new_ids)
    assert len(mask) == len(columns) + width, "the attention mask covers the cache and the new tokens"
    before = sum(mask[: len(columns)])
    new = [j for j in range(width) if mask[len(columns) + j]]
    assert positions[new].tolist() == list(range(before, before + len(new))), "positions as if alone"
    return columns + new_ids.tolist()


class RowCache:
    """The scripted model's "KV cache": the token id at each cache column of each batch row (the attention
    mask says which columns a step sees, as it does for a real model's keys and values)."""

    def __init__(self, rows: list[list[int]]) -> None:
        self.rows = rows

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.rows = [self.rows[i] for i in indices.tolist()]


class FlatCache:
    """A cache that cannot drop rows (the loop must re-prefill the sequences left in the round)."""

    def __init__(self, rows: list[list[int]]) -> None:
        self.rows = rows


class ScriptedLM(torch.nn.Module):
    """A causal LM whose greedy output is a script: `script` maps a context (its text, whitespace ignored)
    to what the model writes from there, or to several texts, best first (the second is what greedy decoding
    takes when the first token of the first is barred). A context matched by no entry gets EOS.

    It sees only new tokens when the loop passes its cache back, like a real model, and checks that the
    position ids the loop gives are the ones each row would have alone."""

    def __init__(self, tokenizer, script: dict[str, str | tuple[str, ...]], cache_type: type = RowCache) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.vocab = len(tokenizer)
        self.cache_type = cache_type
        self.rules = [
            (_squash(key), [self.encode(t) for t in (v if isinstance(v, tuple) else (v,))]) for key, v in script.items()
        ]
        self.contexts: list[list[int]] = []  # every context a next token was predicted for
        self.calls = 0
        self.widths: list[int] = []  # batch size of each call

    def encode(self, text: str) -> list[int]:
        """`text` as a training text tokenizes it after an API token (no word-start piece of its own)."""
        return self.tokenizer(END + text, add_special_tokens=False)["input_ids"][1:]

    def ranked(self, ctx: list[int]) -> list[int]:
        """Next tokens, best first: the furthest-advanced script text first."""
        decoded: dict[int, str] = {}
        found = []
        for key, options in self.rules:
            for rank, target in enumerate(options):
                for j in range(min(len(target), len(ctx)), -1, -1):
                    if j == len(target) or (j and ctx[-j:] != target[:j]):
                        continue
                    if j not in decoded:
                        decoded[j] = _squash(self.tokenizer.decode(ctx[: len(ctx) - j]))
                    if decoded[j] == key:
                        found.append((-j, rank, target[j]))
                        break
        return [t for *_, t in sorted(found)]

    def forward(self, input_ids, attention_mask, position_ids, past_key_values=None, use_cache=True, **_):
        self.calls += 1
        self.widths.append(input_ids.shape[0])
        rows = past_key_values.rows if past_key_values is not None else [[] for _ in range(input_ids.shape[0])]
        logits = torch.full((input_ids.shape[0], 1, self.vocab), -1e4)
        for i, row in enumerate(rows):
            row[:] = _visible(row, input_ids[i], attention_mask[i], position_ids[i])
            ctx = [t for t, m in zip(row, attention_mask[i].tolist()) if m]
            self.contexts.append(ctx)
            for score, token in enumerate(self.ranked(ctx)):
                logits[i, 0, token] = max(logits[i, 0, token].item(), -float(score))
            logits[i, 0, self.tokenizer.eos_token_id] = max(logits[i, 0, self.tokenizer.eos_token_id].item(), -50.0)
        return SimpleNamespace(logits=logits, past_key_values=self.cache_type(rows) if use_cache else None)

    def saw(self, text: str) -> bool:
        return any(_squash(self.tokenizer.decode(c)) == _squash(text) for c in self.contexts)


def run(tokenizer, memory, script, prompts=(PROMPT,), **options):
    model = ScriptedLM(tokenizer, script, options.pop("cache_type", RowCache))
    traces = ReadLoop(model, tokenizer, memory, ReadOptions(**options)).run(list(prompts))
    return model, traces


# --- one read ---------------------------------------------------------------------------------------------


def test_text_phase_runs_to_start_then_the_read_is_answered(tokenizer, memory):
    script = {PROMPT: " written" + AUTHOR, PROMPT + " written" + AUTHOR + "Carla Fenwick})": "Carla Fenwick ."}
    model, [t] = run(tokenizer, memory, script)
    assert t.text == " written Carla Fenwick ."  # the space the read took is given back
    assert t.raw == " written" + AUTHOR + "Carla Fenwick})Carla Fenwick ."
    [read] = t.reads
    assert read.queries == (Query("Lumen Vale", "author", None),)
    assert read.results == ("Carla Fenwick",)
    assert read.call == "Lumen Vale>>author>>"
    assert t.text[read.position :] == "Carla Fenwick ."
    assert t.skipped == () and t.finish_reason == FINISH_EOS
    # The results sit in the context as the training text tokenizes them (no word-start piece after `-->`).
    full = tokenizer(PROMPT + t.raw, add_special_tokens=True)["input_ids"]
    assert max(model.contexts, key=len) == full


def test_head_and_tail_queries(tokenizer, memory):
    call = "({MEM_READ(>>country>>Ireland;Carla Fenwick>>place of birth>>)-->"
    _, [t] = run(tokenizer, memory, {PROMPT: call, PROMPT + call + "Dunmore})": "Dunmore ."})
    [read] = t.reads
    assert read.queries == (Query(None, "country", "Ireland"), Query("Carla Fenwick", "place of birth", None))
    assert read.results == ("Dunmore",)  # both answer Dunmore: once
    assert t.text == " Dunmore ."


def test_malformed_queries_are_dropped(tokenizer, memory):
    call = "({MEM_READ(Lumen Vale>>author>>;>>country;a>>b>>c;>>author>>)-->"
    _, [t] = run(tokenizer, memory, {PROMPT: call, PROMPT + call + "Carla Fenwick})": "Carla Fenwick ."})
    [read] = t.reads
    assert read.queries == (Query("Lumen Vale", "author", None),)
    assert read.dropped == (">>country", "a>>b>>c", ">>author>>")
    assert t.text == " Carla Fenwick ."


# --- abandoned reads --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, reason",
    [
        ("({MEM_READ(Lumen Vale>>publisher>>)-->", EMPTY_RESULT),
        ("({MEM_READ(Lumen Vale>>>>;author)-->", MALFORMED_QUERY),
        ("({READ(Lumen Vale>>author>>)-->", MALFORMED_QUERY),
    ],
)
def test_abandoned_read_leaves_the_context_and_start_is_barred_once(tokenizer, memory, call, reason):
    # After the abandoned read the model would open the same read again at once; barred, it takes its
    # second choice, which then goes on normally (no ban on later tokens).
    script = {PROMPT: (" it", "x"), PROMPT + " it": (call, " y"), PROMPT + " it y": " then" + call}
    model, [t] = run(tokenizer, memory, script, max_new_tokens=100)
    assert [s.reason for s in t.skipped] == [reason, reason]
    assert t.skipped[0].position == len(" it")
    assert t.text == " it y then"
    assert t.raw == t.text  # nothing of the abandoned reads stays in the context
    assert t.finish_reason == FINISH_EOS
    assert model.saw(PROMPT + " it y")  # the context the second read was abandoned to


def test_empty_result_trace(tokenizer, memory):
    call = "({MEM_READ(>>publisher>>Lumen Vale)-->"
    _, [t] = run(tokenizer, memory, {PROMPT: call})
    [s] = t.skipped
    assert (s.reason, s.call, s.queries) == (
        EMPTY_RESULT,
        ">>publisher>>Lumen Vale",
        (Query(None, "publisher", "Lumen Vale"),),
    )
    assert t.reads == () and t.text == "" and t.raw == ""


def test_repeated_query_is_abandoned_after_removing_the_previous_block(tokenizer, memory):
    first = PROMPT + AUTHOR + "Carla Fenwick})"
    script = {
        PROMPT: AUTHOR,
        first: "Carla Fenwick wrote" + START,
        PROMPT + "Carla Fenwick wrote" + START: AUTHOR[2:],  # the same call again, the first block gone
        PROMPT + "Carla Fenwick wrote": " it .",  # the context after the abandoned repeat
    }
    model, [t] = run(tokenizer, memory, script)
    assert [r.call for r in t.reads] == ["Lumen Vale>>author>>"]
    [s] = t.skipped
    assert (s.reason, s.call) == (REPEATED_QUERY, "Lumen Vale>>author>>")
    assert t.text == " Carla Fenwick wrote it ."
    assert t.raw == "Carla Fenwick wrote it ."  # the first block left the context before the repeat
    assert s.position == len(" Carla Fenwick wrote")


def test_previous_block_is_removed_before_the_next_query(tokenizer, memory):
    born = "({MEM_READ(Carla Fenwick>>place of birth>>)-->"
    script = {
        PROMPT: AUTHOR,
        PROMPT + AUTHOR + "Carla Fenwick})": "Carla Fenwick , born in" + born,
        # what the model must see for the second query: the first block gone
        PROMPT + "Carla Fenwick , born in" + born[:2]: born[2:],
        PROMPT + "Carla Fenwick , born in" + born + "Dunmore})": "Dunmore .",
    }
    model, [t] = run(tokenizer, memory, script)
    assert [r.results for r in t.reads] == [("Carla Fenwick",), ("Dunmore",)]
    assert t.text == " Carla Fenwick , born in Dunmore ."
    assert t.raw == "Carla Fenwick , born in" + born + "Dunmore})Dunmore ."  # only the last block
    assert [r.position for r in t.reads] == [1, len(" Carla Fenwick , born in ")]
    # no context the model saw holds two read blocks
    assert max(sum(tok == model.tokenizer.convert_tokens_to_ids(END) for tok in c) for c in model.contexts) == 1


def test_results_are_deduplicated_in_order_and_capped(tokenizer):
    a = [f"A{i:02d}" for i in range(25)]
    b = [f"B{i:02d}" for i in range(20)]
    memory = ExactMemory([("Ann", "notable work", x) for x in a] + [(x, "author", "Ann") for x in a[20:] + b])
    call = "({MEM_READ(Ann>>notable work>>;>>author>>Ann)-->"
    _, [t] = run(tokenizer, memory, {PROMPT: call}, max_new_tokens=100)
    [read] = t.reads
    assert read.results == tuple(a + b[:5])  # 45 distinct names, the first 30 in query order
    _, [t] = run(tokenizer, memory, {PROMPT: call}, max_results=3)
    assert t.reads[0].results == ("A00", "A01", "A02")


class ScoredMemory(ExactMemory):
    """An `ExactMemory` that also answers like `EmbeddingMemory.query_many`: scored hits, closest first."""

    def __init__(self, triples) -> None:
        super().__init__(triples)
        self.thresholds = []

    def query_many(self, queries, thresholds=None, exclude_ids=(), strict=True):
        from memllm.memory.embedding_memory import Hit

        self.thresholds.append(thresholds)
        # the names in reverse order, to tell the hit order from `query_names`' sorted order
        return [
            [
                Hit(0.01 * i, i, *((q.subject, q.relation, n) if q.is_tail_query else (n, q.relation, q.object)))
                for i, n in enumerate(reversed(names))
            ]
            for q, names in zip(queries, self.query_names(queries))
        ]


def test_thresholds_go_to_a_memory_that_takes_them(tokenizer):
    memory = ScoredMemory([("Ann", "notable work", x) for x in ("A", "B", "C")] + [("D", "author", "Ann")])
    call = "({MEM_READ(Ann>>notable work>>;>>author>>Ann)-->"
    _, [t] = run(tokenizer, memory, {PROMPT: call}, thresholds="knowledge_editing")
    assert memory.thresholds == ["knowledge_editing"]
    assert t.reads[0].results == ("C", "B", "A", "D")  # hit order, each query's unknown side
    _, [t] = run(tokenizer, memory, {PROMPT: call})
    assert memory.thresholds[-1] == "perplexity_eval"  # the inference preset by default
    _, [t] = run(tokenizer, memory, {PROMPT: call}, thresholds=None)
    assert len(memory.thresholds) == 2 and t.reads[0].results == ("A", "B", "C", "D")  # `query_names`


# --- ending -----------------------------------------------------------------------------------------------


def _two_reads():
    born = "({MEM_READ(Carla Fenwick>>place of birth>>)-->"
    return {
        PROMPT: AUTHOR,
        PROMPT + AUTHOR + "Carla Fenwick})": "Carla Fenwick , born in" + born,
        PROMPT + "Carla Fenwick , born in" + born[:2]: born[2:],
        PROMPT + "Carla Fenwick , born in" + born + "Dunmore})": "Dunmore .",
    }


def test_stop_after_first_success(tokenizer, memory):
    model, [t] = run(tokenizer, memory, _two_reads(), stop_after_first_success=True)
    assert t.finish_reason == FINISH_FIRST_SUCCESS
    assert t.text == " Carla Fenwick , born in"
    assert t.raw == AUTHOR + "Carla Fenwick})Carla Fenwick , born in" + START
    assert len(t.reads) == 1 and t.skipped == ()
    _, [t] = run(tokenizer, memory, _two_reads(), stop_after_first_success=False)
    assert len(t.reads) == 2 and t.finish_reason == FINISH_EOS


def _count(tokenizer, *texts: str) -> int:
    """Tokens the scripted model generates for `texts` (see `ScriptedLM.encode`)."""
    return sum(len(tokenizer(END + x, add_special_tokens=False)["input_ids"]) - 1 for x in texts)


def test_max_new_tokens_counts_generated_tokens_only(tokenizer, memory):
    born = "({MEM_READ(Carla Fenwick>>place of birth>>)-->"
    generated = _count(tokenizer, AUTHOR, "Carla Fenwick , born in" + START, born[2:], "Dunmore .")
    _, [t] = run(tokenizer, memory, _two_reads())
    assert t.new_tokens == generated and t.finish_reason == FINISH_EOS  # results and `})` not counted
    _, [t] = run(tokenizer, memory, _two_reads(), max_new_tokens=generated)
    assert t.finish_reason == FINISH_LENGTH and t.text == " Carla Fenwick , born in Dunmore ."
    _, [t] = run(tokenizer, memory, _two_reads(), max_new_tokens=generated - 1)
    assert t.finish_reason == FINISH_LENGTH and t.text == " Carla Fenwick , born in Dunmore"
    assert t.new_tokens == generated - 1


def test_length_limit_inside_a_query(tokenizer, memory):
    limit = _count(tokenizer, AUTHOR) - 1  # the call is cut before `-->`
    _, [t] = run(tokenizer, memory, {PROMPT: " so" + AUTHOR}, max_new_tokens=limit + _count(tokenizer, " so"))
    [s] = t.skipped
    assert (s.reason, s.call, s.position) == (NO_WAIT, None, len(" so"))
    assert t.finish_reason == FINISH_LENGTH and t.text == " so"
    assert t.raw == " so" + AUTHOR[: -len(WAIT)]


def test_eos_ends_text_and_query(tokenizer, memory):
    _, [t] = run(tokenizer, memory, {PROMPT: " yes ."})
    assert (t.text, t.finish_reason, t.reads, t.skipped) == (" yes .", FINISH_EOS, (), ())
    _, [t] = run(tokenizer, memory, {PROMPT: " yes({MEM_READ(Lumen"})  # EOS before `-->`
    assert [s.reason for s in t.skipped] == [NO_WAIT]
    assert (t.text, t.finish_reason) == (" yes", FINISH_EOS)


def test_prompt_ending_with_start_goes_to_the_query(tokenizer, memory):
    prompt = PROMPT + START
    script = {prompt: AUTHOR[2:], prompt + AUTHOR[2:] + "Carla Fenwick})": "Carla Fenwick ."}
    _, [t] = run(tokenizer, memory, script, prompts=[prompt])
    assert t.reads[0].results == ("Carla Fenwick",) and t.text == " Carla Fenwick ."
    assert t.reads[0].position == 1


# --- batching ---------------------------------------------------------------------------------------------

BATCH_SCRIPT = {
    **_two_reads(),
    "Dunmore is in": ("({MEM_READ(Dunmore>>capital>>)-->", " the"),
    "Dunmore is in the": " west" + "({MEM_READ(Dunmore>>country>>)-->",
    "Dunmore is in the west({MEM_READ(Dunmore>>country>>)-->Ireland})": "Ireland .",
    "Ireland": " is an island" * 30,
    "Carla Fenwick was born in": "({MEM_READ(Carla Fenwick>>place of birth>>)-->",
}
BATCH_PROMPTS = [PROMPT, "Dunmore is in", "Ireland", "Carla Fenwick was born in", PROMPT + START]


@pytest.mark.parametrize("cache_type, use_cache", [(RowCache, True), (FlatCache, True), (RowCache, False)])
def test_batched_equals_one_at_a_time(tokenizer, memory, cache_type, use_cache):
    opts = dict(max_new_tokens=60, cache_type=cache_type, use_cache=use_cache)
    alone = [run(tokenizer, memory, BATCH_SCRIPT, prompts=[p], **opts)[1][0] for p in BATCH_PROMPTS]
    model, together = run(tokenizer, memory, BATCH_SCRIPT, prompts=BATCH_PROMPTS, batch_size=8, **opts)
    assert together == alone
    assert max(model.widths) == len(BATCH_PROMPTS)  # really batched
    assert {t.finish_reason for t in alone} == {FINISH_EOS, FINISH_LENGTH}
    assert sum(len(t.reads) for t in alone) >= 4 and sum(len(t.skipped) for t in alone) >= 1
    # One forward pass per generated token of the longest generation: a read (its results inserted, a read
    # abandoned, a previous block removed) costs no pass of its own and no re-prefill of the batch.
    assert model.calls == max(t.new_tokens + (t.finish_reason == FINISH_EOS) for t in together)


def test_options_are_checked():
    with pytest.raises(ValueError):
        ReadOptions(max_results=0)
    with pytest.raises(ValueError):
        ReadOptions(thresholds="no such preset")


# --- the tiny random Mistral ------------------------------------------------------------------------------


# transformers 5.x renames `past_key_values` to `cache`
CACHE_KW = "cache" if "cache" in inspect.signature(MistralForCausalLM.forward).parameters else "past_key_values"


class Steered(torch.nn.Module):
    """The tiny random Mistral with reads forced in: after 4 free tokens it opens a read and writes one of
    three calls, chosen by the context length (a hit, a miss, a malformed one); otherwise the real model
    decides. The real KV cache, padding and re-prefills are exercised; the cache holds both."""

    def __init__(self, model, tokenizer) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.start, self.end, self.wait = (tokenizer.convert_tokens_to_ids(x) for x in (START, END, WAIT))
        calls = ["MEM_READ(Lumen Vale>>author>>)-->", "MEM_READ(Lumen Vale>>genre>>)-->", "MEM_READ(Lumen)-->"]
        self.calls = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in calls]

    def forced(self, ctx: list[int]) -> int | None:
        opened = max((i for i, t in enumerate(ctx) if t == self.start), default=-1)
        if opened >= 0 and self.wait not in ctx[opened:]:
            call = self.calls[opened % 3]
            done = len(ctx) - opened - 1
            return call[done] if done < len(call) else None
        since = max((i for i, t in enumerate(ctx) if t == self.end), default=0)
        return self.start if len(ctx) - since > 6 else None

    def forward(self, input_ids, attention_mask, position_ids, past_key_values=None, use_cache=True, **_):
        real, rows = past_key_values if past_key_values is not None else (None, [[] for _ in input_ids])
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **{CACHE_KW: real},
        )
        logits = out.logits[:, -1:, :].clone()
        for i, row in enumerate(rows):
            row[:] = _visible(row, input_ids[i], attention_mask[i], position_ids[i])
            token = self.forced([t for t, m in zip(row, attention_mask[i].tolist()) if m])
            if token is not None:
                logits[i, 0, token] += 1e3
        real = getattr(out, CACHE_KW)
        return SimpleNamespace(logits=logits, past_key_values=Pair(real, rows) if use_cache else None)


class Pair(tuple):
    def __new__(cls, real, rows):
        return super().__new__(cls, (real, rows))

    def batch_select_indices(self, indices):
        self[0].batch_select_indices(indices)
        self[1][:] = [self[1][i] for i in indices.tolist()]


@pytest.fixture(scope="module")
def tiny(tiny_mistral):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_mistral, dtype=torch.float32).eval()


def test_tiny_mistral_plain(tiny, tokenizer, memory):
    prompts = ["Lumen Vale is a novel by", "The river", "Dunmore , Ireland ." + START]
    opts = ReadOptions(max_new_tokens=12, batch_size=8)
    loop = ReadLoop(tiny, tokenizer, memory, opts)
    first = loop.run(prompts)
    assert loop.run(prompts) == first  # deterministic
    assert [ReadLoop(tiny, tokenizer, memory, opts).run([p])[0] for p in prompts] == first
    for t in first:
        assert t.new_tokens <= 12 and t.finish_reason in (FINISH_EOS, FINISH_LENGTH)
        assert START not in t.text
    assert first[2].skipped[0].reason in (NO_WAIT, MALFORMED_QUERY, EMPTY_RESULT)


def test_tiny_mistral_with_reads(tiny, tokenizer, memory):
    prompts = ["Lumen Vale is a novel by", "The river", "Dunmore , Ireland", "A"]
    steered = Steered(tiny, tokenizer)
    opts = dict(max_new_tokens=70, batch_size=8)
    together = ReadLoop(steered, tokenizer, memory, ReadOptions(**opts)).run(prompts)
    alone = [ReadLoop(steered, tokenizer, memory, ReadOptions(**opts)).run([p])[0] for p in prompts]
    uncached = ReadLoop(steered, tokenizer, memory, ReadOptions(use_cache=False, **opts)).run(prompts)
    assert together == alone == uncached
    reads = [r for t in together for r in t.reads]
    reasons = {s.reason for t in together for s in t.skipped}
    assert reads and {EMPTY_RESULT, MALFORMED_QUERY} <= reasons  # every path of the loop was taken
    for t in together:
        assert START not in t.text and "MEM_READ" not in t.text
        assert t.raw.count(END) <= 1
        for r in t.reads:
            assert r.results == ("Carla Fenwick",) and 0 <= r.position <= len(t.text)
