// Package testutil holds what the end-to-end test packages share: free
// loopback ports, a log buffer safe across goroutines, and the rule for a
// missing external tool (skip, or fail under ROOST_ACCEPTANCE=require,
// which ./build.sh test sets so that CI never skips silently).
package testutil

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"roost/server"
)

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Need skips the test when ok is false, or fails it under
// ROOST_ACCEPTANCE=require.
func Need(t testing.TB, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("ROOST_ACCEPTANCE") == "require" {
		t.Fatalf("%s is missing; ./build.sh test installs it", what)
	}
	t.Skipf("%s is missing; ./build.sh test installs it", what)
}

// Cannot skips the test with reason when this machine cannot run it, or
// fails it under ROOST_ACCEPTANCE=require (CI must not skip silently).
func Cannot(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("ROOST_ACCEPTANCE") == "require" {
		t.Fatalf("cannot run here: %s", reason)
	}
	t.Skipf("cannot run here: %s", reason)
}

// LockedBuffer collects a process's output while the test reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// LockPeers serialises the tests that run the shared loopback Prosody
// and ejabberd (tests/peers/peers.sh, fixed ports): go test runs
// packages in parallel. The lock is released when the test ends.
func LockPeers(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/tmp/roost-peers-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// Config is the repository's default configuration (config.json, as the
// binary embeds it) for a server inside a test: data in a temporary
// directory, client streams on a free loopback port, nothing else
// listening.
func Config(t testing.TB) *server.Config {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	defaults, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(defaults, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Listen.C2S, cfg.Listen.C2STLS, cfg.Listen.DTLS, cfg.Listen.S2S, cfg.Listen.HTTPS = "127.0.0.1:0", "", "", "", ""
	cfg.Listen.MDNS = false // tests that advertise turn it on in their own network namespace
	return cfg
}
