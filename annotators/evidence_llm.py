"""Evidence for evidence-less relations from an LLM judge, with the reference's fallback (docs/method.md §5).

1. Candidates (§5 step 1): every evidence-less relation at every sentence that holds a mention of one of
   its two entities when both have been mentioned at or before it. Each candidate names one mention pair
   that qualifies at its sentence (one mention in the sentence, both at or before it, as the memory-write
   builder picks them, §6.1), drawn from a generator seeded by (seed, document, relation, sentence), and
   the relation's English label.
2. Judgement: a few-shot prompt of our own (instruction, 8 demonstrations, 4 Yes and 4 No, reasoning before
   the verdict) asks whether the main sentence, read with its context, states the relation. A `Judge` is
   any callable from prompts to generated texts: `TransformersJudge` (a causal LM, greedy, batched), or a
   plain function in tests.
3. Assignment (§5 step 3): a relation's evidence becomes the candidate sentences judged Yes; when none is,
   the last candidate sentence (the reference's fallback), so every evidence-less relation gets at least
   one sentence. Relations with evidence are never changed.

What it doesn't do: judge relations that have evidence (the reference judged them too, but used only the
verdicts of evidence-less ones), or hold the model for a Beam worker (`pipeline.evidence` does).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from memllm.annotators.write_examples import content_digest
from memllm.schemas.document import Document, Mention

DEFAULT_JUDGE_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"  # the paper's judge
DEFAULT_MAX_NEW_TOKENS = 256  # the reference's max_tokens
DEFAULT_BATCH_SIZE = 8
DEFAULT_SEED = 42
STOP = "\n\n\n"  # the reference's stop string; our demonstrations are separated by it
YES, NO = "The answer is Yes", "The answer is No"


class Judge(Protocol):
    """Prompts → generated continuations (same order, same length), without the prompt."""

    def __call__(self, prompts: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class EvidenceCandidate:
    """Does sentence `sent_id` (read after `context`) state relation `label_index` as (head, relation, tail)?"""

    label_index: int
    sent_id: int
    head: str
    relation: str
    tail: str
    head_entity: int
    tail_entity: int
    relation_id: str
    context: str
    sentence: str


@dataclass(frozen=True, slots=True)
class Judgement:
    candidate: EvidenceCandidate
    prompt: str
    generation: str
    verdict: bool
    fallback: bool = False  # this sentence became the relation's evidence because no candidate got a Yes


# --- candidates ------------------------------------------------------------------------------------------


def _pair_rng(seed: int, doc: Document, label_index: int, sent_id: int) -> random.Random:
    # A string seed is hashed with SHA-512 by `random`: the same on every worker, run and Python version.
    # The document's content, not its id (which names the input file): a renamed input asks the same prompts.
    return random.Random(f"{seed}:{content_digest(doc)}:{label_index}:{sent_id}")


def mention_pair(doc: Document, label_index: int, sent_id: int, seed: int = DEFAULT_SEED) -> tuple[Mention, Mention]:
    """A (head, tail) mention pair for the relation at `sent_id`, from a seeded shuffle of all pairs.

    The first pair with one mention in the sentence and both at or before it (the memory-write rule); for a
    sentence with no such pair (a validation candidate, where the entity may be a pronoun) the first with
    both at or before it, else the first pair."""
    rel = doc.relations[label_index]
    pairs = [(h, t) for h in doc.entities[rel.h].mentions for t in doc.entities[rel.t].mentions]
    _pair_rng(seed, doc, label_index, sent_id).shuffle(pairs)

    def before(p):
        return p[0].sent_id <= sent_id and p[1].sent_id <= sent_id

    def qualifies(p):
        return before(p) and sent_id in (p[0].sent_id, p[1].sent_id)

    return next((p for p in pairs if qualifies(p)), None) or next((p for p in pairs if before(p)), pairs[0])


def candidate(
    doc: Document, label_index: int, sent_id: int, labels: Mapping[str, str], seed: int = DEFAULT_SEED
) -> EvidenceCandidate:
    rel = doc.relations[label_index]
    head, tail = mention_pair(doc, label_index, sent_id, seed)
    return EvidenceCandidate(
        label_index,
        sent_id,
        head.name,
        labels[rel.r],
        tail.name,
        rel.h,
        rel.t,
        rel.r,
        context=" ".join(" ".join(s) for s in doc.sents[:sent_id]),
        sentence=" ".join(doc.sents[sent_id]),
    )


def candidate_sentences(doc: Document, label_index: int) -> list[int]:
    """Sentences holding a mention of either entity, once both entities have been mentioned (ascending)."""
    rel = doc.relations[label_index]
    sents = [{m.sent_id for m in doc.entities[e].mentions} for e in (rel.h, rel.t)]
    both_seen = max(min(s) for s in sents)
    return sorted(s for s in sents[0] | sents[1] if s >= both_seen)


def candidates(doc: Document, labels: Mapping[str, str], seed: int = DEFAULT_SEED) -> list[EvidenceCandidate]:
    """Every candidate of the document's evidence-less relations, by relation then sentence."""
    return [
        candidate(doc, i, s, labels, seed)
        for i, rel in enumerate(doc.relations)
        if not rel.evidence
        for s in candidate_sentences(doc, i)
    ]


# --- prompt and verdict ----------------------------------------------------------------------------------

INSTRUCTION = (
    "You check facts against a text. Each item gives the Context (the sentences that come before, possibly "
    "none), a Main Sentence, and a Relation written as (subject, relation, object). Decide whether the Main "
    "Sentence itself gives evidence that the relation holds. The Context may only be used to understand the "
    "Main Sentence, for example to tell who a pronoun or a short name refers to. If the relation is stated only "
    "in the Context, or is not stated at all, or would have to be guessed, the answer is No. Under Evidence, "
    "first explain in one to three sentences what the relation means and what the Main Sentence says, then "
    'end with "The answer is Yes." or "The answer is No."'
)

# (context, main sentence, (subject, relation, object), evidence). Written for this project: fictional or
# generic facts, mixed relation types; Yes and No alternate so the order gives the model no hint.
DEMONSTRATIONS: tuple[tuple[str, str, tuple[str, str, str], str], ...] = (
    (
        "The Orinoco Quartet is a string quartet formed in Caracas in 1998.",
        "Its first album , Night Letters , was released by Halcyon Records in 2001 .",
        ("Night Letters", "record label", "Halcyon Records"),
        "The relation means that Night Letters came out on the Halcyon Records label. The main sentence says "
        "the album Night Letters was released by Halcyon Records. The answer is Yes.",
    ),
    (
        "Pieter Vos was born in Utrecht in 1921 . He studied law in Leiden .",
        "After the war he joined the Dutch foreign service and was posted to Jakarta .",
        ("Pieter Vos", "place of birth", "Utrecht"),
        "The relation means that Pieter Vos was born in Utrecht. That is said in the context, but the main "
        "sentence is only about his joining the foreign service. The answer is No.",
    ),
    (
        "Anna Lindqvist is a Swedish novelist and translator .",
        "She was born in Uppsala and has lived in Gothenburg since 1990 .",
        ("Anna Lindqvist", "place of birth", "Uppsala"),
        'The relation means that Anna Lindqvist was born in Uppsala. The context shows that "She" is Anna '
        "Lindqvist, and the main sentence says she was born in Uppsala. The answer is Yes.",
    ),
    (
        "",
        "Tomas Berg and Elena Sorokina both sang at the 2010 Salzburg Festival .",
        ("Tomas Berg", "spouse", "Elena Sorokina"),
        "The relation means that Tomas Berg is married to Elena Sorokina. The main sentence only says that the "
        "two sang at the same festival, which does not show a marriage. The answer is No.",
    ),
    (
        "",
        "Lake Vitter is a reservoir in the Harz mountains of central Germany .",
        ("Lake Vitter", "country", "Germany"),
        "The relation means that Lake Vitter is in Germany. The main sentence places the reservoir in the Harz "
        "mountains of central Germany. The answer is Yes.",
    ),
    (
        "The Red Coast is a 1994 French drama film directed by Alain Moreau .",
        "Moreau later said that the story came from his childhood in Marseille .",
        ("The Red Coast", "director", "Alain Moreau"),
        "The relation means that Alain Moreau directed The Red Coast. The context says so, while the main "
        "sentence only reports what Moreau said about the story. The answer is No.",
    ),
    (
        "Gerald Ito is a Japanese footballer who plays as a forward .",
        "In 2015 he signed for Kawasaki Frontale , with whom he won two league titles .",
        ("Gerald Ito", "member of sports team", "Kawasaki Frontale"),
        'The relation means that Gerald Ito played for Kawasaki Frontale. The context shows that "he" is Gerald '
        "Ito, and the main sentence says he signed for Kawasaki Frontale. The answer is Yes.",
    ),
    (
        "",
        "Lucia Marin grew up in Lisbon before she moved to Paris , where she died in 1988 .",
        ("Lucia Marin", "place of birth", "Lisbon"),
        "The relation means that Lucia Marin was born in Lisbon. The main sentence says only that she grew up "
        "there, which is not where she was born. The answer is No.",
    ),
)


def _block(context: str, sentence: str, triple: tuple[str, str, str], evidence: str | None) -> str:
    relation = "(" + ", ".join(f'"{x}"' for x in triple) + ")"
    lines = [f"Context: {context}".rstrip(), f"Main Sentence: {sentence}", f"Relation: {relation}"]
    lines.append("Evidence:" if evidence is None else f"Evidence: {evidence}")
    return "\n".join(lines)


FEW_SHOT = STOP.join([INSTRUCTION, *(_block(*d) for d in DEMONSTRATIONS)]) + STOP


def prompt(c: EvidenceCandidate) -> str:
    """The few-shot prompt for one candidate; it ends at "Evidence:" (the model writes the rest)."""
    return FEW_SHOT + _block(c.context, c.sentence, (c.head, c.relation, c.tail), None)


def parse_verdict(generation: str) -> bool:
    """Yes iff "The answer is Yes" occurs before any "The answer is No", in the text before the stop string.

    Strict: exact case and wording; a verdict the model writes after a new "Context:" block (a demonstration
    it makes up) does not count; anything else (no verdict, a cut-off generation) is No."""
    text = generation.split(STOP, 1)[0].split("\nContext:", 1)[0]
    yes, no = text.find(YES), text.find(NO)
    return yes >= 0 and (no < 0 or yes < no)


# --- assignment ------------------------------------------------------------------------------------------


def judge_all(cands: Sequence[EvidenceCandidate], judge: Judge) -> list[Judgement]:
    """One `judge` call for all candidates (the judge batches as it likes)."""
    prompts = [prompt(c) for c in cands]
    generations = judge(prompts) if prompts else []
    if len(generations) != len(prompts):
        raise ValueError(f"the judge returned {len(generations)} generations for {len(prompts)} prompts")
    return [Judgement(c, p, g, parse_verdict(g)) for c, p, g in zip(cands, prompts, generations)]


def assign(doc: Document, judgements: Sequence[Judgement]) -> tuple[Document, list[Judgement]]:
    """`doc` with evidence for its judged relations (Yes sentences, else the last candidate), and the
    judgements with the fallback marked. Only relations without evidence are changed."""
    by_relation: dict[int, list[Judgement]] = {}
    for j in judgements:
        by_relation.setdefault(j.candidate.label_index, []).append(j)
    relations, marked = list(doc.relations), []
    for label_index, js in sorted(by_relation.items()):
        if doc.relations[label_index].evidence:
            raise ValueError(f"relation {label_index} of {doc.doc_id} has evidence; only evidence-less are judged")
        js = sorted(js, key=lambda j: j.candidate.sent_id)
        evidence = [j.candidate.sent_id for j in js if j.verdict]
        if not evidence:  # the reference's fallback: the latest sentence where the fact was eligible
            js[-1] = replace(js[-1], fallback=True)
            evidence = [js[-1].candidate.sent_id]
        relations[label_index] = replace(doc.relations[label_index], evidence=evidence)
        marked.extend(js)
    return (replace(doc, relations=relations) if by_relation else doc), marked


def judge_documents(
    docs: Sequence[Document], judge: Judge, labels: Mapping[str, str], seed: int = DEFAULT_SEED
) -> list[tuple[Document, list[Judgement]]]:
    """Every document with LLM evidence, and its judgements; all candidates go to the judge at once."""
    per_doc = [candidates(d, labels, seed) for d in docs]
    judged = judge_all([c for cs in per_doc for c in cs], judge)
    out, start = [], 0
    for doc, cs in zip(docs, per_doc):
        out.append(assign(doc, judged[start : start + len(cs)]))
        start += len(cs)
    return out


# --- a transformers judge --------------------------------------------------------------------------------


class JudgeModelError(ValueError):
    """The judge model is neither a model directory nor a loadable hub id."""


def check_judge_model(model: str) -> None:
    """Fail early, with one line, where `model` cannot be loaded (before any worker tries)."""
    import os

    if os.path.isdir(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise JudgeModelError(f"{model}: not a transformers model directory (no config.json)")
        return
    if os.path.exists(model) or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise JudgeModelError(f"{model}: no such model directory")
    from transformers import AutoConfig

    try:  # a hub id: its config is the cheapest proof that the weights can be had (cache or network)
        AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as e:
        lines = str(e).strip().splitlines()
        raise JudgeModelError(f"{model}: cannot be loaded ({lines[0] if lines else type(e).__name__})") from None


class TransformersJudge:
    """A causal LM (a directory or hub id) as a `Judge`: greedy, batched, stopping at `STOP` or EOS.

    Raw text, no chat template (as the reference): the few-shot blocks are the format. bf16 with
    `device_map="auto"` where CUDA is available, float32 on CPU.

    Every prompt starts with the same few-shot text (~1,000 tokens) and the question is ~60: the shared
    prefix is run through the model once and its key/value cache reused by every batch, so each prompt
    costs only its own tokens (~10x less prefill). Prompts are batched by token length and padded
    *between* the prefix and their own tokens (the attention mask hides the pads; position ids count
    only real tokens), which is left padding for the part that is not cached. A prompt set that does not
    share the prefix's tokens is run without the cache."""

    def __init__(
        self,
        model: str,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str | None = None,
        prefix: str = FEW_SHOT,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if self.tokenizer.pad_token is None:  # Mistral/Mixtral have none; padding is masked anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if cuda:
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.bfloat16, device_map="auto")
        else:
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
        self.model.eval()
        # The last tokens of the prefix may merge with the text that follows it: leave them uncached.
        self.prefix_ids = self.tokenizer(prefix).input_ids[:-2] if prefix else []
        self._prefix_cache = None

    def _cache(self, batch: int):
        import copy

        import torch

        if self._prefix_cache is None:
            ids = torch.tensor([self.prefix_ids], device=self.model.device)
            with torch.inference_mode():
                self._prefix_cache = self.model(input_ids=ids, use_cache=True).past_key_values
        cache = copy.deepcopy(self._prefix_cache)
        cache.batch_repeat_interleave(batch)
        return cache

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        import torch

        encoded = self.tokenizer(list(prompts)).input_ids
        n = len(self.prefix_ids)
        if not n or any(ids[:n] != self.prefix_ids for ids in encoded):
            n = 0
        order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), i))
        pad, out = self.tokenizer.pad_token_id, [""] * len(prompts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            own = [encoded[i][n:] for i in chunk]
            width = max(len(x) for x in own)
            ids = [self.prefix_ids[:n] + [pad] * (width - len(x)) + x for x in own]
            mask = [[1] * n + [0] * (width - len(x)) + [1] * len(x) for x in own]
            device = self.model.device
            with torch.inference_mode():
                generated = self.model.generate(
                    input_ids=torch.tensor(ids, device=device),
                    attention_mask=torch.tensor(mask, device=device),
                    past_key_values=self._cache(len(chunk)) if n else None,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    stop_strings=[STOP],
                    tokenizer=self.tokenizer,
                    pad_token_id=pad,
                )
            texts = self.tokenizer.batch_decode(generated[:, n + width :], skip_special_tokens=True)
            for i, text in zip(chunk, texts):
                out[i] = text.split(STOP, 1)[0]
        return out
