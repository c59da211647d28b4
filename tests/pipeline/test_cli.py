"""The `memllm` command's front door: missing extras, bad runners and outputs, runs that keep nothing valid,
foreign output folders, option spellings, help and version, an embedding model that cannot be had."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from memllm.memory.errors import MemoryUsageError
from memllm.pipeline.cli import build_parser, main, sample_path
from memllm.pipeline.errors import InputError
from memllm.pipeline.extras import FEATURES, missing_extra
from memllm.pipeline.output_dir import is_memllm_output
from memllm.pipeline.runners import SUPPORTED_RUNNERS, resolve_runner

from memllm import __version__
from tests.conftest import ROOT

EXTRA_MODULES = sorted({m for f in FEATURES.values() for m in f.modules})
# Runs `memllm.pipeline.cli.main` as a base install sees it: `sys.modules[name] = None` makes `import name`
# fail and `importlib.util.find_spec(name)` answer None, as for a package that is not installed.
BASE_INSTALL = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from memllm.pipeline.cli import main
sys.exit(main(sys.argv[2:]))
"""


def generate(*args: str) -> int:
    return main(["generate", "-q", "--runner=FnApiRunner", *args])


def without_extras(*args: str, hidden: list[str] = EXTRA_MODULES, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", BASE_INSTALL, ",".join(hidden), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120)


def commands() -> argparse._SubParsersAction:
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))


def digests(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "README.md"  # the card records the command line
    }


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# missing extras --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,extra",
    [
        (["generate", "--memory", "embedding"], "memory"),
        (["generate", "--source", "wikipedia"], "wikipedia"),
        (["generate", "--evidence", "llm"], "train"),
        (["generate", "--runner", "DaskRunner"], "dask"),
        (["train", "--data", "d", "--task", "write", "--model", "m"], "train"),
        (["memory", "build", "x.json", "--memory-path"], "memory"),
        (["memory", "query", "a>>r>>", "--memory-path"], "memory"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(args, extra, tmp_path):
    out = tmp_path / "out"
    done = without_extras(*args, *([] if args[0] == "memory" else ["--output"]), str(out))
    line = one_error_line(done.stderr)
    assert done.returncode == 2
    assert line.startswith("memllm") and line.endswith(f"pip install 'memllm[{extra}]'")
    assert not out.exists()


def test_the_base_install_runs_the_sample_and_lists_every_command(tmp_path):
    done = without_extras("generate", "-q", "--runner=FnApiRunner", "--output", str(tmp_path / "out"))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["documents.valid"] == 9
    listed = without_extras("--help").stdout
    for name in commands().choices:
        assert f"\n    {name}" in listed


def test_missing_extra_lists_what_is_absent():
    assert missing_extra("train") is None  # the test environment has every extra
    assert missing_extra("memory", "wikipedia", "judge", "dask") is None


# runner and output path ------------------------------------------------------------------------------------


def test_an_unknown_runner_is_one_line_listing_the_runners(tmp_path, capsys):
    assert generate("--runner", "Bogus", "--output", str(tmp_path / "out")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("memllm: error: --runner Bogus: unknown runner")
    assert all(name in line for name in SUPPORTED_RUNNERS)
    assert not (tmp_path / "out").exists()


def test_runner_names_resolve_as_beam_reads_them():
    assert resolve_runner("direct") == "DirectRunner"
    assert resolve_runner("fnapirunner") == "FnApiRunner"
    full = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
    assert resolve_runner(full) == full
    for bad in ("Bogus", "no_such_module.Runner", "apache_beam.runners.NoSuchRunner"):
        with pytest.raises(InputError, match="unknown runner"):
            resolve_runner(bad)


def test_an_output_that_is_a_file_is_refused_before_the_run(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("keep me")
    assert generate("--output", str(target)) == 2
    assert one_error_line(capsys.readouterr().err) == f"memllm: error: --output {target}: is a file, not a directory"
    assert target.read_text() == "keep me"


# Beam's import warning -------------------------------------------------------------------------------------


def test_beams_apitools_warning_shows_only_with_verbose(tmp_path):
    import importlib.util

    if importlib.util.find_spec("apitools") is not None:
        pytest.skip("Beam's GCP extra is installed: Beam has nothing to warn about")
    cmd = [sys.executable, "-m", "memllm", "generate", "--runner=FnApiRunner", "--output"]
    quiet = subprocess.run([*cmd, str(tmp_path / "a")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    loud = subprocess.run([*cmd, str(tmp_path / "b"), "-v"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert quiet.returncode == loud.returncode == 0
    assert "memllm generate: 1 input file(s)" in quiet.stderr and "apitools not found" not in quiet.stderr
    assert "apitools not found" in loud.stderr


# runs that keep nothing valid ------------------------------------------------------------------------------


def test_wikipedia_articles_given_to_the_docred_source_exit_1_with_a_hint(tmp_path, capsys):
    from memllm.pipeline.cli import WIKIPEDIA_SAMPLE

    out = tmp_path / "out"
    assert generate("--input", sample_path(WIKIPEDIA_SAMPLE), "--output", str(out)) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("memllm: error: no valid record among 5 input record(s)")
    assert line.endswith("use --source wikipedia")
    assert json.loads((out / "stats.json").read_text())["validate.rejected"] == 5  # the explanation stays
    assert sum(1 for f in (out / "errors").iterdir() for _ in f.open()) == 5


def test_an_empty_input_exits_1(tmp_path, capsys):
    empty = tmp_path / "empty_train.json"
    empty.write_text("[]")
    assert generate("--input", str(empty), "--output", str(tmp_path / "out")) == 1
    assert (
        one_error_line(capsys.readouterr().err) == "memllm: error: the input holds no records: no examples were written"
    )


def test_rejected_records_without_a_pattern_get_no_source_hint(tmp_path, capsys):
    bad = tmp_path / "bad_train.json"
    bad.write_text(json.dumps([{"title": "t", "sents": [["x"]], "vertexSet": [], "labels": [{"h": 0}]}]))
    assert generate("--input", str(bad), "--output", str(tmp_path / "out")) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "no valid record among 1 input record(s)" in line and "--source" not in line


# what --output may be --------------------------------------------------------------------------------------


def test_a_foreign_folder_is_refused_and_left_untouched(tmp_path, capsys):
    project = tmp_path / "myproj"
    project.mkdir()
    (project / "README.md").write_text("# my project\n")
    (project / "notes.txt").write_text("mine")
    before = digests(project) | {"README.md": (project / "README.md").read_text()}
    assert generate("--output", str(project)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"memllm: error: --output {project} is not empty (README.md, notes.txt)")
    assert "--overwrite" in line
    assert digests(project) | {"README.md": (project / "README.md").read_text()} == before
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "notes.txt"]

    assert generate("--output", str(project), "--overwrite") == 0  # the user said so
    assert (project / "notes.txt").read_text() == "mine" and (project / "stats.json").is_file()
    assert (project / "README.md").read_text() != "# my project\n"
    assert generate("--output", str(project)) == 0  # from now on an earlier memllm output, next to notes.txt


def test_an_earlier_output_is_rerun(tmp_path):
    out = tmp_path / "out"
    assert generate("--output", str(out), "--rows-per-shard", "2") == 0
    assert len(list((out / "memory_write").iterdir())) == 9
    assert generate("--output", str(out), "--rows-per-shard", "8") == 0
    assert len(list((out / "memory_write").iterdir())) == 3  # 18 rows / 8: the 9 shards of before are gone


@pytest.mark.parametrize(
    "entries,ours",
    [
        ({"stats.json": "{}", "README.md": "---\n---\n\n# memllm training data\n"}, True),
        ({"memory_write/": None, "errors/": None}, True),  # a run stopped before its stats
        ({"_resume/": None, "train.jsonl": "{}"}, True),  # a resumable run stopped, its input next to it
        ({"stats.json": "{}", "README.md": "# my project\n"}, False),  # the README is not a card
        ({"notes.txt": "x"}, False),
        ({"errors/": None, "notes.txt": "x"}, False),  # a table's name alone is anyone's
    ],
)
def test_what_counts_as_an_earlier_output(tmp_path, entries, ours):
    for name, text in entries.items():
        if text is None:
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_text(text)
    assert is_memllm_output(tmp_path) is ours


# option spellings, version, help ---------------------------------------------------------------------------


def test_hyphens_and_underscores_give_the_same_run(tmp_path):
    parser = build_parser()
    hyphens, rest_h = parser.parse_known_args(["generate", "--rows-per-shard", "8", "--write-documents"])
    underscores, rest_u = parser.parse_known_args(["generate", "--rows_per_shard", "8", "--write_documents"])
    assert vars(hyphens) == vars(underscores) and rest_h == rest_u == []
    assert hyphens.rows_per_shard == 8 and hyphens.write_documents is True
    assert generate("--output", str(tmp_path / "h"), "--rows-per-shard", "8", "--write-documents") == 0
    assert generate("--output", str(tmp_path / "u"), "--rows_per_shard", "8", "--write_documents") == 0
    assert digests(tmp_path / "h") == digests(tmp_path / "u")
    assert len(list((tmp_path / "h" / "memory_write").iterdir())) == 3 and (tmp_path / "h" / "documents").is_dir()


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"memllm {__version__}"


def test_top_level_help_lists_every_command_with_a_line(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    sub = commands()
    described = {a.dest: a.help for a in sub._choices_actions}
    assert (
        set(described)
        == set(sub.choices)
        == {"generate", "train", "memory", "evidence-eval", "write", "complete", "fill-memory"}
    )
    for name, line in described.items():
        assert line and f"{name} {' '.join(line.split())}" in text


def test_memory_alone_says_what_to_do(capsys):
    assert main(["memory"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: memllm memory")
    assert err[-1] == "memllm memory: error: choose a command: build, query or stats (see memllm memory --help)"
    assert len(err) == 2


def test_train_help_shows_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--lora-r LORA_R LoRA rank (default: 16)" in text
    assert "--lr LEARNING_RATE, --learning-rate LEARNING_RATE peak learning rate (default: 2e-05)" in text
    train = commands().choices["train"]
    assert all(a.help for a in train._actions), [a.dest for a in train._actions if not a.help]


# the embedding model ---------------------------------------------------------------------------------------


def test_an_uncached_embedding_model_offline_fails_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    started = time.monotonic()
    assert generate("--output", str(out), "--memory", "embedding", "--embedding-model", "memllm-tests/absent") == 2
    assert time.monotonic() - started < 10
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("memllm: error: embedding model 'memllm-tests/absent' is not in the local Hugging Face")
    assert line.endswith("--embedding-model DIR")
    assert not out.exists()
    assert generate("--output", str(out), "--memory", "embedding", "--embedding-model", str(tmp_path / "no")) == 2
    assert "embedding model directory not found" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_an_unreachable_hub_is_asked_once(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "memllm", "generate", "--memory", "embedding", "--output", str(out)]
    started = time.monotonic()
    done = subprocess.run(
        [*cmd, "--embedding-model", "memllm-tests/absent"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert time.monotonic() - started < 30  # no minute of retries
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and "the hub cannot be reached" in line and line.endswith("--embedding-model DIR")
    assert not out.exists()


def test_check_model_available_accepts_a_local_directory(tmp_path):
    from memllm.memory.embedding import check_model_available

    check_model_available(tmp_path)  # a directory: the loader says what is wrong with it, if anything
    with pytest.raises(MemoryUsageError, match="directory not found"):
        check_model_available(tmp_path / "missing")
