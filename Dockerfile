# syntax=docker/dockerfile:1
#
# The inference service as an image: `python -m service` on port 8000, the default model inside.
#
#   docker build -t digit-autoencoder:0.1.0 .                       # CPU torch (default)
#   docker build -t digit-autoencoder:0.1.0-cuda \
#       --build-arg TORCH_INDEX_URL= .                              # CUDA: PyPI's torch
#   make image                                  # the same with docker, or buildah where no docker
#
# The CUDA wheels bring their own CUDA runtime, so the same slim base serves both builds; the host
# needs only the NVIDIA driver and container toolkit. An empty TORCH_INDEX_URL means pip's default
# index (PyPI, whose Linux torch is the CUDA build); PYTHON_IMAGE is any Debian-based image with
# `python` and its venv module.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual environment with the service's runtime dependencies only ----
FROM ${PYTHON_IMAGE} AS build

# Which torch build to install: the CPU wheels by default, a CUDA index for GPU hosts, empty for
# pip's default index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# torch first, in its own layer: it is most of the image and changes least often. The ranges
# are pyproject.toml's, so the project install below finds them satisfied and keeps this build.
RUN python -m venv /opt/venv \
    && if [ -n "$TORCH_INDEX_URL" ]; then export PIP_INDEX_URL="$TORCH_INDEX_URL"; fi \
    && pip install --no-cache-dir "torch>=2.4,<3" "torchvision>=0.19,<1"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
# No extras: the training and dev tools stay out of the image.
RUN pip install --no-cache-dir . \
    && python -c "import service"

# ---- runtime: the virtual environment, the model and an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime

# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
COPY models/mnist-ae.pt /app/models/mnist-ae.pt

# AE_MODEL_PATH points at the model baked in; mount another models folder and point it there.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AE_MODEL_PATH=/app/models/mnist-ae.pt \
    AE_HOST=0.0.0.0 \
    AE_PORT=8000

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# Ready means the model is loaded and warm; urllib raises on a 503, so the check fails until then.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('AE_PORT', '8000'), timeout=2)"]

# SIGTERM drains in-flight requests for AE_SHUTDOWN_TIMEOUT seconds before the process exits.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]
