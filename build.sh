#!/usr/bin/env bash
# Roost build script.
#   ./build.sh            build ./roost for this machine
#   ./build.sh test       install what the tests need (Debian packages) and run every test
#   ./build.sh bench      run the Go benchmarks with -benchmem
#   ./build.sh fuzz [T]   fuzz the XML scanner for T (default 60s)
#   ./build.sh measure [N] RSS of the server with N idle TLS sessions, then N DTLS devices (default 1000)
#   ./build.sh dist       release binaries for Linux (amd64, arm64, ARMv6, ARMv7) and Windows in dist/
set -euo pipefail
cd "$(dirname "$0")"

version() { git describe --tags --always --dirty 2>/dev/null || echo dev; }

# Debian packages the tests use, and how to tell each is there.
test_deps() {
  local missing=()
  /usr/bin/python3 -c 'import slixmpp' 2>/dev/null || missing+=(python3-slixmpp)
  /usr/bin/python3 -c 'import aioxmpp' 2>/dev/null || missing+=(python3-aioxmpp)
  /usr/bin/python3 -c 'import zeroconf' 2>/dev/null || missing+=(python3-zeroconf) # tests/mdns: an independent DNS-SD browser
  command -v unshare >/dev/null || missing+=(util-linux)
  command -v go-sendxmpp >/dev/null || missing+=(go-sendxmpp)
  command -v profanity >/dev/null || missing+=(profanity) # tests/profanity: the console client issue 16 was found with
  command -v tmux >/dev/null || missing+=(tmux)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v qemu-aarch64 >/dev/null && command -v qemu-arm >/dev/null || missing+=(qemu-user)
  command -v prosodyctl >/dev/null || missing+=(prosody lua-unbound)
  command -v ejabberdctl >/dev/null || missing+=(ejabberd)
  command -v chromium >/dev/null || missing+=(chromium)
  # xmpp.js (tests/xmppjs) is fetched from npm by its test; node and npm run it.
  command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing test dependencies: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      echo "build.sh: need root to apt-get install ${missing[*]} (or install them yourself)" >&2
      exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

case "${1:-build}" in
  build)
    go build -trimpath -ldflags "-s -w -X roost/server.Version=$(version)" -o roost .
    echo "built ./roost $(version)"
    ;;
  test)
    test_deps
    unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
    if [ -n "$unformatted" ]; then echo "gofmt needed on: $unformatted" >&2; exit 1; fi
    go vet ./...
    # ROOST_ACCEPTANCE=require turns "slixmpp missing" from a skip into a failure.
    ROOST_ACCEPTANCE=require go test -race -count=1 -timeout 15m ./...
    ;;
  dist)
    # Static (CGO_ENABLED=0), reproducible paths, stripped, version from git.
    rm -rf dist && mkdir -p dist
    v=$(version)
    for t in linux/amd64 linux/arm64 linux/arm/7 linux/arm/6 windows/amd64; do
      IFS=/ read -r os arch arm <<<"$t"
      name=roost-$v-$os-$arch${arm:+v$arm}
      [ "$os" = windows ] && name=$name.exe
      CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=$arm \
        go build -trimpath -ldflags "-s -w -X roost/server.Version=$v" -o "dist/$name" .
    done
    (cd dist && sha256sum roost-* >SHA256SUMS)
    echo "dist/ ($v):"
    (cd dist && for f in roost-*; do stat -c '%n %s' "$f"; done | awk '{printf "  %-40s %6.2f MiB  %d bytes\n", $1, $2 / 1048576, $2}')
    echo "  SHA256SUMS"
    ;;
  bench)
    go test -run '^$' -bench . -benchmem ./...
    ;;
  fuzz)
    go test -run '^$' -fuzz FuzzScan -fuzztime "${2:-60s}" ./wire/xmlscan/
    ;;
  measure)
    ROOST_IDLE_SESSIONS="${2:-1000}" go test -count=1 -run TestIdleSessionsRSS -v ./tests/idle/
    ROOST_IDLE_DEVICES="${2:-1000}" go test -count=1 -run TestIdleDevicesRSS -v ./tests/idle/
    ROOST_THROUGHPUT=1 go test -count=1 -run TestThroughputDevicesVsC2S -v ./tests/idle/
    ;;
  *)
    sed -n '2,7p' "$0"; exit 2
    ;;
esac
