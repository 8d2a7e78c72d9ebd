// Package uplink tests Roost's component uplink (XEP-0114) against real
// Prosody and ejabberd from Debian, started by tests/peers/peers.sh, with
// slixmpp users on both sides (across.py).
package uplink

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roost/bench/load"
	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

// peersDir keeps this test's upstream state apart from bench/compare.sh's.
const peersDir = "/tmp/roost-peers-test"

type upstream struct {
	name, domain string
	c2s, comp    int
}

func peers(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("../peers/peers.sh", args...)
	cmd.Env = append(os.Environ(), "PEERS_DIR="+peersDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peers.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestComponentUplink(t *testing.T) {
	_, err := exec.LookPath("prosodyctl")
	testutil.Need(t, "prosody", err == nil)
	_, err = exec.LookPath("ejabberdctl")
	testutil.Need(t, "ejabberd", err == nil)
	testutil.Need(t, "python3-slixmpp", exec.Command(python, "-c", "import slixmpp").Run() == nil)
	testutil.LockPeers(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "roost")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, up := range []upstream{
		{"prosody", "prosody.test", 16222, 16347},
		{"ejabberd", "ejabberd.test", 26222, 26347},
	} {
		t.Run(up.name, func(t *testing.T) { testUplink(t, bin, up) })
	}
}

func testUplink(t *testing.T, bin string, up upstream) {
	peers(t, "wipe", up.name) // a roster left from an earlier run would disagree with Roost's new store
	peers(t, "start", up.name)
	t.Cleanup(func() { peers(t, "stop", up.name) })
	peers(t, "users", up.name, "2")

	dir := t.TempDir()
	domain := "gw." + up.domain
	port := testutil.FreePort(t)
	cfg := fmt.Sprintf(`{"domain": %q, "data_dir": "data", "listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:%d", "c2s_tls": "", "dtls": ""},
		"uplink": {"component": {"address": "127.0.0.1:%d", "secret": "gwsecret", "queue_messages": 100}}}`, domain, port, up.comp)
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(cfg), 0o600)
	roost := func(stdin string, args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Stdin = dir, strings.NewReader(stdin)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := roost("", "init", "-config", "c.json"); !strings.Contains(out, "created store") {
		t.Fatal(out)
	}
	if out := roost("alice-pw\n", "user", "add", "-config", "c.json", "alice@"+domain); !strings.Contains(out, "added") {
		t.Fatal(out)
	}
	srv := exec.Command(bin, "run", "-config", "c.json")
	srv.Dir = dir
	var logs testutil.LockedBuffer
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	waitStatus := func(want string) {
		t.Helper()
		var out string
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if out = roost("", "status", "-config", "c.json"); strings.Contains(out, want) {
				return
			}
		}
		t.Fatalf("roost status never said %q; last:\n%s\nlog:\n%s", want, out, logs.String())
	}
	waitStatus(": up since")
	across := func(phase string) {
		t.Helper()
		cmd := exec.Command(python, "across.py", phase,
			"--a", "alice@"+domain, "alice-pw", "127.0.0.1", fmt.Sprint(port), filepath.Join(dir, "data", "roost-cert.pem"),
			"--b", "user1@"+up.domain, "pass1", "127.0.0.1", fmt.Sprint(up.c2s), "--timeout", "30")
		out, err := cmd.CombinedOutput()
		t.Logf("across.py %s:\n%s", phase, out)
		if err != nil || !strings.Contains(string(out), "PASS") {
			t.Fatalf("%s failed: %v\nroost log:\n%s", phase, err, logs.String())
		}
	}
	across("meet")
	// The upstream goes away and comes back; Roost keeps running.
	peers(t, "stop", up.name)
	waitStatus("down")
	// While it is down an iq to another domain fails at once.
	c, err := load.Dial(load.Options{Target: fmt.Sprintf("127.0.0.1:%d", port), Domain: domain, Password: "alice-pw", TLS: true, Timeout: 10 * time.Second}, "alice", "probe", false)
	if err != nil {
		t.Fatal(err)
	}
	c.Send([]byte("<iq type='get' id='v1' to='" + up.domain + "'><query xmlns='jabber:iq:version'/></iq>"))
	// "At once": a reply later than 10 s fails the read below.
	noAnswer := time.AfterFunc(10*time.Second, func() { c.Close() })
	defer noAnswer.Stop()
	for {
		tok, err := c.Next()
		if err != nil {
			t.Fatalf("no answer to an iq while the uplink is down: %v", err)
		}
		if raw := string(tok.Raw); strings.Contains(raw, "id='v1'") {
			if !strings.Contains(raw, "remote-server-timeout") {
				t.Fatalf("iq while down: %s", raw)
			}
			break
		}
	}
	c.Close()
	across("outage")
	if out := roost("", "status", "-config", "c.json"); !strings.Contains(out, "5 messages queued") {
		t.Errorf("status while down should count the queue:\n%s", out)
	}
	peers(t, "start", up.name)
	waitStatus(": up since")
	across("resume")
	if strings.Contains(logs.String(), "panic") {
		t.Fatalf("roost log:\n%s", logs.String())
	}
}
