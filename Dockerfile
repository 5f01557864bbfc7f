# propwatch worker image: CPU-only torch, the project, a non-root user.
#
#   docker build -t propwatch:latest .
#   docker run --rm -v "$PWD/models:/models:ro" -e PROPWATCH_KAFKA_BOOTSTRAP=kafka:9092 propwatch:latest
#
# The model is not baked in: mount the folder built by `make model` at /models (read-only).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# torch first, from the CPU-only index, so that `pip install .` finds `torch>=2.4` satisfied
# and does not pull the CUDA build (several GiB) from PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY classifiers ./classifiers
RUN pip install ".[onnx]" \
    && cd / && rm -rf /src

# Non-root user; its home is the working directory and the worker's state lives in /var/lib/propwatch.
RUN groupadd --system --gid 10001 propwatch \
    && useradd --system --uid 10001 --gid propwatch --create-home --home-dir /home/propwatch propwatch \
    && install -d -o propwatch -g propwatch -m 0750 /var/lib/propwatch
USER propwatch
WORKDIR /home/propwatch

ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    HF_HOME=/home/propwatch/.cache/huggingface \
    PROPWATCH_WEB_BIND=0.0.0.0 \
    PROPWATCH_WEB_PORT=6066 \
    PROPWATCH_MODEL=/models/propwatch-tco-e5 \
    PROPWATCH_DATA_DIR=/var/lib/propwatch

EXPOSE 6066

# /health answers once the model is loaded and the Faust web server is up; loading can take a while.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=4)"]

ENTRYPOINT ["propwatch"]
# One worker process per container: scale containers (compose --scale, Kubernetes replicas), each
# with its own /health on 6066. `worker --processes auto` would run one per core of the host.
CMD ["worker", "--processes", "1"]
