#!/usr/bin/env bash
# Configure and build into ${BUILD_DIR:-build}. MAGPIE_SANITIZE=1 builds with ASan+UBSan.
# Then bundle the official JS SDK for the chat demo (web/, npm ci + esbuild) unless the bundle
# is already newer than web/package-lock.json; without npm the server still builds and the
# demo page says the bundle is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
SAN=OFF
[ "${MAGPIE_SANITIZE:-0}" = "1" ] && SAN=ON
cmake -S . -B "$BUILD_DIR" -DMAGPIE_SANITIZE=$SAN >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
BUNDLE=web/demo/vendor/wksdk.js
if [ ! "$BUNDLE" -nt web/package-lock.json ] || [ ! "$BUNDLE" -nt web/build.mjs ]; then
  if command -v npm >/dev/null 2>&1 &&
     (cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs); then
    :
  else
    echo "warning: could not bundle the JS SDK for the chat demo ($BUNDLE); the server is built" >&2
  fi
fi
