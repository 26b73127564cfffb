# scanrelay container image (Docker or podman; with podman build with `--format docker`, or the
# HEALTHCHECK is dropped).
#
#   docker build -t scanrelay:0.2.0 .
#   docker run -d --name scanrelay -p 25:2525 -p 127.0.0.1:8025:8025 \
#     -v scanrelay-data:/data -v "$PWD/my-config:/config:ro" \
#     --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges --stop-timeout 60 scanrelay:0.2.0
#
# Smoke test of the image alone (the shipped demo config only admits its demo device from 127.0.0.1, and
# through a port mapping clients arrive from the engine's gateway address, so test inside the container):
#   docker exec scanrelay node -e "fetch('http://127.0.0.1:8025/healthz').then(r=>console.log(r.status))"
# Mount a config whose devices allow the printers' addresses before pointing printers at port 25.
#
# Three stages: `build` installs every dependency (compiling better-sqlite3 with python3, make, g++ and the
# base image's Node headers), compiles TypeScript and prunes the dev dependencies; `runtime` holds only
# dist/, the pruned node_modules, the console's static files and the default config (no sources, no
# compiler, no npm cache) and runs as the unprivileged `node` user (uid 1000).
# test/deploy/image.sh builds this file with podman and runs the result (CI: .ci/run).

# Node.js 24 LTS (supported to 2028-04). Any official node:<22|24|26>-bookworm-slim image works.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
# A native module (better-sqlite3) compiles against the headers official node images ship in
# /usr/local/include/node; the compiler stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Everything the runtime needs goes to /out, so the runtime stage takes it in one COPY (one layer): the
# compiled code, the production dependencies without the native build's intermediate files, and the
# console's static files (src/console/public) when the sources have them.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && find node_modules -path '*/build/Release/obj*' -prune -exec rm -rf {} + \
 && find node_modules -path '*/build/*' -name '*.a' -delete \
 && mkdir -p /out/src/console src/console/public \
 && cp -a package.json package-lock.json node_modules dist /out/ \
 && cp -a src/console/public /out/src/console/public

FROM ${NODE_IMAGE} AS runtime
# The release this image is: keep it equal to package.json's version (test/deploy/container.test.ts).
ARG SCANRELAY_VERSION=0.2.0
LABEL org.opencontainers.image.title="scanrelay" \
      org.opencontainers.image.description="Scan-to-email relay gateway: plaintext SMTP from printers in, TLS and per-device accounts out" \
      org.opencontainers.image.version="${SCANRELAY_VERSION}" \
      org.opencontainers.image.source="https://github.com/scanrelay/scanrelay" \
      org.opencontainers.image.licenses="MIT"
# Inside the container the listeners bind every interface of the container's own network namespace;
# what the host exposes is decided by the port mappings (`-p`, compose `ports:`). Ports and hosts come
# from these variables, which override the YAML: change them with `-e`, not in gateway.yaml.
# POP3 (POP-before-SMTP, off unless pop3.enabled) listens on 1110 here; map host 110 to it.
# NODE_OPTIONS: a small young generation suits a small resident gateway (RSS 157 -> 115 MB in a 300 x 100 KB
# run), and a 512 MB heap limit makes V8 collect at 1.4x the live heap instead of up to 4x (peak USS of a
# warmed gateway at 300 x 100 KB on Node 24: 119-129 -> 95-100 MiB); the same value is in package.json's
# start scripts and deploy/systemd/scanrelay.service.
# MALLOC_ARENA_MAX: at most 2 malloc arenas for the gateway's threads (main, SMTP client thread, thread
# pool); with glibc's default of 8 per core, peak USS with 20 scans of 25 MB at once was 132 MiB, with 2 it was 107.
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-semi-space-size=1 --max-old-space-size=512" \
    MALLOC_ARENA_MAX=2 \
    SCANRELAY_CONFIG=/config/gateway.yaml \
    SCANRELAY_DATA_DIR=/data \
    SCANRELAY_SMTP_HOST=0.0.0.0 \
    SCANRELAY_SMTP_PORT=2525 \
    SCANRELAY_ADMIN_HOST=0.0.0.0 \
    SCANRELAY_ADMIN_PORT=8025 \
    SCANRELAY_POP3_PORT=1110
WORKDIR /app
# Application files stay owned by root: the runtime user can read but never modify them.
COPY --from=build /out ./
# The runnable default config (loopback-only demo device, no upstream); mount your own over it.
COPY config/gateway.yaml /config/gateway.yaml
# The only writable paths are /data (queue, devices, generated keys) and /tmp (mount a tmpfs with --read-only).
RUN mkdir -p /data && chown 1000:1000 /data
VOLUME ["/data"]
# Numeric uid of the image's `node` user, so Kubernetes runAsNonRoot can check it.
USER 1000:1000
EXPOSE 2525 8025 1110
# Node is in every layer already; slim images have no curl. Exits 0 only on HTTP 200 from /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const port=process.env.SCANRELAY_ADMIN_PORT||8025;const req=require('node:http').get({host:'127.0.0.1',port,path:'/healthz',timeout:4000},(res)=>process.exit(res.statusCode===200?0:1));req.on('timeout',()=>process.exit(1));req.on('error',()=>process.exit(1))"]
# node runs as PID 1 without an init: main.ts handles SIGTERM/SIGINT (drain, exit 0) and SIGHUP (reload)
# itself, and scanrelay starts no child processes, so there are no zombies to reap. `docker stop` must
# wait for the drain: allow 60 s (--stop-timeout 60, compose stop_grace_period: 60s).
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
