#!/usr/bin/env bash
# Roost, Prosody and ejabberd side by side under the same load, in one run, plus the raw TCP relay
# (the machine's ceiling) and a tsung cross-check. Prints markdown tables for BENCHMARKS.md.
#   bench/compare.sh
# Environment: USERS=20 (chat, login, presence), IDLE=2000 (idle sessions for the memory row),
# TSUNG_USERS=100 and TSUNG_LOOPS=30 (TSUNG_USERS=0 skips tsung), STARTS=3 (start-up samples).
# Needs root: installs prosody, ejabberd and tsung from Debian when missing (tests/peers/peers.sh).
# Loopback only; every load is bounded in time; all three servers use STARTTLS and PLAIN. Roost's
# per-address connection limit is raised to let IDLE sessions in from 127.0.0.1, as the peers have none.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-20} IDLE=${IDLE:-2000} TSUNG_USERS=${TSUNG_USERS:-100} TSUNG_LOOPS=${TSUNG_LOOPS:-30}
STARTS=${STARTS:-3}
ACCOUNTS=$(printf '%s\n' "$USERS" "$IDLE" "$TSUNG_USERS" | sort -n | tail -1)
PEERS=tests/peers/peers.sh
W=$(mktemp -d /tmp/roost-compare.XXXX)
ulimit -n "$(ulimit -Hn)"   # every server and the load tool: IDLE sessions need 2 descriptors each
log() { echo "compare: $*" >&2; }

$PEERS install
go build -trimpath -ldflags "-s -w" -o "$W/roost" .
cat >"$W/c.json" <<JSON
{"log_level":"warn","data_dir":"$W/data","listen":{"c2s":"127.0.0.1:35522","c2s_tls":"","dtls":""},
 "limits":{"connections_per_ip":$((IDLE + 200)),"sessions_per_user":64}}
JSON
log "registering $ACCOUNTS accounts on Roost"
for i in $(seq 1 "$ACCOUNTS"); do echo "pass$i"; done |
  xargs -P 4 -I{} sh -c 'n=${1#pass}; echo "$1" | "$2/roost" user add -config "$2/c.json" "user$n@localhost" >/dev/null' _ {} "$W"

ROOST_PID=
roost_start() { "$W/roost" run -config "$W/c.json" 2>>"$W/roost.log" & ROOST_PID=$!; waitport 35522 20; }
roost_stop() { [ -n "$ROOST_PID" ] && kill "$ROOST_PID" 2>/dev/null && wait "$ROOST_PID" 2>/dev/null; ROOST_PID=; }
RELAY_PID=
cleanup() {
  roost_stop || true
  [ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null
  $PEERS stop prosody; $PEERS stop ejabberd
}
trap cleanup EXIT
waitport() { local i; for ((i = 0; i < $2 * 100; i++)); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.01; done; return 1; }
now_ms() { date +%s%3N; }

# Start-up: from exec to the c2s port accepting, median of STARTS; the server is left running.
# (Not in a $(...): the server started inside would hold the substitution open.)
declare -A V
startup() { # name start-cmd stop-cmd port
  local i t0 s=()
  for ((i = 1; i <= STARTS; i++)); do
    t0=$(now_ms); $2 >/dev/null; waitport "$4" 60; s+=($(( $(now_ms) - t0 )))
    if [ "$i" -lt "$STARTS" ]; then $3; sleep 0.5; fi
  done
  V[$1.start]=$(printf '%s\n' "${s[@]}" | sort -n | sed -n "$(( (STARTS + 1) / 2 ))p")
}
startup Roost roost_start roost_stop 35522
log "Roost up in ${V[Roost.start]} ms"
startup Prosody "$PEERS start prosody" "$PEERS stop prosody" 16222
log "Prosody up in ${V[Prosody.start]} ms; registering $ACCOUNTS accounts"
$PEERS users prosody "$ACCOUNTS"
startup ejabberd "$PEERS start ejabberd" "$PEERS stop ejabberd" 26222
log "ejabberd up in ${V[ejabberd.start]} ms; registering $ACCOUNTS accounts"
$PEERS users ejabberd "$ACCOUNTS"

# A server that died reads as 0 (and its row shows it) rather than ending the whole run.
cpu_ms() { awk '{print ($14+$15)*1000/'"$(getconf CLK_TCK)"'}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
field() { sed -n 's/.*"'"$2"'":\([0-9.e+-]*\).*/\1/p' <<<"$1"; }
bench() { timeout 300 "$W/roost" bench "$@" 2>/dev/null | tail -1; }

measure() { # name target domain pid
  local n=$1 b=(-target "$2" -domain "$3") pid=$4 out c0 c1 r0
  log "$n: $IDLE idle sessions"
  r0=$(rss_kib "$pid")
  timeout 400 "$W/roost" bench "${b[@]}" -users "$IDLE" -scenario idle -duration 20s >"$W/idle.out" 2>"$W/idle.err" &
  local ip=$! i
  for ((i = 0; i < 3000; i++)); do grep -q "sessions open" "$W/idle.err" && break; kill -0 $ip 2>/dev/null || break; sleep 0.1; done
  sleep 12 # settled: each server has had time to collect the logins' garbage
  V[$n.rss0]=$r0 V[$n.rss1]=$(rss_kib "$pid")
  wait $ip || log "$n: idle run failed: $(tail -1 "$W/idle.err")"
  V[$n.idle]=$(field "$(tail -1 "$W/idle.out")" logins)
  V[$n.idle]=${V[$n.idle]:-0}
  V[$n.kib]=$(awk -v a="${V[$n.rss1]}" -v b="$r0" -v n="${V[$n.idle]}" 'BEGIN{if (n > 0) printf "%.1f", (a - b) / n; else print "failed"}')
  sleep 2
  log "$n: chat"
  out=$(bench "${b[@]}" -users "$USERS" -scenario chat -duration 5s -rate 2000)
  V[$n.p50]=$(field "$out" p50_ms) V[$n.p99]=$(field "$out" p99_ms) V[$n.fixed_ok]="$(field "$out" received)/$(field "$out" sent)"
  c0=$(cpu_ms "$pid")
  out=$(bench "${b[@]}" -users "$USERS" -scenario chat -duration 5s)
  c1=$(cpu_ms "$pid")
  V[$n.sat]=$(field "$out" throughput_per_s) V[$n.sat_ok]="$(field "$out" received)/$(field "$out" sent)"
  V[$n.cpu]=$(awk "BEGIN{r=$(field "$out" received); printf \"%.0f\", ($c1-$c0)*10000/(r>0?r:1)}")
  log "$n: logins"
  out=$(bench "${b[@]}" -users "$USERS" -scenario login -duration 3s)
  V[$n.login]=$(field "$out" throughput_per_s)
  log "$n: presence"
  out=$(bench "${b[@]}" -users "$USERS" -contacts 5 -scenario presence -duration 5s -rate 500)
  V[$n.pp99]=$(field "$out" p99_ms) V[$n.pres_ok]="$(field "$out" received)/$(field "$out" sent)"
  out=$(bench "${b[@]}" -users "$USERS" -contacts 5 -scenario presence -duration 5s)
  V[$n.psat]=$(field "$out" throughput_per_s)
  if [ "$TSUNG_USERS" -gt 0 ]; then
    log "$n: tsung, then the same load from roost bench"
    V[$n.tsung]=$(timeout 600 bench/tsung.sh "${2%:*}" "${2#*:}" "$3" "$TSUNG_USERS" "$TSUNG_LOOPS" | sed -n 1p | sed 's/^tsung [^:]*: //')
    out=$(bench "${b[@]}" -users "$TSUNG_USERS" -scenario chat -duration "${TSUNG_LOOPS}s" -rate "$TSUNG_USERS")
    V[$n.own]="sent $(field "$out" sent), received $(field "$out" received), delivery mean $(awk "BEGIN{printf \"%.2f\", $(field "$out" mean_ms)}") ms, p99 $(field "$out" p99_ms) ms, errors $(field "$out" errors)"
  fi
}
measure Roost 127.0.0.1:35522 localhost "$ROOST_PID"
measure Prosody 127.0.0.1:16222 prosody.test "$($PEERS pid prosody)"
measure ejabberd 127.0.0.1:26222 ejabberd.test "$($PEERS pid ejabberd)"

log "raw relay"
"$W/roost" bench relay -listen 127.0.0.1:35599 2>/dev/null & RELAY_PID=$!
waitport 35599 10
out=$(bench -raw -target 127.0.0.1:35599 -users "$USERS" -scenario chat -duration 5s -rate 2000)
V[relay.p50]=$(field "$out" p50_ms) V[relay.p99]=$(field "$out" p99_ms)
c0=$(cpu_ms "$RELAY_PID")
out=$(bench -raw -target 127.0.0.1:35599 -users "$USERS" -scenario chat -duration 5s)
c1=$(cpu_ms "$RELAY_PID")
V[relay.sat]=$(field "$out" throughput_per_s) V[relay.sat_ok]="$(field "$out" received)/$(field "$out" sent)"
V[relay.cpu]=$(awk "BEGIN{r=$(field "$out" received); printf \"%.0f\", ($c1-$c0)*10000/(r>0?r:1)}")

f0() { awk "BEGIN{printf \"%.0f\", $1}"; }
echo "| | Roost | Prosody | ejabberd | Roost vs best peer | raw relay |"
echo "|---|---|---|---|---|---|"
ratio() { # key higher|lower
  local p=${V[Prosody.$1]} e=${V[ejabberd.$1]} r=${V[Roost.$1]}
  awk -v r="$r" -v p="$p" -v e="$e" -v how="$2" 'BEGIN{
    if (how == "higher") { b = p > e ? p : e; w = p > e ? "Prosody" : "ejabberd" } else { b = p < e ? p : e; w = p < e ? "Prosody" : "ejabberd" }
    printf "%.2f× %s", (b > 0 ? r / b : 0), w }'
}
row() { # label key how fmt relay
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(printf "$4" "${V[Roost.$2]}")" "$(printf "$4" "${V[Prosody.$2]}")" \
    "$(printf "$4" "${V[ejabberd.$2]}")" "$(ratio "$2" "$3")" "${5:-}"
}
row "chat msgs/s at saturation ($USERS users)" sat higher '%.0f' "$(f0 "${V[relay.sat]}")"
row "chat at 2,000/s: p99 ms" p99 lower '%s' "${V[relay.p99]}"
row "chat at 2,000/s: p50 ms" p50 lower '%s' "${V[relay.p50]}"
row "server CPU ms per 10,000 messages (saturation)" cpu lower '%s' "${V[relay.cpu]}"
row "KiB RSS per idle session ($IDLE, STARTTLS)" kib lower '%s'
row "logins/s (STARTTLS+PLAIN+bind+presence, 8 at a time)" login higher '%.0f'
row "presence deliveries/s at saturation (5 contacts)" psat higher '%.0f'
row "presence at 500 changes/s: p99 ms" pp99 lower '%s'
row "start-up ms (exec to c2s port open, median of $STARTS)" start lower '%s'
echo
echo "Delivered/sent: chat at 2,000/s Roost ${V[Roost.fixed_ok]}, Prosody ${V[Prosody.fixed_ok]}, ejabberd ${V[ejabberd.fixed_ok]};" \
  "saturation Roost ${V[Roost.sat_ok]}, Prosody ${V[Prosody.sat_ok]}, ejabberd ${V[ejabberd.sat_ok]}, relay ${V[relay.sat_ok]};" \
  "presence deliveries/changes at 500/s Roost ${V[Roost.pres_ok]}, Prosody ${V[Prosody.pres_ok]}, ejabberd ${V[ejabberd.pres_ok]}."
echo "RSS before → with $IDLE idle sessions: Roost ${V[Roost.rss0]} → ${V[Roost.rss1]} KiB (${V[Roost.idle]} open)," \
  "Prosody ${V[Prosody.rss0]} → ${V[Prosody.rss1]} KiB (${V[Prosody.idle]} open), ejabberd ${V[ejabberd.rss0]} → ${V[ejabberd.rss1]} KiB (${V[ejabberd.idle]} open)."
if [ "$TSUNG_USERS" -gt 0 ]; then
  echo
  echo "| $TSUNG_USERS users, one message/s each | tsung 1.7 (bench/tsung.sh) | roost bench, same users and rate |"
  echo "|---|---|---|"
  for n in Roost Prosody ejabberd; do echo "| $n | ${V[$n.tsung]} | ${V[$n.own]} |"; done
fi
