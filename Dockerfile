# syntax=docker/dockerfile:1.7
# Targets:
#   api         Node 20 slim, CPU onnxruntime, the embedded default model     (docker build --target api .)
#   worker-cpu  api + Debian's PyTorch and OpenBLAS for the trainer          (--target worker-cpu)
#   gpu         CUDA 12 + cuDNN runtime, Node 20, onnxruntime-node with its CUDA 12 provider,
#               PyTorch 2.x with CUDA: GPU API replicas and training workers   (--target gpu)
# Each runs the compiled service (dist/, from the build stage): no TypeScript, tsx or src/ at run time.
ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- production dependencies (CPU onnxruntime; .npmrc skips the CUDA download) ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force \
 # onnxruntime-node ships every platform's binaries (~290 MB); keep this one's.
 && arch=$(node -p process.arch) \
 && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -type d ! -path "*/linux/${arch}" -exec rm -rf {} + \
 # typescript arrives only as an optional peer of valibot (bull-board's types); nothing runs it.
 && rm -rf node_modules/typescript

# ---- build: src/ compiled to dist/ (npm run build) with the dev dependencies: TypeScript, tsx,
# and the types it checks against; none of them reaches a runtime image ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.ts ./scripts/
COPY scripts/lib/build-dist.ts scripts/lib/cli.ts ./scripts/lib/
COPY src ./src
RUN npm run build

# ---- api ----
FROM ${NODE_IMAGE} AS api
# MALLOC_ARENA_MAX=2: glibc's malloc keeps fewer per-thread arenas, so memory freed by the worker
# threads (decoded images, onnxruntime) is reused instead of held (README, "Memory").
ENV NODE_ENV=production \
    PORT=8080 HOST=0.0.0.0 \
    MODELS_DIR=/models PSA_MODEL=/app/models/default DATA_DIR=/data \
    MALLOC_ARENA_MAX=2
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
# package.json makes dist/'s .js files ES modules and gives the version the API reports.
COPY package.json ./
COPY --from=build /app/dist ./dist
COPY models/default ./models/default
# Trained packages go to /models and datasets/jobs to /data: volumes shared with the workers.
RUN mkdir -p /data /models && chown node:node /data /models
USER node
EXPOSE 8080
VOLUME ["/data", "/models"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node is PID 1 and handles SIGTERM itself (close-with-grace): requests in flight finish.
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "dist/server.js"]

# ---- trainer-base: Debian's PyTorch and OpenBLAS, a layer that survives code changes ----
FROM ${NODE_IMAGE} AS trainer-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python3-torch python3-numpy python3-onnx libopenblas0-pthread \
 && rm -rf /var/lib/apt/lists/*

# ---- worker-cpu: the api's files plus the trainer, for training on CPU (small models) ----
FROM trainer-base AS worker-cpu
ENV NODE_ENV=production \
    MODELS_DIR=/models PSA_MODEL=/app/models/default DATA_DIR=/data \
    TRAINER_PYTHON=/usr/bin/python3
WORKDIR /app
COPY --from=api /app ./
# The trainer's pinned wheels (trainer/requirements.txt) where trainer/__init__.py looks for them.
COPY trainer/requirements.txt ./trainer/requirements.txt
RUN python3 -m pip install --no-deps --no-cache-dir --disable-pip-version-check --target .cache/python-deps -r trainer/requirements.txt
COPY trainer ./trainer
RUN mkdir -p /data /models && chown node:node /data /models
USER node
VOLUME ["/data", "/models"]
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "dist/worker.js"]

# ---- gpu: API replicas with the CUDA execution provider, and GPU training workers ----
FROM ${CUDA_IMAGE} AS gpu
ARG NODE_MAJOR=20
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg python3 python3-pip python3-venv \
 && curl -fsSL https://deb.nodesource.com/setup_${NODE_MAJOR}.x | bash - \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/torch \
 && /opt/torch/bin/pip install --no-cache-dir torch numpy onnx --index-url https://download.pytorch.org/whl/cu128 --extra-index-url https://pypi.org/simple
WORKDIR /app
COPY package.json package-lock.json ./
# onnxruntime-node fetches its CUDA 12 execution provider at install time.
RUN npm ci --omit=dev --no-audit --no-fund --onnxruntime-node-install=cuda12 && npm cache clean --force
COPY --from=build /app/dist ./dist
# The trainer's pinned wheels (trainer/requirements.txt) where trainer/__init__.py looks for them.
COPY trainer/requirements.txt ./trainer/requirements.txt
RUN /opt/torch/bin/pip install --no-deps --no-cache-dir --disable-pip-version-check --target .cache/python-deps -r trainer/requirements.txt
COPY trainer ./trainer
COPY models/default ./models/default
RUN useradd --uid 1000 --create-home psa && mkdir -p /data /models && chown psa /data /models
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0 MODELS_DIR=/models PSA_MODEL=/app/models/default DATA_DIR=/data \
    DEVICE=cuda TRAINER_PYTHON=/opt/torch/bin/python MALLOC_ARENA_MAX=2
USER psa
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "dist/server.js"]
