#!/usr/bin/env bash
# Soak: run magpie-bench's mixed workload against one server for MINUTES minutes at a fixed
# rate, sample the server's memory every minute, and check that it stays flat. Run by hand
# (tests/soak/README.md); CI does not run it.
#
#   tests/soak/soak.sh [MINUTES] [RATE]      # defaults: 60 minutes, 2000 SENDs/s
#
# Writes tests/soak/out/soak-<time>.csv (minute, RssAnon KiB, VmRSS KiB, RssFile KiB) and
# prints the bench report. Memory is judged on RssAnon, the server's own allocations:
# VmRSS also counts the LMDB pages mapped from the data file, which grow with the data by
# design. Exit status 0 when, after WARMUP_MIN minutes (default 5), every RssAnon sample is
# within TOLERANCE_PCT (default 5) percent of the first one, and the bench reported no
# lost, duplicated or failed message.
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES=${1:-60}
RATE=${2:-2000}
WARMUP_MIN=${WARMUP_MIN:-5}
TOLERANCE_PCT=${TOLERANCE_PCT:-5}
BUILD_DIR=${BUILD_DIR:-build}
OUT=tests/soak/out
mkdir -p "$OUT"
CSV="$OUT/soak-$(date -u +%Y%m%dT%H%M%SZ).csv"
DATA=$(mktemp -d /tmp/magpie-soak.XXXXXX)
PORTS=(--addr=127.0.0.1:16100 --wsAddr=127.0.0.1:16200 --httpAddr=127.0.0.1:16001 --manager.on=false --demo.on=false)

"$BUILD_DIR/magpie" "${PORTS[@]}" --dataDir="$DATA" --workers=2 >"$DATA/server.log" 2>&1 &
server=$!
bench=
cleanup() {
    [ -n "$bench" ] && kill "$bench" 2>/dev/null || true
    kill "$server" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:16001/health >/dev/null 2>&1 && break; sleep 0.1; done

kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$server/status"; }

"$BUILD_DIR/bench/magpie-bench" --addr 127.0.0.1:16100 --api http://127.0.0.1:16001 --server-pid "$server" \
    --workload mixed --rate "$RATE" --warmup 1 --duration $((MINUTES * 60)) --drain 10 --json \
    >"$OUT/bench.json" 2>"$OUT/bench.log" &
bench=$!

echo "minute,rss_anon_kib,vm_rss_kib,rss_file_kib" >"$CSV"
for m in $(seq 1 "$MINUTES"); do
    sleep 60
    kill -0 "$server" 2>/dev/null || { echo "server died at minute $m" >&2; exit 1; }
    line="$m,$(kib RssAnon),$(kib VmRSS),$(kib RssFile)"
    echo "$line" >>"$CSV"
    echo "minute $line"
done
set +e
wait "$bench"
bench_rc=$?
bench=
set -e
cat "$OUT/bench.json"

# Flat: every sample after the warm-up within TOLERANCE_PCT of the first one after it.
python3 - "$CSV" "$WARMUP_MIN" "$TOLERANCE_PCT" "$OUT/bench.json" "$bench_rc" <<'EOF'
import csv, json, sys
path, warm, tol, bench_path, rc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rows = [r for r in csv.DictReader(open(path)) if int(r["minute"]) > warm]
anon = [int(r["rss_anon_kib"]) for r in rows]
ok = True
if anon:
    base = anon[0]
    worst = max(abs(a - base) * 100.0 / base for a in anon)
    print(f"RssAnon after minute {warm}: first {base} KiB, min {min(anon)}, max {max(anon)}, "
          f"largest deviation {worst:.2f}% (limit {tol}%)")
    ok = worst <= tol
else:
    print("not enough samples after the warm-up")
    ok = False
j = json.loads(open(bench_path).read().strip().splitlines()[-1])
print(f"bench: {j['sends_per_s']:.0f} sends/s, {j['deliveries_per_s']:.0f} deliveries/s, "
      f"lost {j['lost']}, duplicated {j['duplicated']}, errors {j['errors']}, exit {rc}")
ok = ok and j["lost"] == 0 and j["duplicated"] == 0 and j["errors"] == 0 and rc == 0
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
EOF
