"""`MemLLM.from_pretrained` and `memllm write` on the tiny random Mistral with adapters from `memllm train`:
the adapter checks (missing, other task, base that does not fit), one base with two switchable adapters,
writes that do not depend on the batching, and the command line."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from memllm.memory.exact import ExactMemory
from memllm.pipeline.cli import main
from memllm.runtime.errors import RuntimeInputError
from memllm.runtime.model import MemLLM

DOCS = [
    ["Lumen Vale is a 2019 novel by Carla Fenwick .", "Fenwick was born in Dunmore , Ireland ."],
    ["The novel was published by Harbor Lane Press ."],
    ["Marta Quell is a chemist from Santiago .", "She studied at the University of Valpora .", "She left ."],
]


@pytest.fixture(scope="module")
def mm(tiny_mistral, write_adapter, read_adapter) -> MemLLM:
    return MemLLM.from_pretrained(str(tiny_mistral), str(write_adapter), str(read_adapter), device="cpu")


def last_logits(mm: MemLLM, text: str = "Fenwick was born in") -> torch.Tensor:
    ids = mm.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return mm.model(input_ids=ids).logits[0, -1]


def test_two_adapters_on_one_base_switch_with_using(mm, tiny_mistral, write_adapter, read_adapter):
    assert set(mm.model.peft_config) == {"write", "read"}
    assert mm.device == "cpu" and next(mm.model.parameters()).dtype == torch.float32
    assert mm.token_info.special_ids == {"({": 2882, "})": 1542, "-->": 26345}
    assert mm.max_length == 1024  # the adapters' training cutoff
    with mm.using("read"):
        assert mm.model.active_adapter == "read"
        read = last_logits(mm)
        with mm.using("write"):
            write = last_logits(mm)
        assert mm.model.active_adapter == "read"  # restored on exit
    # each adapter computes what it computes when loaded alone (the second one's weights were loaded too)
    alone_read = MemLLM.from_pretrained(str(tiny_mistral), read_adapter=str(read_adapter), device="cpu")
    alone_write = MemLLM.from_pretrained(str(tiny_mistral), write_adapter=str(write_adapter), device="cpu")
    with alone_read.using("read"):
        torch.testing.assert_close(read, last_logits(alone_read))
    with alone_write.using("write"):
        torch.testing.assert_close(write, last_logits(alone_write))
    assert not torch.allclose(read, write)
    with pytest.raises(RuntimeInputError, match="no write adapter"):
        with alone_read.using("write"):
            pass


def test_write_is_the_same_batched_or_one_at_a_time(mm):
    mm.memory = ExactMemory()
    batched = mm.write(DOCS, batch_size=4, max_new_tokens=24)
    one = mm.write(DOCS, batch_size=1, max_new_tokens=24)
    assert [w.output for w in batched.writes] == [w.output for w in one.writes]
    assert [(w.text_index, w.sentence_index) for w in batched.writes] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (2, 0),
        (2, 1),
        (2, 2),
    ]
    assert [w.sentence for w in batched.writes] == [s for d in DOCS for s in d]
    assert batched.sentences == 6 and batched.extracted == sum(len(w.triples) for w in batched.writes)
    assert batched.stored == len(mm.memory) and one.stored == 0  # the second pass stores nothing new


def test_missing_adapters_and_adapters_of_the_other_task(tiny_mistral, write_adapter, read_adapter, tmp_path):
    base = str(tiny_mistral)
    with pytest.raises(RuntimeInputError, match="write adapter .*: no such directory"):
        MemLLM.from_pretrained(base, write_adapter=str(tmp_path / "nope"))
    with pytest.raises(RuntimeInputError, match="no adapter_config.json"):
        MemLLM.from_pretrained(base, write_adapter=str(tmp_path))
    with pytest.raises(RuntimeInputError, match="trained for the read task .*pass it as the read adapter"):
        MemLLM.from_pretrained(base, write_adapter=str(read_adapter))
    with pytest.raises(RuntimeInputError, match="trained for the write task"):
        MemLLM.from_pretrained(base, write_adapter=str(write_adapter), read_adapter=str(write_adapter))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": 32, "head_dim": 8}, r"is 32->\d+, the adapter expects 64->"),
        ({"vocab_size": 32100}, r"lm_head is 64->32100, the adapter expects 64->32000"),
        ({"num_hidden_layers": 1}, r"has no module model.layers.1"),
    ],
)
def test_a_base_that_does_not_fit_is_refused(tiny_mistral, write_adapter, tmp_path, change, message):
    from transformers import AutoConfig

    other = tmp_path / "other"
    shutil.copytree(tiny_mistral, other, ignore=shutil.ignore_patterns("*.safetensors"))
    config = AutoConfig.from_pretrained(tiny_mistral)
    for key, value in change.items():
        setattr(config, key, value)
    config.save_pretrained(other)
    with pytest.raises(RuntimeInputError, match=f"does not fit --model {other}: .*{message}"):
        MemLLM.from_pretrained(str(other), write_adapter=str(write_adapter))


def test_a_copy_of_the_base_under_another_path_is_accepted(tiny_mistral, write_adapter, tmp_path, caplog):
    copy = shutil.copytree(tiny_mistral, tmp_path / "copy")
    with caplog.at_level(logging.WARNING, logger="memllm.runtime.adapters"):
        mm = MemLLM.from_pretrained(str(copy), write_adapter=str(write_adapter), device="cpu")
    assert "the shapes fit" in caplog.text and mm.has_adapter("write")


def test_memllm_write_command(tiny_mistral, write_adapter, read_adapter, minilm_dir, tmp_path, capsys):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"sents": [s.split() for s in d]}) + "\n" for d in DOCS))
    memory = tmp_path / "memory"
    common = ["--model", str(tiny_mistral), "--memory-path", str(memory), "--embedding-model", str(minilm_dir)]
    argv = ["write", *common, "--adapter", str(write_adapter), "--input", str(docs), "--show", "--max-new-tokens", "16"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[2:2] She left ." in out
    assert "memllm write: 3 document(s), 6 sentence(s)" in out and (memory / "memory.sqlite").is_file()

    assert main(["write", *common, "--adapter", str(read_adapter), "--input", str(docs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained for the read task" in err[0]
    assert main(["write", *common, "--adapter", str(write_adapter), "--input", str(tmp_path / "none.txt")]) == 2
    assert "none.txt: no such file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_tied(smollm2, tmp_path_factory):
    """A tiny random Llama with SmolLM2's tokenizer, which lacks the API tokens, and embeddings tied to the
    output layer (as SmolLM2's are), with a write and a read adapter from `memllm train`: each adapter trains
    its own rows for the new tokens (`trainable_token_indices`)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tests.runtime.conftest import train_adapter

    out = tmp_path_factory.mktemp("tiny-tied")
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out / "base")
    tokenizer.save_pretrained(out / "base")
    base = out / "base"
    return base, train_adapter(out / "w", base, "write"), train_adapter(out / "r", base, "read")


def test_two_adapters_with_new_token_rows_on_a_tied_base(tiny_tied):
    """Each adapter computes, on text with the new tokens, what PEFT computes with it loaded alone."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base, write, read = tiny_tied
    assert json.loads((write / "adapter_config.json").read_text())["trainable_token_indices"]
    mm = MemLLM.from_pretrained(str(base), str(write), str(read), device="cpu")
    text = "Carla Fenwick was born in({MEM_READ(Carla Fenwick>>place of birth>>)-->Dunmore})"
    ids = mm.tokenizer(text, return_tensors="pt")["input_ids"]
    assert set(mm.token_info.new_token_ids) <= set(ids[0].tolist())
    got = {}
    for name, path in (("read", read), ("write", write), ("read", read)):  # switching back and forth
        with mm.using(name), torch.no_grad():
            got[name] = mm.model(input_ids=ids).logits[0]
        alone = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        alone.resize_token_embeddings(len(mm.tokenizer))
        with torch.no_grad():
            expected = PeftModel.from_pretrained(alone, str(path)).eval()(input_ids=ids).logits[0]
        torch.testing.assert_close(got[name], expected)
    assert not torch.allclose(got["read"], got["write"])
