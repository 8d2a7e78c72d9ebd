#!/usr/bin/env bash
# Edge figures for BENCHMARKS.md: release binary sizes, start-up time (exec to accepting on 5222,
# median of STARTS), RSS at idle with no sessions, and what ten sessions changing presence every
# 10 s write to disk over WRITES (default 10m; the issue's hour takes WRITES=1h).
#   bench/edge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STARTS=${STARTS:-20} WRITES=${WRITES:-10m}
./build.sh dist
bin=$(ls dist/roost-*-linux-amd64)
W=$(mktemp -d /tmp/roost-edge.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
waitport() { local i; for ((i = 0; i < 2000; i++)); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.001; done; return 1; }
# The README's command: the embedded config (5222, 5223, 5684) in an empty directory. The first
# start also generates the certificate; it is reported on its own.
cd "$W"
samples=()
for ((i = 0; i <= STARTS; i++)); do
  t0=$(date +%s%N)
  "$OLDPWD/$bin" run 2>>"$W/log" &
  pid=$!
  waitport 5222
  t1=$(date +%s%N)
  if [ "$i" -eq 0 ]; then first=$(( (t1 - t0) / 1000 )); else samples+=($(( (t1 - t0) / 1000 ))); fi
  if [ "$i" -eq "$STARTS" ]; then sleep 2; rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status); fi
  kill "$pid"; wait "$pid" || true
done
cd "$OLDPWD"
median=$(printf '%s\n' "${samples[@]}" | sort -n | sed -n "$(( (STARTS + 1) / 2 ))p")
echo "start-up (exec to accepting on 5222): first start, with certificate generation: $first µs; median of $STARTS later starts: $median µs (min $(printf '%s\n' "${samples[@]}" | sort -n | head -1), max $(printf '%s\n' "${samples[@]}" | sort -n | tail -1))"
echo "RSS at idle, no sessions, 2 s after start: $rss KiB"
ROOST_IDLE_WRITES=$WRITES go test -count=1 -timeout 0 -run TestPresenceWritesNothing -v ./tests/idle/ | grep -E "presence changes|PASS|FAIL|ok"
