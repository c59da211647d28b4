"""The wheel that remote workers install (`--setup_file`, the worker image) carries the package data.

Dataflow stages an sdist built from setup.py and the Dockerfile installs the package: a worker without
the shipped sample or the relation-label table fails only once it runs. The wheel is built offline
(`--no-build-isolation`: setuptools and wheel from this environment) from a copy of the source tree, so
the build leaves nothing in the checkout.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "memllm-out*")


@pytest.mark.skipif(
    any(importlib.util.find_spec(tool) is None for tool in ("setuptools", "wheel")),
    reason="building a wheel offline needs setuptools and wheel in this environment",
)
def test_wheel_contains_package_data(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=IGNORED)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
           "-w", str(tmp_path / "dist"), str(src)]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("pip wheel did not finish in 300 s")
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("memllm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data_files = [p for d in ("pipeline/sample", "annotators/data") for p in Path(ROOT, d).glob("*.json*")]
    assert data_files
    for data in data_files:
        assert f"memllm/{data.relative_to(ROOT)}" in names, f"{data.name} is not in the wheel"
    assert "memllm/pipeline/sample/sample_docred.json" in names
    assert "memllm/annotators/data/property_labels_en.json" in names
    assert "memllm/pipeline/dask_runner.py" in names and "memllm/pipeline/runners.py" in names
    assert "memllm/__main__.py" in names and "memllm/trainer/__main__.py" in names
    # One import name: `pipeline`, `trainer`, `memory`, ... would collide with other distributions.
    top_level = {n.split("/", 1)[0] for n in names}
    assert top_level == {"memllm", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, top_level


def test_sdist_contains_package_data(tmp_path):
    """What `--setup_file ./setup.py` stages for Dataflow workers (Beam runs `setup.py sdist` without `build`)."""
    import tarfile

    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=IGNORED)
    cmd = [sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")]
    done = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (sdist,) = (tmp_path / "dist").glob("memllm-*.tar.gz")
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    data_files = [p for d in ("pipeline/sample", "annotators/data") for p in Path(ROOT, d).glob("*.json*")]
    assert {str(p.relative_to(ROOT)) for p in data_files} <= names
