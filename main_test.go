package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"roost/devices"
	"roost/devices/simulator"
	"roost/server"
	"roost/server/control"
	"roost/server/sysservice"
	"roost/storage"
	"roost/tests/testutil"
)

// cli runs the roost CLI in-process.
func cli(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &out)
	return code, out.String()
}

// writeConfig writes a config whose server listens only for client
// streams on an ephemeral loopback port: every other listener is off, so
// the tests pass where a Roost service already holds the default ports.
func writeConfig(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	body := fmt.Sprintf(`{"data_dir": %q, "listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:0", "c2s_tls": "", "dtls": "", "s2s": ""}}`, filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// The store exists, as after a first `roost run`: administration
	// commands never create one.
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	st, err := storage.Open(filepath.Join(dir, "data", "roost.db"), storage.Options{Domain: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return dir, cfg
}

// TestCLINeverCreatesAStore: an administration command with a config
// whose data_dir holds no store says so and creates nothing (issue 17),
// and a relative data_dir is the config file's, wherever the CLI runs.
func TestCLINeverCreatesAStore(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"data_dir": "data", "listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:0", "c2s_tls": "", "dtls": ""}}`), 0o600)
	t.Chdir(t.TempDir())
	code, out := cli(t, "", "user", "list", "-config", cfg)
	want := "no store at " + filepath.Join(dir, "data", "roost.db")
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, %q; want 1 and %q", code, out, want)
	}
	if code, out := cli(t, "pw\n", "user", "add", "-config", cfg, "alice"); code != 1 || !strings.Contains(out, want) {
		t.Fatalf("user add: exit %d, %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatalf("data_dir was created: %v", err)
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Fatalf("the working directory got %d entries", len(entries))
	}
}

func TestCLIUsers(t *testing.T) {
	_, cfg := writeConfig(t)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"add", "secret\n", []string{"user", "add", "-config", cfg, "alice@localhost"}, 0, "added alice@localhost (store "},
		{"add again", "secret\n", []string{"user", "add", "-config", cfg, "alice@localhost"}, 1, "exists already"},
		{"add bare localpart", "pw\n", []string{"user", "add", "-config", cfg, "bob"}, 0, "added bob@localhost"},
		{"other domain", "pw\n", []string{"user", "add", "-config", cfg, "carol@example.org"}, 1, "not on this server's domain localhost"},
		{"no password", "", []string{"user", "add", "-config", cfg, "dave@localhost"}, 1, "standard input"},
		{"list", "", []string{"user", "list", "-config", cfg}, 0, "alice@localhost\nbob@localhost\n"},
		{"passwd", "new\n", []string{"user", "passwd", "-config", cfg, "alice@localhost"}, 0, "changed the password"},
		{"passwd unknown", "new\n", []string{"user", "passwd", "-config", cfg, "zed@localhost"}, 1, "no user zed@localhost"},
		{"del", "", []string{"user", "del", "-config", cfg, "bob@localhost"}, 0, "deleted bob@localhost"},
		{"del unknown", "", []string{"user", "del", "-config", cfg, "bob@localhost"}, 1, "no user bob@localhost"},
		{"missing JID", "", []string{"user", "add", "-config", cfg}, 2, "needs exactly one JID"},
		{"unknown subcommand", "", []string{"user", "frob"}, 2, "unknown subcommand"},
		{"unknown command", "", []string{"frobnicate"}, 2, "unknown command"},
		{"version", "", []string{"version"}, 0, "roost "},
		{"check-config", "", []string{"check-config", "-config", cfg}, 0, "config OK"},
		{"bad config", "", []string{"check-config", "-config", "/nonexistent.json"}, 1, "read config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := cli(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tc.code, tc.want)
			}
		})
	}
}

// TestCLIThroughRunningServer: while a server holds the store, user
// commands go through its control socket and say so.
func TestCLIThroughRunningServer(t *testing.T) {
	_, cfgPath := writeConfig(t)
	cfg, err := server.LoadConfig(defaultConfig, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(cfg, discardLogger())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	code, out := cli(t, "pw\n", "user", "add", "-config", cfgPath, "alice@localhost")
	if code != 0 || !strings.Contains(out, "through the running server") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if ok, _ := srv.Store().CheckPassword("alice", "pw"); !ok {
		t.Fatal("the running server's store lacks the user")
	}
	code, out = cli(t, "", "user", "list", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "alice@localhost") {
		t.Fatalf("list: %d %s", code, out)
	}
	sock := server.ControlPath(cfg)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket %s: %v %v", sock, fi.Mode(), err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestBackupUnderWriteLoad: a backup taken through the running server
// while accounts are being added is a valid store holding every account
// acknowledged before the backup began, and exactly a prefix of the
// sequence (a consistent snapshot, not a torn copy).
func TestBackupUnderWriteLoad(t *testing.T) {
	dir, cfgPath := writeConfig(t)
	cfg, err := server.LoadConfig(defaultConfig, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ScramIterations = 64 // the load is commits, not key derivation
	srv := server.New(cfg, discardLogger())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(t.Context())
	sock := server.ControlPath(cfg)
	var acked atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	enough := make(chan struct{}) // closed once 50 accounts are acknowledged
	go func() {
		for i := 1; i <= 5000; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			resp, err := control.Call(sock, control.Request{Op: "user.add", JID: fmt.Sprintf("u%05d@localhost", i), Password: "pw"})
			if err != nil || resp.Error != "" {
				done <- fmt.Errorf("add u%05d: %v %s", i, err, resp.Error)
				return
			}
			acked.Store(int64(i))
			if i == 50 {
				close(enough)
			}
		}
		done <- nil
	}()
	select {
	case <-enough:
	case err := <-done:
		if err != nil || acked.Load() < 50 {
			t.Fatalf("the writer stopped before 50 accounts were acknowledged (%d): %v", acked.Load(), err)
		}
		done <- err // it finished all of them first; read again below
	case <-time.After(30 * time.Second):
		t.Fatalf("only %d of 50 accounts acknowledged after 30 s", acked.Load())
	}
	before := acked.Load()
	dst := filepath.Join(dir, "backup.db")
	code, out := cli(t, "", "backup", "-config", cfgPath, dst)
	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the account writer did not stop within 30 s")
	}
	if code != 0 || !strings.Contains(out, "through the running server") {
		t.Fatalf("backup: exit %d: %s", code, out)
	}
	st, err := storage.Open(dst, storage.Options{})
	if err != nil {
		t.Fatalf("the backup does not open as a store: %v", err)
	}
	defer st.Close()
	users, err := st.Users()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(users)) < before {
		t.Fatalf("backup holds %d users, %d were acknowledged before it began", len(users), before)
	}
	for i, u := range users {
		if want := fmt.Sprintf("u%05d", i+1); u != want {
			t.Fatalf("user %d in the backup is %s, want %s: not a consistent snapshot", i, u, want)
		}
	}
	t.Logf("%d users acknowledged before the backup, %d in it, %d acknowledged by the end", before, len(users), acked.Load())
}

// TestBackupRestore: backup with the server stopped, restore refuses while
// a server runs, and restores when it is stopped, keeping the old store.
func TestBackupRestore(t *testing.T) {
	dir, cfgPath := writeConfig(t)
	if code, out := cli(t, "pw\n", "user", "add", "-config", cfgPath, "alice@localhost"); code != 0 {
		t.Fatal(out)
	}
	dst := filepath.Join(dir, "b.db")
	if code, out := cli(t, "", "backup", "-config", cfgPath, dst); code != 0 || !strings.Contains(out, "1 users") {
		t.Fatalf("backup: %d %s", code, out)
	}
	if code, out := cli(t, "pw\n", "user", "add", "-config", cfgPath, "bob@localhost"); code != 0 {
		t.Fatal(out)
	}
	cfg, _ := server.LoadConfig(defaultConfig, cfgPath)
	srv := server.New(cfg, discardLogger())
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	code, out := cli(t, "", "restore", "-config", cfgPath, dst)
	if code != 1 || !strings.Contains(out, "the server is running") {
		t.Fatalf("restore while running: %d %s", code, out)
	}
	srv.Shutdown(t.Context())
	if code, out := cli(t, "", "restore", "-config", cfgPath, cfgPath); code != 1 || !strings.Contains(out, "not a readable store") {
		t.Fatalf("restore of a non-store: %d %s", code, out)
	}
	code, out = cli(t, "", "restore", "-config", cfgPath, dst)
	if code != 0 || !strings.Contains(out, "previous store is kept") {
		t.Fatalf("restore: %d %s", code, out)
	}
	if _, out := cli(t, "", "user", "list", "-config", cfgPath); !strings.HasPrefix(out, "alice@localhost\n(1 accounts; store ") {
		t.Fatalf("after restore: %q", out)
	}
	kept, _ := filepath.Glob(filepath.Join(cfg.DataDir, "roost.db.before-restore-*"))
	if len(kept) != 1 {
		t.Fatalf("kept: %v", kept)
	}
	if sum, err := storage.Inspect(kept[0]); err != nil || sum.Users != 2 {
		t.Fatalf("the kept store: %+v %v", sum, err)
	}
}

// TestInstallWithoutServiceManager: on a machine without systemd (CI, a
// container) install says so plainly and writes nothing.
func TestInstallWithoutServiceManager(t *testing.T) {
	if _, err := os.Stat("/run/systemd/system"); err == nil || runtime.GOOS != "linux" {
		t.Skip("this machine has a service manager")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "etc", "config.json")
	for _, op := range []string{"install", "start", "stop", "uninstall"} {
		code, out := cli(t, "", op, "-config", cfgPath)
		if code != 1 || !strings.Contains(out, "no usable service manager") || !strings.Contains(out, "roost run -config FILE") {
			t.Fatalf("%s: exit %d: %s", op, code, out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("install wrote %v", entries)
	}
	if _, err := os.Stat("/etc/systemd/system/roost.service"); err == nil {
		t.Fatal("a unit file appeared")
	}
	code, out := cli(t, "", "status")
	if code != 3 || !strings.Contains(out, "service: unavailable (no usable service manager") || !strings.Contains(out, "server: not running") {
		t.Fatalf("status: exit %d: %s", code, out)
	}
}

// install's config: the embedded default with the service's data
// directory, written once and never overwritten.
func TestWriteServiceConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "roost", "config.json")
	created, err := sysservice.WriteConfig(path, defaultConfig, nil)
	if err != nil || !created {
		t.Fatalf("%v %v", created, err)
	}
	cfg, err := server.LoadConfig(defaultConfig, path)
	if err != nil || cfg.DataDir != sysservice.DefaultDataDir() {
		t.Fatalf("%+v %v", cfg, err)
	}
	os.WriteFile(path, []byte(`{"domain": "gw1.example.org"}`), 0o640)
	if created, err := sysservice.WriteConfig(path, defaultConfig, nil); err != nil || created {
		t.Fatalf("overwrote an existing config: %v %v", created, err)
	}
	if b, _ := os.ReadFile(path); string(b) != `{"domain": "gw1.example.org"}` {
		t.Fatalf("config changed: %s", b)
	}
}

// TestSimulateReconnects (issue 14): `device simulate` behaves as a real
// device: when the gateway goes away (here it restarts on the same port)
// it connects again, with backoff, instead of exiting, and stops only when
// interrupted.
func TestSimulateReconnects(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.json")
	body := fmt.Sprintf(`{"data_dir": %q, "listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:0", "c2s_tls": "", "dtls": "127.0.0.1:0", "s2s": ""}}`, filepath.Join(dir, "data"))
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(defaultConfig, path)
	if err != nil {
		t.Fatal(err)
	}
	startServer := func(cfg *server.Config) (*server.Server, *testutil.LockedBuffer) {
		t.Helper()
		logs := &testutil.LockedBuffer{}
		srv := server.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		return srv, logs
	}
	waitFor := func(what string, logs *testutil.LockedBuffer, s string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(logs.String(), s) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %d log lines with %q in:\n%s", what, n, s, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	first, firstLogs := startServer(cfg)
	firstUp := true
	defer func() {
		if firstUp {
			first.Shutdown(context.Background())
		}
	}()
	d, err := devices.Add(first.Store(), "localhost", "thermo1", "thermometer", "Kitchen", nil)
	if err != nil {
		t.Fatal(err)
	}
	port := first.DevicesAddr().(*net.UDPAddr).Port
	simLogs := &testutil.LockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runSimulator(ctx, simulator.Options{
			Server:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Identity: "thermo1@localhost/" + devices.DefaultResource,
			PSK:      d.PSK,
			Every:    100 * time.Millisecond,
			Log:      slog.New(slog.NewTextHandler(simLogs, nil)),
		}, 2*time.Second, backoff{Min: 200 * time.Millisecond, Max: time.Second})
	}()
	waitFor("first server", firstLogs, "dtls: device connected", 1)
	waitFor("simulator", simLogs, "simulated device online", 1)

	// The gateway restarts: the old association ends (its close alert),
	// the simulator retries until the new server answers on the same port.
	firstUp = false
	if err := first.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := *cfg
	again.Listen.DTLS = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	second, secondLogs := startServer(&again)
	defer second.Shutdown(context.Background())
	waitFor("second server", secondLogs, "dtls: device connected", 1)
	waitFor("simulator", simLogs, "simulated device online", 2)
	if !strings.Contains(simLogs.String(), "connecting again") {
		t.Fatalf("no reconnection attempt logged:\n%s", simLogs.String())
	}
	select {
	case err := <-done:
		t.Fatalf("the simulator stopped by itself: %v\n%s", err, simLogs.String())
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted simulator: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the simulator did not stop when interrupted")
	}
	t.Logf("simulator:\n%s", simLogs.String())
}

// TestCLITeaches (issue 17): -h on every command prints its own usage and
// flags, flags go before or after the arguments, a usage error is one line
// and the command's usage, prosodyctl's names work, and check-config
// makes the checks run makes.
func TestCLITeaches(t *testing.T) {
	dir, cfg := writeConfig(t)
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"user -h", []string{"user", "-h"}, 0, []string{"usage: roost user SUBCOMMAND", "add", "passwd", "del", "list"}},
		{"user add -h", []string{"user", "add", "-h"}, 0, []string{"usage: roost user add [-config FILE] JID", "-config"}},
		{"run -h", []string{"run", "-h"}, 0, []string{"usage: roost run", "SIGHUP", "-config"}},
		{"device -h lists simulate", []string{"device", "-h"}, 0, []string{"simulate", "set", "rekey"}},
		{"device simulate -h", []string{"device", "simulate", "-h"}, 0, []string{"-psk", "-every", "-server"}},
		{"kick -h", []string{"kick", "-h"}, 0, []string{"usage: roost kick"}},
		{"reload -h", []string{"reload", "-h"}, 0, []string{"usage: roost reload", "SIGHUP"}},
		{"check alias", []string{"check", "-config", cfg, "-q"}, 0, []string{"config OK"}},
		{"reload not running", []string{"reload", "-config", cfg}, 1, []string{"the server is not running"}},
		{"missing JID: one line and the usage", []string{"user", "add", "-config", cfg}, 2, []string{"roost user add: needs exactly one JID", "usage: roost user add [-config FILE] JID"}},
		{"unknown subcommand", []string{"user", "frob"}, 2, []string{`unknown subcommand "frob"`, "add, passwd, del, list"}},
		{"unknown flag", []string{"device", "add", "-colour", "red", "x"}, 2, []string{"device add: flag provided but not defined: -colour", "usage: roost device add"}},
		{"flags after the JID", []string{"adduser", "carol", "-config", cfg}, 0, []string{"added carol@localhost"}},
		{"passwd alias", []string{"passwd", "carol@localhost", "-config", cfg}, 0, []string{"changed the password of carol@localhost"}},
		{"deluser alias", []string{"deluser", "-config", cfg, "carol"}, 0, []string{"deleted carol@localhost"}},
		{"check-config prints the effective config", []string{"check-config", "-config", cfg}, 0, []string{"config OK", filepath.Join(dir, "data"), `"stanza_bytes": 262144`}},
		{"status not running", []string{"status", "-config", cfg}, 3, []string{"server: not running"}},
		{"sessions not running", []string{"sessions", "-config", cfg}, 1, []string{"the server is not running"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := cli(t, "pw\n", tc.args...)
			for _, w := range tc.wants {
				if !strings.Contains(out, w) {
					t.Fatalf("exit %d, output:\n%s\nwant %q in it", code, out, w)
				}
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
			if code == 2 && strings.Count(out, "\n") > 4 {
				t.Fatalf("a usage error printed %d lines (the whole list?):\n%s", strings.Count(out, "\n"), out)
			}
		})
	}
	// check-config refuses what run would refuse, naming the key.
	for _, tc := range []struct{ name, body, want string }{
		{"missing certificate files", `{"tls": {"cert": "nope.pem", "key": "nope.key"}}`, `"tls.cert"`},
		{"owner not a JID", `{"devices": {"owners": ["not a jid!!"]}}`, `"devices.owners"`},
		{"duplicate key", `{"domain": "a", "domain": "b"}`, `key "domain" is given twice`},
		{"bad nested duration", `{"limits": {"auth_timeout": "soon"}}`, `key "limits.auth_timeout"`},
		{"data_dir under a file", `{"data_dir": "c2.json/sub"}`, `"data_dir"`},
	} {
		t.Run("check-config "+tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "c2.json")
			os.WriteFile(p, []byte(tc.body), 0o600)
			code, out := cli(t, "", "check-config", "-config", p)
			if code != 1 || !strings.Contains(out, tc.want) || strings.Contains(out, "config OK") {
				t.Fatalf("exit %d: %s (want 1 and %s)", code, out, tc.want)
			}
		})
	}
	// Secrets are masked.
	p := filepath.Join(dir, "c3.json")
	os.WriteFile(p, []byte(fmt.Sprintf(`{"data_dir": %q, "components": {"zigbee.localhost": "hunter2"}}`, filepath.Join(dir, "data"))), 0o600)
	if code, out := cli(t, "", "check-config", "-config", p); code != 0 || strings.Contains(out, "hunter2") || !strings.Contains(out, `"zigbee.localhost": "********"`) {
		t.Fatalf("check-config with a component secret: %d %s", code, out)
	}
}

// TestBenchNothingSucceeded (issue 17): a load run where no login got
// through prints why and exits non-zero instead of "errors 26" and 0.
func TestBenchNothingSucceeded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every login fails to connect
	code, out := cli(t, "", "bench", "-target", addr, "-users", "2", "-scenario", "login", "-duration", "200ms", "-workers", "1")
	if code != 1 || !strings.Contains(out, "error: ") || !strings.Contains(out, "nothing succeeded") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}
