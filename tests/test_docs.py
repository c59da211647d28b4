"""The documented commands run: every command block marked `<!-- tested -->` in README.md and docs/*.md.

A block is tested when the line right before its opening ```bash fence is exactly `<!-- tested -->` (an HTML
comment: invisible on a rendered page). Mark only blocks that run on the shipped samples in seconds: no big
data, GPUs or cloud accounts; never the README's `<!-- test-command -->` block (it runs this suite).

Each block runs with `bash -e` in an empty temporary directory, with this interpreter's `bin/` (its
`memllm`, `python`) first on PATH, under a timeout, and must exit 0; every `memllm generate` in it must leave
its output directory's `stats.json`. Installing is not tested here, since the suite runs where everything is
installed already: a leading `pip install ... &&` is removed from a line, and a line that only installs is
skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from memllm.annotators.nlp import model_error

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- tested -->"
TIMEOUT_S = 120  # one block; each runs in a few seconds
PIP_PREFIX = re.compile(r"^\s*pip install\s[^&]*&&\s*")  # `pip install X && ` at the start of a line
PIP_ONLY = re.compile(r"^\s*pip install\s[^&]*$")


@dataclass(frozen=True)
class Block:
    file: str  # relative to the repository root
    line: int  # of the opening fence
    text: str


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def marked_blocks(path: Path) -> list[Block]:
    """The blocks marked in one Markdown file; a marker not right above a ```bash fence is a mistake."""
    lines = path.read_text(encoding="utf-8").splitlines()
    name = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```bash":
            raise ValueError(f"{name}:{i + 1}: {MARKER} must be the line right before a ```bash fence")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].strip() == "```"), None)
        if end is None:
            raise ValueError(f"{name}:{i + 2}: the ```bash block is not closed")
        blocks.append(Block(name, i + 2, "\n".join(lines[i + 2 : end])))
    return blocks


def runnable(text: str) -> str:
    """The block without its installs (see the module docstring)."""
    out = []
    for line in text.splitlines():
        while PIP_PREFIX.match(line):
            line = PIP_PREFIX.sub("", line, count=1)
        if not PIP_ONLY.match(line):
            out.append(line)
    return "\n".join(out)


def generate_outputs(script: str) -> list[str]:
    """The output directory of each `memllm generate` command of a script (`--output`, default memllm-out)."""
    outputs = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] != ["memllm", "generate"]:
            continue
        output = "memllm-out"
        for k, word in enumerate(words):
            if word == "--output" and k + 1 < len(words):
                output = words[k + 1]
            elif word.startswith("--output="):
                output = word.split("=", 1)[1]
        outputs.append(output)
    return outputs


BLOCKS = [block for path in doc_files() for block in marked_blocks(path)]


def test_the_quick_start_commands_are_marked():
    """The README's first commands, the ones a new user runs first, are tested; the test command is not."""
    marked = {b.text for b in BLOCKS if b.file == "README.md"}
    assert "pip install . && memllm generate" in marked
    assert "pip install '.[wikipedia]' && memllm generate --source wikipedia" in marked
    assert not any("pytest" in b.text for b in BLOCKS), "the test command must not be marked: it runs this suite"


def test_a_marker_must_sit_right_above_a_bash_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(f"text\n{MARKER}\n```bash\nmemllm generate\nls out\n```\n\n```bash\nnot marked\n```\n")
    assert marked_blocks(doc) == [Block(str(doc), 3, "memllm generate\nls out")]
    doc.write_text(f"{MARKER}\n\n```bash\nmemllm generate\n```\n")
    with pytest.raises(ValueError, match="right before a ```bash fence"):
        marked_blocks(doc)


def test_runnable_drops_only_the_installs():
    assert runnable("pip install . && memllm generate") == "memllm generate"
    assert runnable("pip install torch && pip install -e '.[x]' && python -m x") == "python -m x"
    assert runnable('pip install ".[train]"   # torch\nmemllm train --help') == "memllm train --help"
    assert runnable("memllm generate && pip install x") == "memllm generate && pip install x"
    assert generate_outputs("memllm generate  # a\nmemllm generate --output out/ -q\nls") == ["memllm-out", "out/"]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.file}:{b.line}" for b in BLOCKS])
def test_documented_command_runs(block: Block, tmp_path):
    script = runnable(block.text)
    if "--source wikipedia" in script and (error := model_error()):
        pytest.skip(error)  # an environment without the wikipedia extra: nothing the docs can fix
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"{block.file}:{block.line} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    for output in generate_outputs(script):
        assert (tmp_path / output / "stats.json").is_file(), f"{block.file}:{block.line}: no {output}/stats.json"
