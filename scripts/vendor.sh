#!/usr/bin/env bash
# Copies the browser libraries that package.json pins into web/pages/static/vendor/, where the
# pages load them from 'self' (the CSP allows no other script origin). The copy is committed,
# so installing and running Jobcast needs no Node.js; this script is how it was made, and
# makes it again after a version in package.json changes:
#
#   npm install --package-lock-only --ignore-scripts   # after editing the pinned version
#   bash scripts/vendor.sh                              # copy (npm ci checks the lock's hashes)
#   bash scripts/vendor.sh --check                      # the committed copy is that package's
#
# What is copied: hls.js's light build (no subtitles, DRM or alternate audio, which Jobcast
# does not use), its licence, and a gzip of it (aiohttp's static route sends the .gz to
# browsers that accept gzip: about 120 KB on the wire instead of 390 KB).
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
[[ "${1:-}" == "--check" ]] && check=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
pkg="$work/node_modules/hls.js"
dest=web/pages/static/vendor

declare -A files=(
  ["$pkg/dist/hls.light.min.js"]="$dest/hls.light.min.js"
  ["$pkg/LICENSE"]="$dest/hls.js.LICENSE"
)
mkdir -p "$work/out"
for src in "${!files[@]}"; do cp "$src" "$work/out/$(basename "${files[$src]}")"; done
gzip -9 -n -c "$work/out/hls.light.min.js" >"$work/out/hls.light.min.js.gz"

version=$(node -p "require('$pkg/package.json').version")
if [[ $check == 1 ]]; then
  diff -q "$work/out/hls.light.min.js" "$dest/hls.light.min.js"
  diff -q "$work/out/hls.js.LICENSE" "$dest/hls.js.LICENSE"
  diff -q "$work/out/hls.light.min.js.gz" "$dest/hls.light.min.js.gz"
  echo "web/pages/static/vendor holds hls.js $version as npm ships it"
else
  mkdir -p "$dest"
  cp "$work/out/hls.light.min.js" "$work/out/hls.js.LICENSE" "$work/out/hls.light.min.js.gz" "$dest/"
  echo "copied hls.js $version into $dest"
fi
