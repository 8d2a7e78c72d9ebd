package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"roost/server"
)

// cli runs the roost CLI in-process.
func cli(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &out)
	return code, out.String()
}

func writeConfig(t *testing.T) (string, string) {
	dir := t.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{"data_dir": %q, "listen": {"c2s": "127.0.0.1:%d", "c2s_tls": ""}}`, filepath.Join(dir, "data"), port)), 0o600)
	return dir, cfg
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
