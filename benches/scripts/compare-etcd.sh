#!/usr/bin/env bash
# Measures flotilla and a 3-member etcd cluster on this machine with the
# same workload: 128 B puts to uniformly chosen keys out of 100,000, every
# write synced on a quorum, at 64, 256, 1024 and 4096 requests in flight
# (CONCURRENCY), RUNS runs each; prints the median of each. Needs Debian's
# etcd-server and etcd-client packages and the release binaries:
#   cargo build --release -p flotilla-server --bin flotilla
#   (cd benches/etcd-load && cargo build --release)
# Usage: benches/scripts/compare-etcd.sh  (env: RUNS, DURATION, REGIONS,
# CONCURRENCY, FLOTILLA, ETCD_LOAD, OUT)
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-20s}
REGIONS=${REGIONS:-64}
CONCURRENCY=${CONCURRENCY:-64 256 1024 4096}
FLOTILLA=${FLOTILLA:-target/release/flotilla}
ETCD_LOAD=${ETCD_LOAD:-benches/etcd-load/target/release/etcd-load}
OUT=${OUT:-target/compare}
mkdir -p "$OUT"
DATA=$(mktemp -d)
trap 'pkill -f "etcd --name bench-m" || true; rm -rf "$DATA"' EXIT

cluster="bench-m1=http://127.0.0.1:2380,bench-m2=http://127.0.0.1:22380,bench-m3=http://127.0.0.1:32380"
start_etcd() {
  rm -rf "$DATA"/m*
  for i in 1 2 3; do
    local c=$(( i == 1 ? 2379 : (i == 2 ? 22379 : 32379) ))
    local p=$(( c + 1 ))
    etcd --name "bench-m$i" --data-dir "$DATA/m$i" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench \
      --log-level error > "$DATA/m$i.log" 2>&1 &
  done
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 \
      endpoint health > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "etcd did not come up" >&2; exit 1
}
stop_etcd() { pkill -f "etcd --name bench-m" || true; sleep 1; }

for c in $CONCURRENCY; do
  : > "$OUT/etcd-$c.jsonl"; : > "$OUT/flotilla-$c.jsonl"
  for r in $(seq "$RUNS"); do
    start_etcd
    "$ETCD_LOAD" --concurrency "$c" --duration "$DURATION" >> "$OUT/etcd-$c.jsonl"
    stop_etcd
    "$FLOTILLA" bench --regions "$REGIONS" --concurrency "$c" --duration "$DURATION" \
      --keys 100000 --value-bytes 128 --quiet --json "$OUT/flotilla-$c-$r.json" > /dev/null
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' \
      "$OUT/flotilla-$c-$r.json" >> "$OUT/flotilla-$c.jsonl"
  done
done

python3 - "$OUT" $CONCURRENCY <<'PY'
import json, statistics, sys
out = sys.argv[1]
print(f"{'in flight':>9} {'etcd puts/s':>12} {'etcd p99 ms':>12} {'flotilla puts/s':>16} {'flotilla p99 ms':>16} {'ratio':>6}")
for c in map(int, sys.argv[2:]):
    e = [json.loads(l) for l in open(f"{out}/etcd-{c}.jsonl")]
    f = [json.loads(l) for l in open(f"{out}/flotilla-{c}.jsonl")]
    med = lambda rows, k: statistics.median(r[k] for r in rows)
    eo, fo = med(e, "ops_per_sec"), med(f, "ops_per_sec")
    print(f"{c:>9} {eo:>12.0f} {med(e, 'p99_ms'):>12.1f} {fo:>16.0f} {med(f, 'p99_ms'):>16.1f} {fo / eo:>5.1f}x")
PY
