#!/bin/bash
# Closed loop at growing fleet sizes: calls/s, p99 and RSS per station, server on cpu0.
# usage: scale_bench.sh "SERVER_CMD {port}" LOADGEN_CMD... (the load command gets --url etc.)
#        SIZES="1000 5000 19000" (default)
set -u
server=$1; shift
sizes=${SIZES:-1000 5000 19000}
port=9800
printf "%-9s %9s %9s %8s %8s %14s\n" stations connected calls/s p99_ms rss_mb kb_per_station
for n in $sizes; do
  port=$((port+1)); cmd=${server//\{port\}/$port}
  taskset -c 0 bash -c "ulimit -n 20000; exec $cmd" >"/tmp/scale-$n.log" 2>&1 &
  spid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  sleep 1; base=$(awk '/VmRSS/{print $2}' /proc/$spid/status)
  taskset -c 1 "$@" --url "ws://127.0.0.1:$port/ocpp/{id}" --stations "$n" --duration 10 \
     --connect-rate 1000 --warmup 3 >"/tmp/scale-$n.json" 2>"/tmp/scale-$n.err" &
  lpid=$!
  sleep $((n / 1000 + 8)); rss=$(awk '/VmRSS/{print $2}' /proc/$spid/status)
  wait $lpid
  kill $spid 2>/dev/null; wait $spid 2>/dev/null
  python3 - "$n" "$base" "$rss" "/tmp/scale-$n.json" <<'PY'
import json, sys
n, base, rss, path = sys.argv[1:]
try:
    r = json.load(open(path))
    per = (int(rss) - int(base)) / max(1, r["connected"])
    print(f"{n:<9} {r['connected']:>9} {r['rate_per_s']:>9} {r['p99_ms']!s:>8} {int(rss)/1024:>8.0f} {per:>14.1f}")
except Exception as e:
    print(f"{n:<9} failed: {e}")
PY
done
