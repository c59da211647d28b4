"""Checks that a LoRA adapter directory fits the task and the base model, before any weight is loaded.

What `memllm train` leaves in its output directory (`trainer.recipe`): `adapter_config.json` (PEFT, with
`base_model_name_or_path`), `adapter_model.safetensors` and `train_config.json` (the resolved configuration,
with `task`); a `checkpoint-<step>/` directory holds the adapter files and has `train_config.json` one level up.

Base model: the name recorded in the adapter is compared with the given one, but a name alone cannot decide
(a hub id and a local copy of it are the same model; two paths may differ only in spelling), so the decisive
check is structural: every LoRA matrix must fit the module it adapts in the given base model, which is built
on the `meta` device from its config (no weights read). A base whose name differs but whose shapes fit is
accepted with a warning; one whose shapes do not fit is refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memllm.runtime.errors import RuntimeInputError

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
TRAIN_CONFIG = "train_config.json"
PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class AdapterInfo:
    path: Path
    role: str  # the PEFT adapter name it is loaded under: "write" or "read"
    task: str | None  # the task train_config.json records; None without one (an adapter trained elsewhere)
    base: str | None  # `base_model_name_or_path` of adapter_config.json
    train_config: dict[str, Any] | None


def inspect_adapter(path: str | Path, task: str) -> AdapterInfo:
    """The adapter at `path`, refused (RuntimeInputError) when missing or trained for another task."""
    p = Path(path)
    if not p.is_dir():
        raise RuntimeInputError(f"{task} adapter {path}: no such directory")
    if not (p / ADAPTER_CONFIG).is_file():
        raise RuntimeInputError(f"{task} adapter {path}: no {ADAPTER_CONFIG} (not a LoRA adapter directory)")
    try:
        adapter_cfg = json.loads((p / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RuntimeInputError(f"{task} adapter {path}: unreadable {ADAPTER_CONFIG} ({e})") from None
    train_cfg = None
    for candidate in (p / TRAIN_CONFIG, p.parent / TRAIN_CONFIG):  # the run directory, or a checkpoint in it
        if candidate.is_file():
            try:
                train_cfg = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise RuntimeInputError(f"{task} adapter {path}: unreadable {candidate.name} ({e})") from None
            break
    trained_for = train_cfg.get("task") if train_cfg else None
    if trained_for is not None and trained_for != task:
        raise RuntimeInputError(
            f"{task} adapter {path}: it was trained for the {trained_for} task (train_config.json); "
            f"pass it as the {trained_for} adapter"
        )
    return AdapterInfo(p, task, trained_for, adapter_cfg.get("base_model_name_or_path"), train_cfg)


def lora_shapes(path: Path) -> dict[str, tuple[int, int]]:
    """Module name (as in the base model) -> (in_features, out_features) that the adapter's LoRA expects."""
    from safetensors import safe_open

    weights = path / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise RuntimeInputError(f"adapter {path}: no {ADAPTER_WEIGHTS}")
    shapes: dict[str, list[int | None]] = {}
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            for part, side in ((".lora_A.weight", 0), (".lora_B.weight", 1)):
                if key.endswith(part):
                    name = key[: -len(part)].removeprefix(PEFT_PREFIX)
                    shape = f.get_slice(key).get_shape()  # A: (r, in), B: (out, r)
                    entry = shapes.setdefault(name, [None, None])
                    entry[side] = shape[1] if side == 0 else shape[0]
    return {k: (v[0], v[1]) for k, v in shapes.items() if v[0] is not None and v[1] is not None}


def adapter_bias_keys(path: Path) -> list[str]:
    """Tensors of the adapter that are biases of the base model (saved with `bias="all"/"lora_only"` when the
    adapted layers have biases)."""
    from safetensors import safe_open

    weights = path / ADAPTER_WEIGHTS
    if not weights.is_file():
        return []
    with safe_open(str(weights), framework="pt") as f:
        return [k for k in f.keys() if k.endswith(".bias") and ".lora_" not in k]


def _same_name(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def check_base(info: AdapterInfo, base: str, base_config: Any, vocab_size: int | None = None) -> None:
    """Refuse a base model whose modules do not fit the adapter's LoRA matrices.

    `base_config`: the base's transformers config; `vocab_size`: the number of token rows the model will
    have after the tokenizer's special tokens are added (the trainer resizes to it), default the config's.
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):  # shapes only: no memory, no weights read
        skeleton = AutoModelForCausalLM.from_config(base_config)
    if vocab_size and vocab_size > skeleton.get_input_embeddings().weight.shape[0]:
        skeleton.resize_token_embeddings(vocab_size, mean_resizing=False)
    modules = dict(skeleton.named_modules())
    what = f"adapter {info.path} (trained on {info.base or 'an unrecorded base'})"
    for name, (n_in, n_out) in sorted(lora_shapes(info.path).items()):
        module = modules.get(name)
        if module is None:
            raise RuntimeInputError(f"{what} does not fit --model {base}: it has no module {name}")
        have = _features(module)
        if have is not None and have != (n_in, n_out):
            raise RuntimeInputError(
                f"{what} does not fit --model {base}: {name} is {have[0]}->{have[1]}, the adapter expects "
                f"{n_in}->{n_out}"
            )
    if info.base and not _same_name(info.base, base):
        log.warning("adapter %s was trained on %s; using it with %s (the shapes fit)", info.path, info.base, base)


def _features(module: Any) -> tuple[int, int] | None:
    if hasattr(module, "in_features") and hasattr(module, "out_features"):
        return (module.in_features, module.out_features)
    if hasattr(module, "num_embeddings"):  # LoRA on an embedding: A is (r, num_embeddings), B (dim, r)
        return (module.num_embeddings, module.embedding_dim)
    return None
