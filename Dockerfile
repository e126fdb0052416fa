# GPU host image: CUDA torch, DAGSTER_HOME, serves the TradeML code location over gRPC.
# Build: docker build -t trademl-gpu .   Run: docker run --gpus all -p 4000:4000 -v /data:/data trademl-gpu
# The whole host (Postgres, MLflow, webserver, daemon, this code location): deploy/compose.gpu.yaml
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TRADEML_ENV=gpu TRADEML_HOME=/data/trademl DAGSTER_HOME=/data/trademl/dagster
RUN apt-get update && apt-get install -y --no-install-recommends python3.12 python3.12-venv git \
    && rm -rf /var/lib/apt/lists/* && python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
# CUDA build of torch first (pinned within pyproject's range), then the project.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
COPY pyproject.toml README.md ./
COPY trademl ./trademl
COPY trademl_assets ./trademl_assets
COPY trademl_jobs ./trademl_jobs
COPY resources ./resources
COPY configs ./configs
COPY workspace.yaml ./
COPY deploy ./deploy
# rl: the offline RL sizing sleeve trains here; postgres: the compose file's shared storage
RUN pip install -e '.[rl]' 'dagster-postgres>=0.29,<0.30'

EXPOSE 4000
CMD ["sh", "-c", "python -m trademl_jobs.instance && exec dagster api grpc -m trademl_jobs.definitions -a defs -h 0.0.0.0 -p 4000"]
