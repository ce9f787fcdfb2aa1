#!/usr/bin/env bash
# Install dependencies, build, and start Magpie with embedded storage on the default ports
# (TCP 5100, WebSocket 5200, HTTP API 5001, data in ./magpie-data). Extra arguments are
# passed to the server, e.g. ./scripts/run.sh --tokenAuthOn=true
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh
exec "${BUILD_DIR:-build}/magpie" "$@"
