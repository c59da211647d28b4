"""`--evidence llm`: the LLM evidence judge as a Beam step (`annotators.evidence_llm` does the work).

`JudgeEvidenceFn` holds one judge per worker process: it is loaded on the first batch that has something
to judge (a run without evidence-less relations never loads a model) through a `Shared` handle, so the
DoFn instances of one process share one copy (docs/design.md "Models in workers"). Each `DocumentBatch` goes
to the judge at once (the judge batches by length), and comes back with evidence assigned. A side output
carries one `evidence/` row per judged candidate: the prompt, the generation, the verdict and whether
that sentence became evidence by the fallback.

Counts (`evidence.llm.*`): `candidates` = `yes` + `no`; `assigned` relations, `fallback` of them had no
Yes. A model that cannot be loaded stops the run: the CLI checks it (`check_judge_model`) before it starts.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.utils.shared import Shared
from memllm.annotators.evidence_llm import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_SEED,
    Judge,
    Judgement,
    TransformersJudge,
    judge_documents,
)
from memllm.annotators.relation_labels import property_labels
from memllm.pipeline.batches import DocumentBatch
from memllm.pipeline.counting import COUNTS, CountingDoFn
from memllm.pipeline.resume import ChunkCache, run_or_replay
from memllm.schemas.document import Document

EVIDENCE = "evidence"


def evidence_row(doc: Document, j: Judgement) -> dict:
    c = j.candidate
    row = doc.ref.common(f"{doc.doc_id}/e{c.label_index:04d}s{c.sent_id:04d}")
    row.update(
        label_index=c.label_index,
        sent_id=c.sent_id,
        head=c.head,
        relation=c.relation,
        tail=c.tail,
        head_entity=c.head_entity,
        tail_entity=c.tail_entity,
        relation_id=c.relation_id,
        prompt=j.prompt,
        generation=j.generation,
        verdict=j.verdict,
        fallback=j.fallback,
    )
    return row


class _Held:
    """A weak-referenceable holder (`Shared` keeps a weak reference to what it hands out)."""

    def __init__(self, judge: Judge):
        self.judge = judge


class JudgeEvidenceFn(CountingDoFn):
    """DocumentBatch → the batch with LLM evidence; side output `evidence`: one list of rows per batch."""

    def __init__(
        self,
        model: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: int = DEFAULT_SEED,
        judge: Judge | None = None,  # a ready judge (tests); else a TransformersJudge of `model`
        resume_dir: str | None = None,  # keep each judged batch there, and reuse it (`pipeline.resume`)
    ):
        self.model, self.batch_size, self.max_new_tokens, self.seed = model, batch_size, max_new_tokens, seed
        self._given = judge
        self._shared = Shared()
        self._held: _Held | None = None
        self.resume_dir = resume_dir

    def setup(self) -> None:
        self._held = None  # loaded on the first batch that has candidates: a resumed run may need none
        self.cache = ChunkCache(self.resume_dir) if self.resume_dir else None

    def _judge(self, prompts):
        if self._held is None:
            if self._given is not None:
                self._held = _Held(self._given)
            else:
                load = lambda: _Held(TransformersJudge(self.model, self.max_new_tokens, self.batch_size))  # noqa: E731
                tag = f"{self.model}|{self.max_new_tokens}|{self.batch_size}"
                self._held = self._shared.acquire(load, tag=tag)
        return self._held.judge(prompts)

    def process(self, batch: DocumentBatch):
        key = f"{batch.key}+{len(batch.docs)}"
        yield from run_or_replay(self, self.cache, key, lambda: self._judge_batch(batch))

    def _judge_batch(self, batch: DocumentBatch):
        docs, rows = [], []
        for doc, judgements in judge_documents(batch.docs, self._judge, property_labels(), self.seed):
            docs.append(doc)
            yes = sum(j.verdict for j in judgements)
            self.count("evidence.llm.candidates", len(judgements))
            self.count("evidence.llm.yes", yes)
            self.count("evidence.llm.no", len(judgements) - yes)
            self.count("evidence.llm.fallback", sum(j.fallback for j in judgements))
            self.count("evidence.llm.assigned", len({j.candidate.label_index for j in judgements}))
            rows.extend(evidence_row(doc, j) for j in judgements)
        if rows:
            yield beam.pvalue.TaggedOutput(EVIDENCE, rows)
        # As with the heuristic, the reference's random stream belongs to the reference's evidence.
        yield DocumentBatch(batch.key, docs)


class JudgeEvidence(beam.PTransform):
    """DocumentBatches → (batches with LLM evidence, lists of `evidence/` rows, counts)."""

    def __init__(self, fn: JudgeEvidenceFn):
        super().__init__()
        self.fn = fn

    def expand(self, batches):
        out = batches | "Judge" >> beam.ParDo(self.fn).with_outputs(COUNTS, EVIDENCE, main="batches")
        return out.batches, out[EVIDENCE], out[COUNTS]
