#!/usr/bin/env bash
# Side-by-side cost of one scrape: `pharos exporter` vs node_exporter 1.5 on this machine.
# Both run the same node collectors on 127.0.0.1; after WARMUP scrapes, N sequential scrapes are
# made with curl and the server process' CPU time (utime+stime from /proc/<pid>/stat) is divided by
# N; RSS is VmRSS (and the peak VmHWM) from /proc/<pid>/status after the scrapes.
# Usage: exporters/scripts/side_by_side.sh [N]   (PHAROS_BIN defaults to target/release/pharos)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000}
WARMUP=20
PHAROS_BIN=${PHAROS_BIN:-target/release/pharos}
NE_BIN=${NE_BIN:-/usr/bin/prometheus-node-exporter}
COLLECTORS=${COLLECTORS:-"cpu diskstats filefd filesystem loadavg meminfo netclass netdev os pressure sockstat stat time uname vmstat"}
TICK=$(getconf CLK_TCK)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }

measure() { # name pid port
  local name=$1 pid=$2 p=$3 i before after
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$p/metrics" && break; sleep 0.1; done
  for i in $(seq $WARMUP); do curl -sf -o /dev/null "http://127.0.0.1:$p/metrics"; done
  local lines; lines=$(curl -sf "http://127.0.0.1:$p/metrics" | grep -vc '^#')
  before=$(cpu_ticks "$pid")
  for i in $(seq "$N"); do curl -sf -o /dev/null "http://127.0.0.1:$p/metrics"; done
  after=$(cpu_ticks "$pid")
  awk -v n="$name" -v t=$((after - before)) -v hz="$TICK" -v N="$N" -v rss="$(status_kb "$pid" VmRSS)" \
      -v hwm="$(status_kb "$pid" VmHWM)" -v s="$lines" \
      'BEGIN { printf "%-14s %8.2f ms CPU/scrape  VmRSS %6.1f MiB  VmHWM %6.1f MiB  %5d samples\n", n, t*1000/hz/N, rss/1024, hwm/1024, s }'
}

p1=$(port); flags=(--collector.disable-defaults)
for c in $COLLECTORS; do flags+=("--collector.$c"); done
"$NE_BIN" --web.listen-address="127.0.0.1:$p1" "${flags[@]}" >/dev/null 2>&1 & ne=$!
p2=$(port)
"$PHAROS_BIN" exporter --web.listen-address="127.0.0.1:$p2" "${flags[@]}" >/dev/null 2>&1 & ph=$!
trap 'kill $ne $ph 2>/dev/null || true' EXIT
echo "$N scrapes each, collectors: $COLLECTORS"
measure node_exporter "$ne" "$p1"
measure pharos "$ph" "$p2"
