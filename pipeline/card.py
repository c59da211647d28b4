"""The dataset card `OUT/README.md`: what the data is, how it was made, counts, schema, how to load it.

Its YAML header declares one `datasets` config per table, so `load_dataset(OUT, "memory_write")` works.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata

from memllm.schemas.records import TABLE_SCHEMAS

VERSIONS_OF = ("memllm", "apache-beam", "pyarrow")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONS_OF:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def render_card(
    tables: dict[str, list[str]], stats: dict, command: str, options: dict, about: list[str] | None = None
) -> str:
    """`tables`: table name → splits present. `options`: the resolved generate options. `about`: the lines
    that say what the data is (default: `memllm generate`'s tables); the first table is the loading example."""
    lines = ["---", "configs:"]
    for table, splits in tables.items():
        lines.append(f"- config_name: {table}")
        lines.append("  data_files:")
        for split in splits:
            lines.append(f"  - split: {split}")
            lines.append(f"    path: {table}/{split}-*.parquet")
    lines += ["---", "", "# memllm training data", ""]
    lines += about or [
        "Training data for MemLLM-style models (an LLM finetuned to use an explicit read-write triple memory,",
        "arXiv 2404.11672), made by `memllm generate`:",
        "",
        "- `memory_write`: one example per sentence; the model learns to emit `({MEM_WRITE-->h>>r>>t;...})`.",
        "- `memory_read`: Algorithm 1 of the paper; reads `({MEM_READ(q1;q2)-->results})` placed before a target.",
        "",
        "`segments` holds the rendered text as consecutive pieces with `label` true where a model is trained",
        "(axolotl's `input_output` convention); concatenating them gives `text`.",
    ]
    lines += [
        "",
        "## How it was made",
        "",
        f"```\n{command}\n```",
        "",
        "Options:",
        "",
        "```json",
        json.dumps(options, indent=2, sort_keys=True),
        "```",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()),
        "",
        "## Counts",
        "",
        "| counter | value |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted(stats.items())]
    lines += ["", "## Schema", ""]
    for table in tables:
        lines.append(f"### {table}\n")
        lines += [f"- `{f.name}`: `{f.type}`" for f in TABLE_SCHEMAS[table]]
        lines.append("")
    table = next(iter(tables), "triples")
    load_table = f'ds = load_dataset("OUT_DIR", "{table}")'
    lines += [
        "## How to load",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("OUT_DIR", "memory_write")          # or "memory_read"' if about is None else load_table,
        f'ds = load_dataset("parquet", data_dir="OUT_DIR/{"memory_read" if about is None else table}")',
        "```",
        "",
        "Dead letters (rejected input records, with the reason) are in `errors/`; every counter is in `stats.json`.",
        "",
    ]
    return "\n".join(lines)
