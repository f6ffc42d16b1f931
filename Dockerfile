# stubhost server image (OCI: `docker build .` or `podman build .`).
#
#   docker build -t stubhost .
#   docker run --rm --shm-size=1g -p 8000-8002:8000-8002 -v "$PWD/models:/models:ro" stubhost
#
# BASE_IMAGE is any Debian-family image with Node 20 and npm whose headers sit next to the
# binary (<prefix>/include/node, as in the official node images), so node-gyp needs no download.
ARG BASE_IMAGE=node:20-slim

# ---- build: production dependencies and the native addon --------------------------------------
FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Behind a TLS-intercepting proxy, name its CA bundle here and mount the file for the build only
# (`--build-arg NODE_EXTRA_CA_CERTS=/run/host-ca.crt -v /etc/ssl/certs/ca-certificates.crt:/run/host-ca.crt:ro`);
# it is never copied into an image.
ARG NODE_EXTRA_CA_CERTS
# onnxruntime-node's install script would download GPU providers; the CPU binaries ship in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc binding.gyp ./
COPY native ./native
# Dependencies first (a layer that survives source edits): all of them, since the host and the
# stub are compiled with the type packages; scripts off, because `prepare` compiles sources that
# are not copied yet. Then the package's own install script: node-gyp rebuild -> build/Release.
RUN npm_config_nodedir="$(node -p 'require("path").resolve(process.execPath, "../..")')" npm ci --ignore-scripts --no-audit --no-fund \
 && npm_config_nodedir="$(node -p 'require("path").resolve(process.execPath, "../..")')" npm run install
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
COPY stub ./stub
# Compile to dist/ (what bin/stubhost.js and the stubs run), drop the dev dependencies and the
# onnxruntime binaries of other platforms (about 250 MB), and the compiler's intermediate files.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && node -e 'const fs=require("fs"),p=require("path");const d="node_modules/onnxruntime-node/bin/napi-v6";for(const os of fs.readdirSync(d))for(const a of fs.readdirSync(p.join(d,os)))if(os!==process.platform||a!==process.arch)fs.rmSync(p.join(d,os,a),{recursive:true})' \
 && rm -rf build/Release/obj.target build/Release/.deps native/*.o dist/.tsbuildinfo \
 && npm cache clean --force

# ---- runtime ------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
# A numeric non-root user (as Triton's images offer), so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 stubhost \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin stubhost \
 && mkdir -p /models
WORKDIR /app
COPY --from=build /app /app
# NODE_PATH: CommonJS model code in /models (a folder with no package.json of its own) can require
# the packages stubhost ships, such as onnxruntime-node; a model's own node_modules still wins.
# ORT_DISABLE_TELEMETRY: onnxruntime would otherwise try to upload telemetry from the server.
ENV NODE_ENV=production \
    NODE_PATH=/app/node_modules \
    ORT_DISABLE_TELEMETRY=1
USER 10001:10001
EXPOSE 8000 8001 8002
# Ready means every model loaded (--strict-readiness); fetch is built into Node 20, no curl needed.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8000/v2/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 (never npm or a shell, which would not pass SIGTERM on): the server handles
# SIGTERM and SIGINT by draining for up to --exit-timeout-secs, then exits 0.
ENTRYPOINT ["node", "/app/bin/stubhost.js"]
CMD ["serve", "--model-repository", "/models"]
