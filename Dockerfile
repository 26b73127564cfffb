# scanrelay container image.
#
#   docker build -t scanrelay .
#   docker run -d --name scanrelay -p 25:2525 -p 127.0.0.1:8025:8025 \
#     -v scanrelay-data:/data -v "$PWD/gateway.yaml:/config/gateway.yaml:ro" \
#     --read-only --tmpfs /tmp --stop-timeout 60 scanrelay
#
# Three stages: `build` compiles TypeScript with the dev dependencies, `prod-deps` installs only the
# production dependencies, `runtime` holds the compiled dist/ and those node_modules (no sources, no
# compiler, no npm cache) and runs as the unprivileged `node` user (uid 1000).
#
# scripts/image-proof.mjs executes this file's steps outside Docker (no engine on our machines) and
# fails on any RUN command it does not know: keep RUN lines to `npm ...`, `mkdir -p` and `chown`.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
# Inside the container the listeners bind every interface of the container's own network namespace;
# what the host exposes is decided by the port mappings (`-p`, compose `ports:`). Ports and hosts come
# from these variables, which override the YAML: change them with `-e`, not in gateway.yaml.
# POP3 (POP-before-SMTP, off unless pop3.enabled) listens on 1110 here; map host 110 to it.
ENV NODE_ENV=production \
    SCANRELAY_CONFIG=/config/gateway.yaml \
    SCANRELAY_DATA_DIR=/data \
    SCANRELAY_SMTP_HOST=0.0.0.0 \
    SCANRELAY_SMTP_PORT=2525 \
    SCANRELAY_ADMIN_HOST=0.0.0.0 \
    SCANRELAY_ADMIN_PORT=8025 \
    SCANRELAY_POP3_PORT=1110
WORKDIR /app
# Application files stay owned by root: the runtime user can read but never modify them.
COPY package.json package-lock.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
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
