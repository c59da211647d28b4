"""`MemLLM`: one base causal LM with the memory-write and memory-read LoRA adapters, a tokenizer and a memory.

One copy of the base weights is held; the two adapters are PEFT adapters named "write" and "read" on it,
switched with `using(name)` (PEFT `set_adapter`, and the adapter's own embedding rows for API tokens the
base vocabulary lacked, which this module swaps in itself: see `_attach`). The tokenizer is the base
model's with the API tokens registered exactly as `memllm train` registers them
(`trainer.tokenization.prepare_tokenizer`), so prompts tokenize as the training texts did. Precision: bf16
on a CUDA GPU that supports it, else float32.

`write` runs the memory-write loop (`runtime.write`); `generate` runs generation with memory reads
(`runtime.read.generate_with_reads`). What this module doesn't do: training, serving, Beam.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memllm.memory.base import Memory
from memllm.memory.errors import MemoryUsageError
from memllm.runtime.adapters import PEFT_PREFIX, AdapterInfo, adapter_bias_keys, check_base, inspect_adapter
from memllm.runtime.errors import RuntimeInputError

if TYPE_CHECKING:
    from memllm.runtime.write import WriteResult

log = logging.getLogger(__name__)

WRITE, READ = "write", "read"
# The reference library truncates write prompts to model_max_length / 2 with a 1024-token model length,
# the cutoff `memllm train` trains with; a longer window than training saw helps nothing.
DEFAULT_MAX_LENGTH = 1024


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> Any:
    """bf16 on a GPU that supports it (what the adapters were trained in), float32 elsewhere."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def open_memory(
    path: str | Path,
    create: bool = False,
    embedding_model: str | None = None,
    device: str = "cpu",
) -> Any:
    """The `EmbeddingMemory` stored at `path` (created when `create` and absent).

    Refuses (RuntimeInputError) a missing memory when `create` is false, as reading needs one."""
    from memllm.memory.embedding import CONTRIEVER, TransformerEmbedder
    from memllm.memory.embedding_memory import DB_FILE, EmbeddingMemory

    p = Path(path)
    if not create and not (p / DB_FILE).is_file():
        raise RuntimeInputError(f"no memory at {path} (no {DB_FILE}; fill one with `memllm write`)")
    try:
        embedder = TransformerEmbedder(embedding_model or CONTRIEVER, device=device)
        return EmbeddingMemory(p, embedder, create=create)
    except MemoryUsageError as e:
        raise RuntimeInputError(str(e)) from None


class MemLLM:
    """A MemLLM at inference: `model` (PEFT model with adapters "write"/"read", or the plain base model),
    `tokenizer` (API tokens registered), `token_info` (the trainer's `TokenizerInfo`: BOS, EOS, pad and
    special token ids), `memory`, `device`, and `max_length` (tokens of context the adapters were trained on)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        token_info: Any,
        memory: Memory | Any,
        device: str,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.token_info = token_info
        self.memory = memory
        self.device = device
        self.max_length = max_length
        self._token_rows: TokenRows | None = None  # set by from_pretrained when adapters trained new tokens

    @classmethod
    def from_pretrained(
        cls,
        base: str,
        write_adapter: str | None = None,
        read_adapter: str | None = None,
        memory: Memory | str | None = None,
        device: str | None = None,
        dtype: Any = None,
        *,
        embedding_model: str | None = None,
        create_memory: bool = False,
    ) -> MemLLM:
        """Load `base`, attach the adapters, open the memory.

        `memory`: a memory object, a directory of an `EmbeddingMemory` (opened with `embedding_model`,
        default Contriever; created when `create_memory`), or None for an empty in-process `ExactMemory`.
        Adapters are checked before any weight is loaded: present, trained for their task, fitting `base`."""
        from memllm.trainer.config import TrainerInputError
        from memllm.trainer.tokenization import load_tokenizer, prepare_tokenizer

        infos = [inspect_adapter(path, task) for path, task in ((write_adapter, WRITE), (read_adapter, READ)) if path]
        try:
            tokenizer = load_tokenizer(base)
            token_info = prepare_tokenizer(tokenizer)
        except TrainerInputError as e:
            raise RuntimeInputError(str(e)) from None
        config = _base_config(base)
        for info in infos:
            check_base(info, base, config, token_info.vocab_after)

        device = device or default_device()
        dtype = dtype if dtype is not None else default_dtype(device)
        model = _load_model(base, dtype, token_info)
        rows = None
        if infos:
            model, rows = _attach(model, infos)
        model.to(device).eval()

        if memory is None:
            from memllm.memory.exact import ExactMemory

            memory = ExactMemory()
        elif isinstance(memory, str | Path):
            memory = open_memory(memory, create=create_memory, embedding_model=embedding_model, device="cpu")
        mm = cls(model, tokenizer, token_info, memory, device, _max_length(infos, config))
        if rows is not None:
            mm._token_rows = rows
            rows.use(infos[0].role)
        return mm

    def has_adapter(self, name: str) -> bool:
        return name in getattr(self.model, "peft_config", {})

    @contextlib.contextmanager
    def using(self, adapter: str) -> Iterator[MemLLM]:
        """Activate the adapter `adapter` ("write" or "read") for the duration of the block."""
        if not self.has_adapter(adapter):
            raise RuntimeInputError(f"no {adapter} adapter loaded (from_pretrained({adapter}_adapter=...))")
        previous = self.model.active_adapter
        self._activate(adapter)
        try:
            yield self
        finally:
            self._activate(previous)

    def _activate(self, adapter: str) -> None:
        self.model.set_adapter(adapter)
        if self._token_rows is not None:
            self._token_rows.use(adapter)

    def write(self, texts: Iterable[str], batch_size: int = 16, show: bool = False, **options: Any) -> WriteResult:
        """Extract triples from `texts` with the write adapter and store them (see `runtime.write.write`)."""
        from memllm.runtime.write import write

        return write(self, texts, batch_size=batch_size, show=show, **options)

    def generate(self, prompts: Any, **options: Any) -> Any:
        """Generate with memory reads (see `runtime.read.generate_with_reads`)."""
        from memllm.runtime.read import generate_with_reads

        return generate_with_reads(self, prompts, **options)


def _base_config(base: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeInputError(f"--model {base}: cannot load its config ({first})") from None


def _load_model(base: str, dtype: Any, token_info: Any) -> Any:
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeInputError(f"--model {base}: cannot load a causal LM ({first})") from None
    # As the trainer does: a vocabulary that lacked the API tokens grows (the adapter carries the new rows).
    if model.get_input_embeddings().weight.shape[0] < token_info.vocab_after:
        model.resize_token_embeddings(token_info.vocab_after)
    model.config.pad_token_id = token_info.pad_id
    return model


def _attach(model: Any, infos: list[AdapterInfo]) -> tuple[Any, TokenRows]:
    """Both adapters on one base model, and the rows of new tokens each adapter trained.

    PEFT allows one adapter with `bias != "none"` per model, and the trainer saves `bias="lora_only"`; on a
    model whose adapted layers have no bias (Mistral, Llama, SmolLM2) that trains and saves no bias, so the
    adapter is loaded as `bias="none"`, which computes the same.

    New tokens (`trainable_token_indices`, saved when the base vocabulary lacked the API tokens) are kept out of
    PEFT: it cannot add a second adapter with them to a base whose output layer is tied to the embeddings and
    LoRA-wrapped (SmolLM2). Each adapter's rows are loaded here and written into the embedding matrix when the
    adapter is activated (`TokenRows.use`), which is what PEFT computes with them (it replaces those rows, and
    a tied output layer shares the matrix)."""
    from peft import get_peft_model, set_peft_model_state_dict
    from peft.utils import load_peft_weights

    peft_model, rows = None, TokenRows(model)
    for info in infos:
        config = _config(info)
        config.inference_mode = True
        indices = config.trainable_token_indices
        config.trainable_token_indices = None
        weights = load_peft_weights(str(info.path))
        rows.add(info, indices, {k: weights.pop(k) for k in [k for k in weights if k.endswith(TokenRows.SUFFIX)]})
        if peft_model is None:
            peft_model = get_peft_model(model, config, adapter_name=info.role)
        else:
            peft_model.add_adapter(info.role, config)
        loaded = set_peft_model_state_dict(peft_model, weights, adapter_name=info.role)
        if getattr(loaded, "unexpected_keys", None):
            raise RuntimeInputError(f"{info.role} adapter {info.path}: weights the model has no place for")
    peft_model.set_adapter(infos[0].role)
    return peft_model, rows


class TokenRows:
    """The embedding rows of new tokens per adapter, and the base model's own rows at those indices."""

    SUFFIX = ".token_adapter.trainable_tokens_delta"

    def __init__(self, model: Any) -> None:
        self.model = model  # the base transformers model (PEFT wraps it in place)
        self.rows: dict[str, dict[str, tuple[list[int], Any]]] = {}  # adapter -> module -> (indices, rows)
        self.base: dict[str, Any] = {}  # module -> {index: base row}

    def add(self, info: AdapterInfo, indices: Any, deltas: dict[str, Any]) -> None:
        import torch

        if not deltas:
            return
        modules = dict(self.model.named_modules())
        for key, delta in deltas.items():
            name = key.removeprefix(PEFT_PREFIX).removesuffix(self.SUFFIX)
            short = name.rsplit(".", 1)[-1]
            ids = indices.get(short, indices.get(name)) if isinstance(indices, dict) else indices
            if name not in modules or not ids or len(ids) != delta.shape[0]:
                raise RuntimeInputError(f"{info.role} adapter {info.path}: new-token rows the model has no place for")
            weight = modules[name].weight
            saved = self.base.setdefault(name, {})
            for i in ids:
                saved.setdefault(i, weight.detach()[i].clone())
            self.rows.setdefault(info.role, {})[name] = (list(ids), delta.to(torch.float32))

    def use(self, adapter: str) -> None:
        """Write `adapter`'s rows into the embeddings (the base rows where it trained none)."""
        import torch

        if not self.base:
            return
        modules = dict(self.model.named_modules())
        with torch.no_grad():
            for name, saved in self.base.items():
                weight = modules[name].weight
                ids, rows = self.rows.get(adapter, {}).get(name, ([], None))
                mine = dict(zip(ids, rows)) if rows is not None else {}
                for i, base_row in saved.items():
                    weight[i] = mine.get(i, base_row).to(weight.device, weight.dtype)


def _config(info: AdapterInfo) -> Any:
    from peft import PeftConfig

    config = PeftConfig.from_pretrained(str(info.path))
    if getattr(config, "bias", "none") != "none":
        if adapter_bias_keys(info.path):
            raise RuntimeInputError(
                f"{info.role} adapter {info.path} trains the base model's biases (bias={config.bias!r}): it cannot "
                "share a base model with another adapter; load it alone"
            )
        config.bias = "none"
    return config


def _max_length(infos: list[AdapterInfo], config: Any) -> int:
    """The training cutoff of the adapters (train_config.json), else DEFAULT_MAX_LENGTH, within the model's
    position limit."""
    cutoffs = [i.train_config["cutoff"] for i in infos if i.train_config and i.train_config.get("cutoff")]
    length = min(cutoffs) if cutoffs else DEFAULT_MAX_LENGTH
    limit = getattr(config, "max_position_embeddings", None)
    return min(length, limit) if limit else length
