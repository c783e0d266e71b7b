# syntax=docker/dockerfile:1.7
# One image for every role (`deltaomega run | worker | api | control | simulate`).
#   docker build -t deltaomega .                          # CPU (onnxruntime)
#   docker build --build-arg VARIANT=gpu -t deltaomega:gpu .  # CUDA (onnxruntime-gpu)
# The CUDA execution provider is chosen automatically when the GPU variant sees a GPU.
ARG VARIANT=cpu

FROM python:3.11-slim-bookworm AS base-cpu

FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 AS base-gpu
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /usr/bin/python3.11 /usr/local/bin/python

# -- console: the web console's build (TypeScript, React, Vite), shipped in the package ---
FROM node:20-bookworm-slim AS console
WORKDIR /src/console
COPY console/package.json console/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY console/ ./
RUN npm run build

# -- build: a virtualenv with the package and its pinned dependencies ---------------------
FROM base-${VARIANT} AS build
ARG VARIANT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/deltaomega
ENV PATH=/opt/deltaomega/bin:$PATH
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY deltaomega ./deltaomega
COPY --from=console /src/deltaomega/console/static ./deltaomega/console/static
RUN pip install --upgrade "pip>=24" \
 && pip install -c constraints.txt . \
 && if [ "$VARIANT" = "gpu" ]; then \
      pip uninstall -y onnxruntime && pip install -c constraints.txt ".[gpu]"; \
    fi \
 && python -c "import deltaomega.service"

# -- runtime: the virtualenv only, as an unprivileged user ---------------------------------
FROM base-${VARIANT} AS runtime
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/deltaomega deltaomega
COPY --from=build /opt/deltaomega /opt/deltaomega
ENV PATH=/opt/deltaomega/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DELTAOMEGA_DATA_DIR=/var/lib/deltaomega \
    DELTAOMEGA_API_HOST=0.0.0.0 \
    DELTAOMEGA_LOG_JSON=true
USER 10001
WORKDIR /var/lib/deltaomega
VOLUME ["/var/lib/deltaomega"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["deltaomega"]
CMD ["run"]
