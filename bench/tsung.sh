#!/usr/bin/env bash
# Cross-check with a load tool we did not write: Debian's tsung runs bench/tsung/chat.xml (STARTTLS,
# SASL PLAIN, bind, session, presence, roster, then one chat message a second per user to a random
# online user) against any XMPP server on loopback, and prints one summary line.
#   bench/tsung.sh HOST PORT DOMAIN [USERS=100] [LOOPS=30]
# Accounts user1..userUSERS with passwords pass1..passUSERS must exist. Every run is bounded:
# tsung's own load duration, and `timeout` around it.
set -euo pipefail
HOST=${1:?host} PORT=${2:?port} DOMAIN=${3:?domain} USERS=${4:-100} LOOPS=${5:-30}
HERE=$(cd "$(dirname "$0")" && pwd)
command -v tsung >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tsung >/dev/null; }
W=$(mktemp -d /tmp/roost-tsung.XXXX)
SECS=$(( LOOPS + 45 ))                       # 20 s of arrivals, the loops, then slack to finish
sed -e "s/@HOST@/$HOST/; s/@PORT@/$PORT/; s/@DOMAIN@/$DOMAIN/; s/@USERS@/$USERS/g" \
    -e "s/@ARRIVAL@/$(( USERS / 10 > 1 ? USERS / 10 : 1 ))/; s/@LOOPS@/$LOOPS/; s/@SECONDS@/$SECS/" \
    "$HERE/tsung/chat.xml" > "$W/chat.xml"
# tsung keeps state in $HOME/.tsung. No epmd (it would listen on every address) and Erlang
# distribution on loopback only; -n: no web dashboard.
export HOME=$W
export ERL_AFLAGS="-start_epmd false -erl_epmd_port 25480 -kernel inet_dist_use_interface {127,0,0,1}"
(cd "$W" && timeout $(( SECS + 60 )) tsung -n -f "$W/chat.xml" -l "$W/logs" start >"$W/tsung.out" 2>&1) || true
LOG=$(ls -d "$W"/logs/*/ | tail -1)tsung.log
[ -s "$LOG" ] || { echo "tsung wrote no log; see $W/tsung.out" >&2; exit 1; }
# tsung.log is a series of dumps. A sample line is "stats: NAME n mean stddev max min prev_mean
# prev_n" (the last interval, then everything before it; ms); a counter is "stats: NAME n total".
awk -v host="$HOST:$PORT" '
  /^stats:/ { v[$2] = $0 }
  function n(k,   f) { split(v[k], f, " "); return f[3] + f[9] }
  function mean(k,   f) { split(v[k], f, " "); return (f[3] + f[9]) ? (f[3]*f[4] + f[9]*f[8]) / (f[3] + f[9]) : 0 }
  function total(k,   f) { split(v[k], f, " "); return f[4] }
  END {
    errs = 0; for (k in v) if (k ~ /^error/) { errs += total(k); names = names " " k }
    printf "tsung %s: users %d, finished %d, login (STARTTLS+PLAIN+bind+session) mean %.1f ms, chat sent %d, received %d, delivery mean %.2f ms, max %.1f ms, errors %d%s\n",
      host, total("users_count"), total("finish_users_count"), mean("tr_auth"), n("tr_chat"),
      n("xmpp_msg_latency"), mean("xmpp_msg_latency"), (split(v["xmpp_msg_latency"], f, " ") ? f[6] : 0), errs, names
  }' "$LOG"
echo "log: $LOG"
