#!/usr/bin/env bash
# Roost, Prosody and ejabberd side by side under the same load, in one run, plus the raw TCP relay
# (the machine's ceiling) and a tsung cross-check. Prints markdown tables for BENCHMARKS.md.
#   bench/compare.sh        the whole comparison
#   bench/compare.sh pep    only PEP (XEP-0163) notification fan-out: PUBLISHERS=10 publishers with
#                           SUBSCRIBERS=10 subscribers each (caps +notify; PEP_SUBSCRIBE=explicit for
#                           pubsub subscriptions), at PEP_RATE=200 publishes/s and at saturation, for
#                           PEP_DURATION=10s; prints notifications/s and latencies for each server
# Environment: USERS=20 (chat, login, presence), IDLE=2000 (idle sessions for the memory row),
# TSUNG_USERS=100 and TSUNG_LOOPS=30 (TSUNG_USERS=0 skips tsung), STARTS=3 (start-up samples).
# Needs root: installs prosody, ejabberd and tsung from Debian when missing (tests/peers/peers.sh).
# Loopback only; every load is bounded in time; all three servers use STARTTLS and PLAIN. Roost's
# per-address connection limit is raised to let IDLE sessions in from 127.0.0.1, as the peers have none.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-20} IDLE=${IDLE:-2000} TSUNG_USERS=${TSUNG_USERS:-100} TSUNG_LOOPS=${TSUNG_LOOPS:-30}
STARTS=${STARTS:-3}
MODE=${1:-all}
PUBLISHERS=${PUBLISHERS:-10} SUBSCRIBERS=${SUBSCRIBERS:-10} PEP_RATE=${PEP_RATE:-200}
PEP_DURATION=${PEP_DURATION:-10s} PEP_SUBSCRIBE=${PEP_SUBSCRIBE:-caps}
case $MODE in
  all) ACCOUNTS=$(printf '%s\n' "$USERS" "$IDLE" "$TSUNG_USERS" | sort -n | tail -1) ;;
  pep) ACCOUNTS=$((PUBLISHERS * (SUBSCRIBERS + 1))) IDLE=$ACCOUNTS ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
PEERS=${PEERS:-tests/peers/peers.sh}
W=$(mktemp -d /tmp/roost-compare.XXXX)
ulimit -n "$(ulimit -Hn)"   # every server and the load tool: IDLE sessions need 2 descriptors each
log() { echo "compare: $*" >&2; }

$PEERS install
go build -trimpath -ldflags "-s -w" -o "$W/roost" .
cat >"$W/c.json" <<JSON
{"log_level":"warn","data_dir":"$W/data","listen":{"c2s":"127.0.0.1:35522","c2s_tls":"","dtls":""},
 "limits":{"connections_per_ip":$((IDLE + 200)),"sessions_per_user":64}}
JSON
"$W/roost" init -config "$W/c.json" >/dev/null
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
# The peers are shared with the interop tests (tests/testutil LockPeers): one user at a time.
exec 9>/tmp/roost-peers-test.lock
flock 9
waitport() { local i; for ((i = 0; i < $2 * 100; i++)); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.01; done; return 1; }
now_ms() { date +%s%3N; }

cpu_ms() { awk '{print ($14+$15)*1000/'"$(getconf CLK_TCK)"'}' "/proc/$1/stat" 2>/dev/null || echo 0; }
field() { sed -n 's/.*"'"$2"'":\([0-9.e+-]*\).*/\1/p' <<<"$1"; }

if [ "$MODE" = pep ]; then
  declare -A V
  roost_start
  # From a clean state: subscriptions left by an earlier run (an explicit one above all: Prosody
  # 0.12 then notifies the bare JID besides the +notify resource) would change what is measured.
  $PEERS wipe prosody; $PEERS start prosody; $PEERS users prosody "$ACCOUNTS"
  $PEERS wipe ejabberd; $PEERS start ejabberd; $PEERS users ejabberd "$ACCOUNTS"
  pep_run() { # name target domain pid rate
    local b=(-target "$2" -domain "$3" -scenario pep -users "$PUBLISHERS" -subscribers "$SUBSCRIBERS"
      -pep-subscribe "$PEP_SUBSCRIBE" -duration "$PEP_DURATION" -rate "$5") c0 c1 out
    c0=$(cpu_ms "$4")
    timeout 300 "$W/roost" bench "${b[@]}" >"$W/pep.out" 2>"$W/pep.err" || true
    c1=$(cpu_ms "$4")
    out=$(tail -1 "$W/pep.out")
    grep -h '^error: ' "$W/pep.out" | sed "s/^/compare: $1 (rate $5): /" >&2 || true
    [ -n "$out" ] || log "$1: pep run failed: $(tail -1 "$W/pep.err")"
    V[$1.$5.n]=$(field "$out" throughput_per_s) V[$1.$5.acks]=$(field "$out" acked_per_s)
    V[$1.$5.p50]=$(field "$out" p50_ms) V[$1.$5.p99]=$(field "$out" p99_ms) V[$1.$5.err]=$(field "$out" errors)
    local sent; sent=$(field "$out" sent)
    V[$1.$5.ok]="$(field "$out" received)/$(( ${sent:-0} * SUBSCRIBERS ))"
    V[$1.$5.cpu]=$(awk "BEGIN{r=$(field "$out" received)+0; printf \"%.0f\", ($c1-$c0)*10000/(r>0?r:1)}")
  }
  for s in "Roost 127.0.0.1:35522 localhost $ROOST_PID" \
    "Prosody 127.0.0.1:16222 prosody.test $($PEERS pid prosody)" \
    "ejabberd 127.0.0.1:26222 ejabberd.test $($PEERS pid ejabberd)"; do
    set -- $s
    log "$1: pep at $PEP_RATE publishes/s, then at saturation"
    pep_run "$1" "$2" "$3" "$4" "$PEP_RATE"
    pep_run "$1" "$2" "$3" "$4" 0
  done
  f() { printf '%.0f' "${1:-0}"; }
  echo "| PEP, $PUBLISHERS publishers x $SUBSCRIBERS subscribers ($PEP_SUBSCRIBE), $PEP_DURATION | Roost | Prosody | ejabberd | Roost vs Prosody |"
  echo "|---|---|---|---|---|"
  vs() { awk -v r="${V[Roost.$1]:-0}" -v p="${V[Prosody.$1]:-0}" -v how="$2" 'BEGIN{ if (how == "x") exit; if (how == "higher") x = p > 0 ? r / p : 0; else x = r > 0 ? p / r : 0; printf "%.1f×", x }'; }
  row() { printf '| %s | %s | %s | %s | %s |\n' "$1" "${V[Roost.$2]:-failed}" "${V[Prosody.$2]:-failed}" "${V[ejabberd.$2]:-failed}" "$(vs "$2" "$3")"; }
  for n in Roost Prosody ejabberd; do
    V[$n.0.n]=$(f "${V[$n.0.n]}") V[$n.0.acks]=$(f "${V[$n.0.acks]}") V[$n.errs]="${V[$n.$PEP_RATE.err]:-?}, ${V[$n.0.err]:-?}"
  done
  row "notifications/s at saturation" 0.n higher
  row "publishes acknowledged/s at saturation" 0.acks higher
  row "server CPU ms per 10,000 notifications (saturation)" 0.cpu lower
  row "at $PEP_RATE publishes/s: publish→notification p50 ms" $PEP_RATE.p50 lower
  row "at $PEP_RATE publishes/s: p99 ms" $PEP_RATE.p99 lower
  row "delivered/expected at $PEP_RATE/s" $PEP_RATE.ok x
  row "delivered/expected at saturation" 0.ok x
  row "errors at $PEP_RATE/s, at saturation (causes on stderr)" errs x
  echo
  echo "Target (issue 16): Roost at least 10× Prosody's notifications/s: $(vs 0.n higher)."
  exit 0
fi

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
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
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
