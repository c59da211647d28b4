"""End to end on CPU: `memllm generate` makes the shipped sample's training data, `memllm train` (its `train()`)
fits SmolLM2-135M (full depth, real weights) to the write examples and to read examples, `memllm write` runs
the write adapter over the sample's raw text (split into sentences by spaCy) into an embedding memory, and the
read adapter reads from that memory while it continues sample prompts.

Each adapter is trained once per module, packed (no compute on padding), at a high rate (4e-3, LoRA alpha 32)
so that a few epochs reproduce the examples: the adapters memorise the sample, they do not generalise. The
write adapter sees all 17 trained write examples (the gold); the read adapter only the 3 read examples of the
two documents the read prompts come from. The step counts are the smallest that passed here: 24 write steps
(4 epochs) stored 60-75% of the gold triples, 12 read steps made no read. Two consecutive runs with the fixed
seed passed identically (recall 26/27) in about 200 s on 2 cores. Layer-cut models (the first N of the 30
decoder layers, N = 2-12) were tried and rejected: their next-token loss on plain text starts above 15 (the
full model's is 4.7), and 20 LoRA steps of the 4-layer model left it near 13.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from memllm.pipeline.cli import main, sample_path
from memllm.trainer.config import DataSource, TrainConfig
from memllm.trainer.recipe import train

pytestmark = pytest.mark.slow

# Write: 45 steps of 3 examples (8 epochs of the 17); read: 24 steps of 1 example (8 epochs of the 3).
WRITE_STEPS, READ_STEPS, BATCH = 45, 24, 3
LEARNING_RATE, LORA_ALPHA = 4e-3, 32
MAX_TRIPLES = 32  # `memllm train`'s default: a write with this many triples or more is not trained


# A read of each kind (document title, prompt, object): a TAIL query `(Kessland, capital, ?)` and a HEAD query
# `(?, record label, Brightwater Records)`, from the sample's read examples; each prompt ends at the read point.
READS = [
    ("Kessland", "Kessland is a country in Europe . Its capital is", "Port Amsel"),
    (
        "Brightwater Records",
        "Brightwater Records is a label based in Port Amsel , Kessland . Its best-known artist is",
        "Tova Lind",
    ),
]
READ_SHARD = "train-00000-of-00001.parquet"


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "out"
    assert main(["generate", "-q", "--runner=FnApiRunner", "--output", str(out)]) == 0
    return out


def _rows(data: Path, table: str) -> list[dict]:
    return [r for f in sorted((data / table).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def train_sample_adapter(data: Path, model: Path, task: str, steps: int, out: Path, batch: int = BATCH) -> Path:
    """An adapter for `task` fitted to the examples in `data` by `memllm train`'s recipe."""
    train(
        TrainConfig(
            data=[DataSource(data)],
            task=task,
            model=str(model),
            output=out / f"{task}-adapter",
            batch_size=batch,
            micro_batch_size=batch,
            packing=True,
            max_steps=steps,
            learning_rate=LEARNING_RATE,
            lora_alpha=LORA_ALPHA,
            warmup_ratio=0.0,
            lora_dropout=0.0,
            max_triples=MAX_TRIPLES,
            save_every=1000,
            eval_split="none",
            progress=False,
            report_to=[],
            cache_dir=str(out / "cache"),
        )
    )
    return out / f"{task}-adapter"


@pytest.fixture(scope="module")
def e2e_write_adapter(sample_data, smollm2, tmp_path_factory) -> Path:
    return train_sample_adapter(sample_data, smollm2, "write", WRITE_STEPS, tmp_path_factory.mktemp("e2e-write"))


def read_subset(data: Path, titles: set[str], out: Path) -> Path:
    """`data`'s read examples of the documents titled `titles`, as a data directory of their own."""
    import pyarrow.compute as pc

    table = pq.read_table(sorted((data / "memory_read").glob("*.parquet"))[0])
    (out / "memory_read").mkdir(parents=True)
    pq.write_table(table.filter(pc.is_in(table["title"], pa.array(sorted(titles)))), out / "memory_read" / READ_SHARD)
    return out


@pytest.fixture(scope="module")
def e2e_read_adapter(sample_data, smollm2, tmp_path_factory) -> Path:
    """Trained on the read examples of the documents the test prompts come from (3 of the 21)."""
    work = tmp_path_factory.mktemp("e2e-read")
    data = read_subset(sample_data, {title for title, _, _ in READS}, work / "data")
    assert len(_rows(data, "memory_read")) == 3
    return train_sample_adapter(data, smollm2, "read", READ_STEPS, work, batch=1)


@pytest.fixture(scope="module")
def written_memory(nlp, smollm2, e2e_write_adapter, minilm_dir, tmp_path_factory) -> tuple[Path, str]:
    """`memllm write` over the sample's raw text (one paragraph per document, sentence ends not marked):
    the memory directory and the command's summary line."""
    work = tmp_path_factory.mktemp("e2e-memory")
    docs = json.loads(Path(sample_path()).read_text(encoding="utf-8"))
    text = work / "sample.txt"
    text.write_text("\n\n".join(" ".join(w for s in d["sents"] for w in s) for d in docs) + "\n", encoding="utf-8")
    memory = work / "memory"
    argv = ["write", "--model", str(smollm2), "--adapter", str(e2e_write_adapter), "--memory-path", str(memory)]
    argv += ["--input", str(text), "--embedding-model", str(minilm_dir), "--max-new-tokens", "64", "--device", "cpu"]
    argv += ["--batch-size", "32"]  # the sample's 18 sentences in one batch
    return memory, _run_cli(argv)


def _run_cli(argv: list[str]) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def stored_triples(memory: Path) -> set[tuple[str, str, str]]:
    from memllm.memory.embedding_memory import DB_FILE
    from memllm.memory.store import TripleStore

    with TripleStore(memory / DB_FILE) as store:
        return {(h, r, t) for _, h, r, t in store.triples()}


def test_memllm_write_stores_the_sample_triples(sample_data, written_memory):
    memory, summary = written_memory
    rows = _rows(sample_data, "memory_write")
    # the gold of the examples training kept (a write of >= MAX_TRIPLES triples is not trained)
    gold = {
        (t["head"], t["relation"], t["tail"]) for r in rows if len(r["triples"]) < MAX_TRIPLES for t in r["triples"]
    }
    got = stored_triples(memory)
    recall = len(gold & got) / len(gold)
    print(summary.strip(), f"recall {recall:.2f}")
    docs = json.loads(Path(sample_path()).read_text(encoding="utf-8"))
    assert f"{len(docs)} document(s), {sum(len(d['sents']) for d in docs)} sentence(s)" in summary
    assert recall >= 0.9, sorted(gold - got)


def test_the_read_model_reads_the_written_memory_and_continues_with_the_object(
    smollm2, e2e_read_adapter, written_memory, minilm_dir
):
    from memllm.runtime.model import MemLLM

    memory, _ = written_memory
    mm = MemLLM.from_pretrained(
        str(smollm2), read_adapter=str(e2e_read_adapter), memory=memory, device="cpu", embedding_model=str(minilm_dir)
    )
    try:
        traces = mm.generate([p for _, p, _ in READS], max_new_tokens=40, stop_after_first_success=True)
    finally:
        mm.memory.close()
    for (_, _, target), trace in zip(READS, traces):
        print(json.dumps(trace.to_dict()))
        # the read comes right at the end of the prompt (the text before it is the space put back at a read),
        # answers with the object, and the text goes on with it
        read = trace.reads[0]
        assert trace.text[: read.position].strip() == "" and target in read.results, trace
        assert trace.text[read.position :].startswith(target), trace
