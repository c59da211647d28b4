"""Query thresholds, named after the paper's symbols, and the reference's values per context.

The paper states thresholds as cosine similarities (τe, τt, τr); the reference code uses cosine distances
(`dist_thr`, `dist_rel_thr`, `q_thr`), with distance = 1 − τ (docs/method.md §2.2, the table of
presets). `Thresholds` takes similarities and exposes the distances the search compares against:

- an entity is a candidate if its distance to the query entity is < 1 − τe (among its k_e = 300 nearest),
- a relation is a candidate if its distance to the query relation is < 1 − τt (among its k_t = 25 nearest),
- a pair is used if the mean of the two distances is < 1 − τr,
- with `prioritize_exact`, if any row scores < 0.001 only those rows are returned.

τ = 1 is a special case: under the reference's strict `<` it would admit nothing, so it means "the identical
string only" (no vector search on that side); cosine 1 is only guaranteed for the identical string anyway.
The thresholds are calibrated on Contriever; other embedders (MiniLM in tests) score on another scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from memllm.memory.errors import MemoryUsageError

EXACT_SCORE = 0.001  # the reference's exact-match cut: entity and relation strings (nearly) identical
K_E = 300  # entity neighbours examined per query (hnswlib kNN k in the reference)
K_T = 25  # relation neighbours examined per query


@dataclass(frozen=True, slots=True)
class Thresholds:
    tau_e: float  # min cosine between a stored entity and the query's known entity
    tau_t: float  # min cosine between a stored relation and the query's relation
    tau_r: float  # min mean cosine of the (entity, relation) pair
    prioritize_exact: bool = True
    k_e: int = K_E
    k_t: int = K_T

    def __post_init__(self) -> None:
        for name in ("tau_e", "tau_t", "tau_r"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise MemoryUsageError(f"{name} is a cosine similarity in [-1, 1], got {getattr(self, name)}")
        if self.k_e < 1 or self.k_t < 1:
            raise MemoryUsageError(f"k_e and k_t must be positive, got {self.k_e}, {self.k_t}")

    @classmethod
    def from_distances(
        cls, dist_thr: float, dist_rel_thr: float, q_thr: float, prioritize_exact: bool = True
    ) -> Thresholds:
        """From the reference code's parameters (distances)."""
        return cls(1.0 - dist_thr, 1.0 - dist_rel_thr, 1.0 - q_thr, prioritize_exact)

    @property
    def dist_e(self) -> float:
        return 1.0 - self.tau_e

    @property
    def dist_t(self) -> float:
        return 1.0 - self.tau_t

    @property
    def dist_r(self) -> float:
        return 1.0 - self.tau_r


PRESETS: dict[str, Thresholds] = {
    # Algorithm 1, `data/generate_mr_redocred_filtered.py`: dist 0.10 / 0.10 / 0.10, no exact priority
    "data_generation": Thresholds.from_distances(0.10, 0.10, 0.10, prioritize_exact=False),
    # perplexity evaluation, `evaluate_v4_mistral.py`: 0.15 / 0.15 / REL_SIM 0.10, exact priority on
    "perplexity_eval": Thresholds.from_distances(0.15, 0.15, 0.10, prioritize_exact=True),
    # zsRE knowledge editing, `eval_zsre.py`: 0.15 / 0.80 / 0.50, exact priority on
    "knowledge_editing": Thresholds.from_distances(0.15, 0.80, 0.50, prioritize_exact=True),
    # identical strings only: the embedding memory then answers exactly like `ExactMemory`
    "exact": Thresholds(1.0, 1.0, 1.0, prioritize_exact=True),
}
DEFAULT_PRESET = "data_generation"


def get_preset(name: str) -> Thresholds:
    try:
        return PRESETS[name]
    except KeyError:
        raise MemoryUsageError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
