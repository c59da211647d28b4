"""Late-stopping decoding: the rule on hand-set log-probs (scores worked out by hand), and the batched decoder
over a stub model whose logits are a fixed function of the tokens so far (batched == one at a time)."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import pytest
import torch
from memllm.runtime.decoding import Cut, LateStopping, decode_batch

PAD, BOS, EOS, END, WAIT, A, B, C, D = range(9)
VOCAB = 12


def run(state: LateStopping, steps: list[tuple[tuple[int, int], tuple[float, float]]]) -> list[int]:
    emitted = []
    for ids, logps in steps:
        assert not state.done
        emitted.append(state.step(ids, logps))
    return emitted


def test_end_on_top_records_a_cut_and_takes_the_second_token():
    s = LateStopping(END, EOS, k=5)
    emitted = run(
        s,
        [
            ((A, B), (-0.1, -3.0)),
            ((END, B), (-0.2, -0.5)),  # cut at 1: (-0.1 - 0.2) / 2 = -0.15; B goes on
            ((C, A), (-0.1, -2.0)),
            ((END, A), (-0.05, -1.0)),  # cut at 3: (-0.1 - 0.5 - 0.1 - 0.05) / 4 = -0.1875
            ((EOS, A), (-0.1, -4.0)),
        ],
    )
    assert emitted == [A, B, C, A, EOS]
    assert s.done and s.tokens == [A, B, C, A]
    assert s.cuts == [Cut(1, pytest.approx(-0.15)), Cut(3, pytest.approx(-0.1875))]
    assert s.logp_sum == pytest.approx(-0.1 - 0.5 - 0.1 - 1.0 - 0.1)
    assert s.output() == [A, END]  # the best cut, END appended


def test_no_cut_gives_the_raw_output():
    s = LateStopping(END, EOS)
    run(s, [((A, END), (-0.1, -0.2)), ((B, END), (-0.1, -0.2)), ((EOS, END), (-0.1, -0.2))])
    assert s.cuts == [] and s.output() == [A, B]


def test_max_new_tokens_ends_the_sequence():
    s = LateStopping(END, EOS, max_new_tokens=3)
    run(s, [((A, B), (-1, -2))] * 3)
    assert s.done and s.tokens == [A, A, A]
    with pytest.raises(RuntimeError):
        s.step((A, B), (-1, -2))


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        # output: A (-0.4)/2 = -0.2 vs B (-0.9)/6 = -0.15 -> B; sequence (prompt 10): -0.4/12 vs -0.9/16 -> A
        ("output", 5),
        ("sequence", 1),
    ],
)
def test_length_normalisation(length, expected):
    s = LateStopping(END, EOS, length=length, prompt_len=10)
    run(
        s,
        [
            ((A, B), (-0.1, -5.0)),
            ((END, A), (-0.3, -0.1)),  # cut at 1: sum -0.4
            ((A, B), (-0.1, -5.0)),
            ((A, B), (-0.1, -5.0)),
            ((A, B), (-0.1, -5.0)),
            ((END, EOS), (-0.4, -0.2)),  # cut at 5: -0.1 * 5 - 0.4 = -0.9; EOS as second best ends it
        ],
    )
    assert [c.position for c in s.cuts] == [1, 5]
    assert s.output() == [*s.tokens[:expected], END]


def falling_cuts(k: int, n_ends: int) -> LateStopping:
    """A sequence whose END-on-top steps score worse and worse (the first cut stays the best)."""
    s = LateStopping(END, EOS, k=k)
    for i in range(n_ends):
        if s.done:
            break
        s.step((A, B), (-0.1, -5.0))
        if not s.done:
            s.step((END, B), (-0.5 - i, -0.1))
    return s


def test_k_rule_stops_when_the_best_cut_leaves_the_last_k():
    s = falling_cuts(k=2, n_ends=10)
    # cuts 0 and 1 (fewer than K), cut 2 (best, cut 0, still among the last 2 of [0, 1]), then the best is
    # not among the last 2 of [0, 1, 2]: END is let through and the sequence ends
    assert len(s.cuts) == 3 and s.done
    assert s.tokens[-1] == END and s.tokens.count(END) == 1
    assert s.output() == [A, END]
    assert len(falling_cuts(k=5, n_ends=20).cuts) == 6  # K + 1 cuts before a refusal


def test_k_rule_keeps_recording_while_the_cuts_improve():
    s = LateStopping(END, EOS, k=2)
    for i in range(8):  # each cut better than the one before: the best is always the latest
        s.step((A, B), (-0.01, -5.0))
        s.step((END, A), (-4.0 + 0.5 * i, -0.01))
    assert len(s.cuts) == 8 and not s.done
    best = max(s.cuts, key=lambda c: c.score)
    assert best == s.cuts[-1] and s.output() == [*s.tokens[: best.position], END]


def test_ties_go_to_the_earliest_cut():
    s = LateStopping(END, EOS)
    run(s, [((END, A), (-1.0, -1.0)), ((END, A), (-1.0, -5.0))])  # (-1)/1 and (-1 - 1)/2: equal
    assert s.cuts[0].score == s.cuts[1].score and s.output() == [END]


def test_force_non_empty_skips_the_cut_right_after_wait():
    def decode(force: bool) -> LateStopping:
        s = LateStopping(END, EOS, force_non_empty=force, wait_id=WAIT)
        run(
            s,
            [
                ((WAIT, A), (-0.01, -5.0)),
                ((END, A), (-0.01, -2.0)),  # empty write: (-0.02) / 2 = -0.01, the best
                ((B, A), (-0.5, -2.0)),
                ((END, C), (-0.5, -3.0)),  # (-0.01 - 2.0 - 0.5 - 0.5) / 4 = -0.7525
                ((D, A), (-0.1, -3.0)),
                ((END, EOS), (-0.1, -0.2)),  # (-3.01 - 3.0 - 0.1 - 0.1) / 6 = -1.035; then EOS
            ],
        )
        return s

    assert decode(False).output() == [WAIT, END]
    forced = decode(True)
    assert forced.best_cut() == Cut(3, pytest.approx(-0.7525))
    assert forced.output() == [WAIT, A, B, END]


def test_force_non_empty_without_another_cut_keeps_the_raw_output():
    s = LateStopping(END, EOS, force_non_empty=True, wait_id=WAIT)
    run(s, [((WAIT, A), (-0.01, -5.0)), ((END, B), (-0.01, -2.0)), ((EOS, A), (-0.1, -3.0))])
    assert s.output() == [WAIT, B]


def test_step_logprobs_takes_the_top_two_of_a_vector():
    s = LateStopping(END, EOS)
    logps = [-9.0] * VOCAB
    logps[END], logps[C], logps[A] = -0.1, -0.3, -0.4
    assert s.step_logprobs(logps) == C
    assert s.cuts == [Cut(0, pytest.approx(-0.1))] and s.logp_sum == pytest.approx(-0.3)


# --- the batched decoder over a stub model ---------------------------------------------------------------


class StubCache:
    """Per row, the real (unpadded) tokens seen so far; selectable like transformers' DynamicCache."""

    def __init__(self, prompt_lens: list[int]) -> None:
        self.prompt_lens = prompt_lens
        self.history: list[list[int]] = [[] for _ in prompt_lens]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        keep = indices.tolist()
        self.history = [self.history[i] for i in keep]
        self.prompt_lens = [self.prompt_lens[i] for i in keep]


class StubLM(torch.nn.Module):
    """Logits that depend only on a row's own tokens (prompt + generated), never on padding or batch-mates:
    a crc32-seeded random vector, END boosted every third generated token, EOS once the output is as long as
    the prompt's second token says. Checks the attention mask and the position ids it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # the decoder reads the device from a parameter
        self.batch_sizes: list[int] = []

    @staticmethod
    def logits_for(history: list[int], prompt_len: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(zlib.crc32(bytes(history)))
        logits = torch.rand(VOCAB, generator=g) * 3
        logits[[PAD, BOS]] = -30.0
        out_len = len(history) - prompt_len
        logits[END] += 2.5 if out_len % 3 == 1 else -5.0
        logits[EOS] += 6.0 if out_len >= 4 + history[1] else -30.0
        return logits

    def forward(self, input_ids, attention_mask, position_ids, past_key_values=None, use_cache=True, logits_to_keep=0):
        self.batch_sizes.append(input_ids.shape[0])
        cache = past_key_values if past_key_values is not None else StubCache(attention_mask.sum(-1).tolist())
        new_mask = attention_mask[:, -input_ids.shape[1] :]
        rows = []
        for r in range(input_ids.shape[0]):
            for j in range(input_ids.shape[1]):
                if new_mask[r, j]:
                    assert position_ids[r, j] == len(cache.history[r]), "position ids must count real tokens"
                    cache.history[r].append(int(input_ids[r, j]))
            rows.append(self.logits_for(cache.history[r], cache.prompt_lens[r]))
        return SimpleNamespace(logits=torch.stack(rows)[:, None, :], past_key_values=cache)


PROMPTS = [[BOS, 3, A, B], [BOS, 0], [BOS, 6, C, C, D, A, B, C], [BOS, 11, C, C], [BOS, 2, A, A, A, A], [BOS, 10, D]]
OPTIONS = dict(end_id=END, eos_id=EOS, pad_id=PAD, k=2, max_new_tokens=30)


def alone(prompt: list[int]) -> tuple[LateStopping, int]:
    """The rule fed directly from the stub's logits, one sequence, no batching, no cache; and its steps."""
    s = LateStopping(END, EOS, k=OPTIONS["k"], max_new_tokens=OPTIONS["max_new_tokens"])
    history, steps = list(prompt), 0
    while not s.done:
        history.append(s.step_logprobs(torch.log_softmax(StubLM.logits_for(history, len(prompt)), -1).tolist()))
        steps += 1
    return s, steps


def test_batched_decoding_equals_decoding_each_sequence_alone():
    model = StubLM()
    batched = decode_batch(model, PROMPTS, **OPTIONS)
    expected, steps = zip(*(alone(p) for p in PROMPTS))
    assert [s.tokens for s in batched] == [s.tokens for s in expected]
    assert [s.output() for s in batched] == [s.output() for s in expected]
    assert [[c.position for c in s.cuts] for s in batched] == [[c.position for c in s.cuts] for s in expected]
    # the cases this covers: several cuts, a refused cut (END let through), a best cut that is not the first,
    # outputs of different lengths (rows leave the batch at different steps)
    assert all(s.cuts for s in batched) and sum(len(s.cuts) >= 3 for s in batched) >= 2
    assert any(s.tokens[-1] == END for s in batched)
    assert any(s.best_cut() != s.cuts[0] for s in batched)
    assert len({len(s.tokens) for s in batched}) >= 4
    # one forward pass per step; finished rows leave the batch
    assert len(model.batch_sizes) == max(steps)
    assert model.batch_sizes == sorted(model.batch_sizes, reverse=True) and model.batch_sizes[-1] < len(PROMPTS)
    assert model.batch_sizes == [sum(n > i for n in steps) for i in range(max(steps))]
    for p, s in zip(PROMPTS, expected):
        assert decode_batch(StubLM(), [p], **OPTIONS)[0].tokens == s.tokens


def test_decode_batch_refuses_an_empty_prompt():
    with pytest.raises(ValueError, match="empty prompt"):
        decode_batch(StubLM(), [[BOS], []], **OPTIONS)
