# biogliner worker/head image for Ray clusters (KubeRay and the Ray cluster launcher).
#
#   docker build -t <registry>/biogliner:0.1.0 .
#
# Base: the official Ray image whose Ray version matches the `ray` pin of the `pipeline` extra in
# pyproject.toml and every `rayVersion` in cluster/ (tests/cluster checks all three agree).
# The `-gpu` tag is Ray's default CUDA 12 build (a `-cu12x` tag pins one CUDA minor); it runs on
# CPU-only nodes too, so one image serves the head, the CPU parsing workers and the GPU workers.
# It already runs as the non-root user `ray` (uid 1000, group `users`), home /home/ray.
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu
FROM ${RAY_IMAGE}

# torch is not part of the Ray image. The PyPI wheel for Linux x86_64 bundles its CUDA runtime
# (cuDNN/cuBLAS come as nvidia-* wheels); the node only needs a recent NVIDIA driver. Override
# TORCH_INDEX_URL for a specific CUDA build, e.g. https://download.pytorch.org/whl/cu128.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TOKENIZERS_PARALLELISM=false \
    HF_HOME=/home/ray/.cache/huggingface \
    BIOGLINER_MODEL_CACHE=/home/ray/models

USER ray
WORKDIR /home/ray/biogliner

RUN python -m pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# Dependencies first (cached layer), then the package itself.
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users biogliner/ biogliner/
RUN python -m pip install ".[pipeline]" \
 && python -c "import ray, torch, biogliner; assert ray.__version__ == '2.60.0', ray.__version__"

# Ray job entrypoints (referenced by absolute path from cluster/kuberay/*.yaml and cluster/aws/)
# and the node-start model fetcher.
COPY --chown=ray:users jobs/ jobs/
COPY --chown=ray:users cluster/docker/fetch_model.py cluster/docker/fetch_model.py

RUN mkdir -p /home/ray/models /home/ray/.cache/huggingface \
 && python jobs/annotate.py --help > /dev/null \
 && python jobs/nightly.py --help > /dev/null \
 && python cluster/docker/fetch_model.py --help > /dev/null

# Model weights are NOT baked in: they are fetched at node start into the node-local cache
# /home/ray/models by cluster/docker/fetch_model.py (a hub id or an object-store mirror, see
# docs/cluster.md). No ENTRYPOINT: KubeRay and the cluster launcher supply the `ray start` command.
