# The image meshstack's own trainer and server run in (a program of your own needs none of this).
#   docker build -t REGISTRY/meshstack:0.1.0 --build-arg JAX_EXTRA=cuda12 .    # NVIDIA GPUs
#   docker build -t REGISTRY/meshstack:0.1.0 --build-arg JAX_EXTRA=tpu .       # TPU hosts
#   docker build -t REGISTRY/meshstack:0.1.0 .                                 # CPU (the default)
# The pods run it as uid 1000 with a read-only root file system; /tmp and /dev/shm are mounted.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
FROM ${PYTHON_IMAGE}
ARG JAX_EXTRA=cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/meshstack
COPY pyproject.toml README.md ./
COPY meshstack meshstack
COPY components components
COPY workloads workloads
COPY policies policies
RUN pip install ".[cloud,${JAX_EXTRA}]" && useradd --uid 1000 --no-create-home --home-dir /tmp meshstack
USER 1000
WORKDIR /tmp
CMD ["python", "-m", "meshstack.workloads.jax.train"]
