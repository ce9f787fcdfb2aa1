#!/usr/bin/env bash
# Crash safety under load (tests/crash/README.md): cycles of bench load, kill -9 of the server at
# a random moment, restart on the same data dir, and verification of everything acknowledged.
# Needs a build (BUILD_DIR, default build) and Node >= 20. Extra arguments go to crash.mjs,
# e.g. ./scripts/crash.sh --cycles 100 --seed 42. Exit status 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
exec node tests/crash/crash.mjs --bin "$BUILD_DIR/magpie" --bench "$BUILD_DIR/bench/magpie-bench" "$@"
