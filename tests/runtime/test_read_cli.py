"""`MemLLM.generate` and `memllm complete` on the tiny random Mistral with a read adapter from `memllm train`:
the read loop behind `MemLLM`, the command's output and its one-line errors."""

from __future__ import annotations

import pytest
from memllm.memory.exact import ExactMemory
from memllm.pipeline.cli import main
from memllm.runtime.model import MemLLM
from memllm.runtime.read import ReadLoop, ReadOptions, ReadTrace

FACTS = [("Lumen Vale", "author", "Carla Fenwick"), ("Carla Fenwick", "place of birth", "Dunmore")]
PROMPTS = ["Lumen Vale is a novel by", "Carla Fenwick was born in({"]


def test_generate_through_memllm(tiny_mistral, write_adapter, read_adapter):
    mm = MemLLM.from_pretrained(
        str(tiny_mistral), str(write_adapter), str(read_adapter), memory=ExactMemory(FACTS), device="cpu"
    )
    traces = mm.generate(PROMPTS, max_new_tokens=6)
    assert [t.prompt for t in traces] == PROMPTS and all(isinstance(t, ReadTrace) for t in traces)
    assert all(t.new_tokens <= 6 for t in traces)
    assert mm.model.active_adapter == "write"  # the read adapter was active only while generating
    by_adapter = {}
    for adapter in ("read", "write"):
        with mm.using(adapter):
            by_adapter[adapter] = ReadLoop(mm.model, mm.tokenizer, mm.memory, ReadOptions(max_new_tokens=6)).run(
                PROMPTS
            )
    assert traces == by_adapter["read"] and traces != by_adapter["write"]  # the adapters' outputs differ here
    assert mm.generate(PROMPTS[0], max_new_tokens=6) == traces[:1]  # one prompt string, same trace


@pytest.fixture
def memory_dir(tmp_path, minilm_dir):
    from memllm.memory.embedding import TransformerEmbedder
    from memllm.memory.embedding_memory import EmbeddingMemory

    def make(triples):
        path = tmp_path / f"memory-{len(triples)}"
        with EmbeddingMemory(path, TransformerEmbedder(str(minilm_dir))) as memory:
            memory.add_triples(triples)
        return path

    return make


def test_memllm_complete(tiny_mistral, read_adapter, minilm_dir, memory_dir, tmp_path, capsys):
    memory = memory_dir(FACTS)
    common = ["complete", "--model", str(tiny_mistral), "--memory-path", str(memory)]
    common += ["--embedding-model", str(minilm_dir), "--adapter", str(read_adapter), "--max-new-tokens", "5"]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n\n")
    assert main([*common, "--input", str(prompts), "--trace"]) == 0
    out = capsys.readouterr().out.splitlines()
    # the forced read of the second prompt cannot finish its call in 5 tokens of a random model
    assert any(line.startswith("  skipped read at 0 (") for line in out)
    assert main([*common, PROMPTS[0]]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line == out[0]  # the first prompt's continuation, as in the batch


def test_memllm_complete_errors(tiny_mistral, read_adapter, write_adapter, minilm_dir, memory_dir, tmp_path, capsys):
    base = ["complete", "--model", str(tiny_mistral), "--embedding-model", str(minilm_dir), "some text"]
    empty, full = str(memory_dir([])), str(memory_dir(FACTS))
    cases = [
        ([*base, "--adapter", str(read_adapter), "--memory-path", empty], "the memory is empty"),
        ([*base, "--adapter", str(read_adapter), "--memory-path", str(tmp_path / "none")], "no memory there"),
        ([*base, "--adapter", str(tmp_path / "none"), "--memory-path", full], "no such directory"),
        ([*base, "--adapter", str(write_adapter), "--memory-path", full], "trained for the write"),
        ([*base, "--adapter", str(read_adapter), "--memory-path", full, "--input", "x"], "one of"),
    ]
    capsys.readouterr()
    for argv, message in cases:
        assert main(argv) == 2, message
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and err[0].startswith("memllm complete: error:")
