#!/usr/bin/env bash
# Build the libFuzzer targets (tests/fuzz) with clang into ${FUZZ_BUILD_DIR:-build-fuzz} and run
# each for SECONDS (default 30) on a scratch copy of its seed corpus (tests/fuzz/corpus/<name>),
# so new inputs never land in the repository. Fails if any target crashes, leaks or trips a
# sanitizer; the crashing input is kept in the scratch directory and its path printed.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (targets without the fuzz_ prefix)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}
shift || true
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
WORK=${FUZZ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/magpie-fuzz.XXXXXX")}

cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DMAGPIE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"

if [ $# -gt 0 ]; then targets=("$@"); else
  targets=()
  for f in tests/fuzz/fuzz_*.c; do n=$(basename "$f" .c); targets+=("${n#fuzz_}"); done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for t in "${targets[@]}"; do
  corpus="$WORK/$t/corpus" artifacts="$WORK/$t/artifacts/"
  mkdir -p "$corpus" "$artifacts"
  [ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$corpus/"
  echo "== fuzz_$t: ${SECS}s, seeds $(find "tests/fuzz/corpus/$t" -type f 2>/dev/null | wc -l) =="
  # One in-process job (no -jobs/-workers: those fork and write fuzz-N.log into the cwd).
  if "$BUILD/tests/fuzz/fuzz_$t" "$corpus" -max_total_time="$SECS" \
      -artifact_prefix="$artifacts" -print_final_stats=1 -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      >"$WORK/$t/log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$WORK/$t/log" | tr '\n' ' '
    echo "corpus: $(find "$corpus" -type f | wc -l) files"
  else
    tail -n 40 "$WORK/$t/log"
    echo "fuzz_$t FAILED; input(s): $(ls "$artifacts" 2>/dev/null | tr '\n' ' ') in $artifacts"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failing targets: ${failed[*]} (logs in $WORK)"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${SECS}s without a crash (logs in $WORK)"
