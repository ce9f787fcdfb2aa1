#!/usr/bin/env bash
# Configure and build into ${BUILD_DIR:-build}. MAGPIE_SANITIZE=1 builds with ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
SAN=OFF
[ "${MAGPIE_SANITIZE:-0}" = "1" ] && SAN=ON
cmake -S . -B "$BUILD_DIR" -DMAGPIE_SANITIZE=$SAN >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
