#!/usr/bin/env bash
# Roost, Prosody and ejabberd side by side under the same load (roost bench), one run.
#   bench/compare.sh                 USERS=20 by default; PEERS=../shared/peers (the peers' configs)
# Needs root: installs prosody and ejabberd from Debian when missing. Loopback only; every load is
# bounded in time. Prints a markdown table: latency at a fixed rate, messages/s at saturation,
# logins/s, server CPU ms per 10,000 delivered messages, server RSS with USERS idle sessions.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-20}
H=$(cd "${PEERS:-../shared/peers}" && pwd)
W=$(mktemp -d /tmp/roost-compare.XXXX)

need=()
command -v prosody >/dev/null || need+=(prosody lua-unbound)
command -v ejabberdctl >/dev/null || need+=(ejabberd)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

go build -trimpath -ldflags "-s -w" -o "$W/roost" .
cat > "$W/c.json" <<EOF
{"log_level":"warn","data_dir":"$W/data","listen":{"c2s":"127.0.0.1:35522","c2s_tls":"","dtls":""}}
EOF
for i in $(seq 1 "$USERS"); do echo "pass$i" | "$W/roost" user add -config "$W/c.json" "user$i@localhost" >/dev/null; done
"$W/roost" run -config "$W/c.json" 2>"$W/roost.log" &
ROOST_PID=$!
cleanup() {
  kill "$ROOST_PID" 2>/dev/null || true
  "$H/peers.sh" stop prosody >/dev/null 2>&1 || true
  "$H/peers.sh" stop ejabberd >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$H/peers.sh" start prosody >/dev/null
"$H/register_users.sh" prosody "$USERS" >/dev/null
"$H/peers.sh" start ejabberd >/dev/null
"$H/register_users.sh" ejabberd "$USERS" >/dev/null
sleep 1

cpu_ms() { awk '{print ($14+$15)*1000/'"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
field() { sed -n 's/.*"'"$2"'":\([0-9.]*\).*/\1/p' <<<"$1"; }

row() { # name target domain pid
  local name=$1 target=$2 domain=$3 pid=$4 b="$W/roost bench -target $2 -domain $3 -users $USERS"
  local fixed sat login idle c0 c1 r0 r1
  fixed=$($b -scenario chat -duration 5s -rate 2000 2>/dev/null | tail -1)
  c0=$(cpu_ms "$pid")
  sat=$($b -scenario chat -duration 5s 2>/dev/null | tail -1)
  c1=$(cpu_ms "$pid")
  login=$($b -scenario login -duration 3s 2>/dev/null | tail -1)
  r0=$(rss_kib "$pid")
  $b -scenario idle -duration 4s >/dev/null 2>&1 &
  local idle=$!
  sleep 3; r1=$(rss_kib "$pid"); wait "$idle" || true
  local recv; recv=$(field "$sat" received)
  printf '| %s | %s / %s | %.0f | %.0f | %.0f | %s → %s KiB |\n' "$name" \
    "$(field "$fixed" p50_ms)" "$(field "$fixed" p99_ms)" "$(field "$sat" throughput_per_s)" \
    "$(field "$login" throughput_per_s)" "$(awk "BEGIN{print ($c1-$c0)*10000/($recv>0?$recv:1)}")" "$r0" "$r1"
}

echo "| server | chat at 2,000/s p50 / p99 ms | chat msgs/s at saturation | logins/s | server CPU ms per 10k msgs | RSS idle → $USERS sessions |"
echo "|---|---|---|---|---|---|"
row Roost 127.0.0.1:35522 localhost "$ROOST_PID"
row Prosody 127.0.0.1:15222 peer.test "$(cat /tmp/peers/prosody/prosody.pid)"
row ejabberd 127.0.0.1:25222 ej.test "$(cat /tmp/peers/ejabberd/ejabberd.pid)"
