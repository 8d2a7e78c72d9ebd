#!/usr/bin/env bash
# Real Prosody and ejabberd from Debian's packages, on loopback, for Roost's side-by-side benchmarks
# and interop tests. Our own configs, written fresh under $PEERS_DIR on every start; not the system
# services (nothing on the packages' default ports).
#   tests/peers/peers.sh install                       apt-get the packages when missing
#   tests/peers/peers.sh start|stop|pid prosody|ejabberd
#   tests/peers/peers.sh users prosody|ejabberd N      accounts user1..userN, passwords pass1..passN
#   tests/peers/peers.sh wipe prosody|ejabberd         stop it and forget its accounts, rosters, messages
#
#            domain          c2s (STARTTLS offered)  s2s             XEP-0114 component
#   Prosody  prosody.test    127.0.0.1:16222         16269           gw.prosody.test:16347 (secret gwsecret)
#   ejabberd ejabberd.test   127.0.0.1:26222         26269           gw.ejabberd.test:26347 (secret gwsecret)
# Both: self-signed certificates, PLAIN allowed (over TLS; and on plaintext, as tsung's default
# scenario needs), no rate limits or shapers, logs at warning. ejabberd's Erlang distribution is on
# 127.0.0.1:26470 with no epmd. PEERS_LOG=info for more detail.
# XEP-0198 stream management on client streams as Debian's own configs have it (Prosody's smacks,
# ejabberd's mod_stream_mgmt with resend_on_timeout: if_offline); PEERS_RESUME_TIMEOUT=seconds
# shortens how long a dropped session waits for resumption (defaults: Prosody 600, ejabberd 300).
set -euo pipefail
D=${PEERS_DIR:-/tmp/roost-peers}
LOG=${PEERS_LOG:-warn}
P=$D/prosody E=$D/ejabberd

waitport() { # port seconds
  local i
  for ((i = 0; i < $2 * 20; i++)); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done
  echo "peers: port $1 not listening after $2 s (logs in $D)" >&2; return 1
}

cert() { # dir domain owner
  mkdir -p "$1/certs"
  [ -s "$1/certs/$2.pem" ] || {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
      -addext "subjectAltName=DNS:$2,DNS:*.$2" -keyout "$1/certs/$2.key" -out "$1/certs/$2.crt" 2>/dev/null
    cat "$1/certs/$2.crt" "$1/certs/$2.key" >"$1/certs/$2.pem"
  }
  chown -R "$3:$3" "$1"
  chmod 640 "$1/certs/$2.key" "$1/certs/$2.pem"
}

prosody_config() {
  mkdir -p "$P/data"
  cat >"$P/prosody.cfg.lua" <<CFG
-- written by roost tests/peers/peers.sh
pidfile = "$P/prosody.pid"
data_path = "$P/data"
certificates = "$P/certs"
log = { $( [ "$LOG" = warn ] && echo warn || echo info ) = "$P/prosody.log" }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
component_interfaces = { "127.0.0.1" }
c2s_ports = { 16222 }; c2s_direct_tls_ports = {}
s2s_ports = { 16269 }; s2s_direct_tls_ports = {}
component_ports = { 16347 }
http_ports = {}; https_ports = {}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = false
s2s_secure_auth = false
authentication = "internal_hashed"
allow_registration = false
modules_enabled = {
  "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "presence"; "message"; "iq";
  "offline"; "version"; "uptime"; "time"; "private"; "carbons"; "blocklist"; "admin_shell";
  "smacks"; "pep";
}
smacks_hibernation_time = ${PEERS_RESUME_TIMEOUT:-600}
smacks_enabled_s2s = false
limits = { c2s = { rate = "1000000kb/s" }; s2sin = { rate = "1000000kb/s" } }
-- Names of test servers come from /etc/hosts (there is no DNS on loopback)
unbound = { hoststxt = true; resolvconf = true }
ssl = { certificate = "$P/certs/prosody.test.crt"; key = "$P/certs/prosody.test.key" }
VirtualHost "prosody.test"
Component "gw.prosody.test"
  component_secret = "gwsecret"
CFG
  cert "$P" prosody.test prosody
}

ejabberd_config() {
  mkdir -p "$E/db" "$E/logs"
  cat >"$E/ejabberd.yml" <<CFG
# written by roost tests/peers/peers.sh
loglevel: $( [ "$LOG" = warn ] && echo warning || echo info )
log_rotate_count: 0
hosts: [ejabberd.test]
certfiles: ["$E/certs/ejabberd.test.pem"]
acme: {auto: false}
listen:
  - {port: 26222, ip: "127.0.0.1", module: ejabberd_c2s, max_stanza_size: 262144, starttls: true, starttls_required: false}
  - {port: 26269, ip: "127.0.0.1", module: ejabberd_s2s_in, max_stanza_size: 524288}
  - port: 26347
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts: {gw.ejabberd.test: {password: gwsecret}}
s2s_use_starttls: optional
auth_method: internal
auth_password_format: scram
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 5000
modules:
  mod_s2s_dialback: {}
  mod_disco: {}
  mod_ping: {}
  mod_roster: {versioning: true}
  mod_offline: {access_max_user_messages: max_user_offline_messages}
  mod_carboncopy: {}
  mod_private: {}
  mod_blocking: {}
  mod_privacy: {}
  mod_version: {show_os: false}
  mod_time: {}
  mod_caps: {}
  mod_pubsub: {plugins: [flat, pep]}
  mod_stream_mgmt: {resend_on_timeout: if_offline, resume_timeout: ${PEERS_RESUME_TIMEOUT:-300}}
CFG
  cat >"$E/ejabberdctl.cfg" <<CFG
ERLANG_NODE=roostpeer@localhost
SPOOL_DIR=$E/db
LOGS_DIR=$E/logs
EJABBERD_PID_PATH=$E/ejabberd.pid
ERL_DIST_PORT=26470
EJABBERD_BYPASS_WARNINGS=true
CFG
  printf -- '-setcookie roostpeers\n-kernel inet_dist_use_interface {127,0,0,1}\n' >"$E/vm.args"
  printf '{lookup,["file","native"]}.\n{host,{127,0,0,1},["localhost"]}.\n{file,hosts,"/etc/hosts"}.\n' >"$E/inetrc"
  cert "$E" ejabberd.test ejabberd
}

# One hidden Erlang node that calls into the running ejabberd (ejabberdctl boots a VM per call).
ej_rpc() { # erlang-expression-using-N
  timeout 300 erl -noinput -hidden -dist_listen false -start_epmd false -erl_epmd_port 26470 \
    -kernel inet_dist_use_interface '{127,0,0,1}' -sname "ctl$$@localhost" -setcookie roostpeers \
    -env ERL_CRASH_DUMP_BYTES 0 -eval "N = roostpeer@localhost, $1, halt()."
}

case "${1:-}/${2:-}" in
  install/*)
    need=()
    command -v prosody >/dev/null || need+=(prosody lua-unbound)
    command -v ejabberdctl >/dev/null || need+=(ejabberd)
    command -v tsung >/dev/null || need+=(tsung)
    if [ ${#need[@]} -gt 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi ;;
  start/prosody)
    prosody_config
    prosodyctl --config "$P/prosody.cfg.lua" start >/dev/null 2>&1
    waitport 16222 20 ;;
  stop/prosody)
    [ -f "$P/prosody.cfg.lua" ] && prosodyctl --config "$P/prosody.cfg.lua" stop >/dev/null 2>&1 || true ;;
  pid/prosody) cat "$P/prosody.pid" ;;
  wipe/prosody)
    "$0" stop prosody; rm -rf "$P/data" ;;
  users/prosody)
    echo "> local um = require'core.usermanager'; local n = 0; for i = 1, ${3:?N} do if um.user_exists('user'..i, 'prosody.test') or um.create_user('user'..i, 'pass'..i, 'prosody.test') then n = n + 1 end end; return n" |
      timeout 300 prosodyctl --config "$P/prosody.cfg.lua" shell | grep -q "Result: ${3}" ;;
  start/ejabberd)
    ejabberd_config
    # As root, ejabberdctl switches user with su, whose PAM session resets the open-files limit
    # to 1024 (ejabberd then stops accepting near a thousand sessions). setpriv switches without
    # PAM, so ejabberd keeps our limit, as Prosody and Roost do.
    setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=/var/lib/ejabberd \
      ejabberdctl --config-dir "$E" start
    waitport 26222 60 ;;
  stop/ejabberd)
    [ -f "$E/ejabberdctl.cfg" ] && { ejabberdctl --config-dir "$E" stop >/dev/null 2>&1; ejabberdctl --config-dir "$E" stopped >/dev/null 2>&1; } || true ;;
  pid/ejabberd) cat "$E/ejabberd.pid" ;;
  wipe/ejabberd)
    "$0" stop ejabberd; rm -rf "$E/db" ;;
  users/ejabberd)
    ej_rpc "R = [rpc:call(N, ejabberd_auth, try_register, [<<\"user\", (integer_to_binary(I))/binary>>, <<\"ejabberd.test\">>, <<\"pass\", (integer_to_binary(I))/binary>>]) || I <- lists:seq(1, ${3:?N})],
      Bad = [X || X <- R, X =/= ok, X =/= {error, exists}],
      Bad =:= [] orelse begin io:format(standard_error, \"ejabberd register: ~p~n\", [hd(Bad)]), halt(1) end" ;;
  *) sed -n '2,15p' "$0"; exit 2 ;;
esac
