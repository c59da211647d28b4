"""Tiny models for tests and benchmarks: the real Mistral-7B tokenizer and a random Mistral of a few MB.

The tokenizer comes from the `mistral-common` package data (`tokenizer.model.v1`, byte-identical to
Mistral-7B-v0.1's), found without importing the package, and is converted once to `tokenizer.json` so later
loads need neither sentencepiece nor protobuf. Nothing here is used by a real training run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
from pathlib import Path
from unittest import mock

MISTRAL_TOKENIZER_CONFIG = {
    "tokenizer_class": "LlamaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "add_bos_token": True,
    "add_eos_token": False,
    "legacy": False,
}


def mistral_tokenizer_source() -> Path | None:
    """`tokenizer.model.v1` of the installed mistral-common package, or None."""
    spec = importlib.util.find_spec("mistral_common")  # found, not imported (its deps are not installed)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "tokenizer.model.v1"
    return path if path.is_file() else None


def load_spm_tokenizer(directory: Path):
    """`AutoTokenizer` over a SentencePiece `tokenizer.model`.

    The converter parses the model with sentencepiece's generated protobuf module, whose gencode can be newer
    than the protobuf runtime the project pins (< 7); transformers' own copy of the message definitions works
    with any protobuf >= 4, so the conversion uses that one.
    """
    from transformers import AutoTokenizer
    from transformers.utils import sentencepiece_model_pb2_new

    # import_module: `transformers.convert_slow_tokenizer` as an attribute is a function of that name.
    cst = importlib.import_module("transformers.convert_slow_tokenizer")
    with mock.patch.object(cst, "import_protobuf", lambda *a, **k: sentencepiece_model_pb2_new):
        return AutoTokenizer.from_pretrained(directory)


def convert_mistral_tokenizer(source: Path, work: Path, dest: Path) -> Path:
    """Copy `source` (a SentencePiece model) into `work`, convert it and save the fast tokenizer to `dest`."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, work / "tokenizer.model")
    (work / "tokenizer_config.json").write_text(json.dumps(MISTRAL_TOKENIZER_CONFIG))
    load_spm_tokenizer(work).save_pretrained(dest)
    return dest


def save_tiny_mistral(out: Path, tokenizer_dir: Path, seed: int = 0) -> Path:
    """A random 2-layer Mistral-architecture model (vocab 32,000) with the tokenizer files beside it."""
    import torch
    from transformers import AutoModelForCausalLM, MistralConfig

    cfg = MistralConfig(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=2048,
        sliding_window=None,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    for f in Path(tokenizer_dir).iterdir():
        shutil.copy(f, Path(out) / f.name)
    return Path(out)
