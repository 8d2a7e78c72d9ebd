// Package acceptance runs Roost the way the README tells a new user to,
// and drives it with real clients from Debian's packages.
package acceptance

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

// needSlixmpp skips (or, under ./build.sh test, fails) when Debian's
// python3-slixmpp is missing.
func needSlixmpp(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("ROOST_ACCEPTANCE") == "require" {
			t.Fatalf("python3-slixmpp is not importable by %s: %v (./build.sh test installs it)", python, err)
		}
		t.Skipf("python3-slixmpp not installed (%v); ./build.sh test installs it", err)
	}
}

// buildRoost compiles the binary once per test run.
func buildRoost(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "roost")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// portFree reports whether addr ("tcp" or "udp") can be bound now.
func portFree(network, addr string) bool {
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// roost runs one CLI command in dir and returns its combined output.
func roost(t *testing.T, bin, dir, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// process is a running roost server.
type process struct {
	cmd  *exec.Cmd
	logs *testutil.LockedBuffer
	done chan struct{}
	err  error // valid once done is closed
}

func startRoost(t *testing.T, bin, dir string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), logs: &testutil.LockedBuffer{}, done: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *process) waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("roost exited (%v) before listening on %s; its log:\n%s", p.err, addr, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("roost did not listen on %s; its log:\n%s", addr, p.logs)
}

// TestSeedExample is issue 3's acceptance: the README's run command with
// the embedded config, two users added from the CLI (one while the server
// is stopped, one through the control socket while it runs), and the
// slixmpp tutorial example between them over STARTTLS with the generated
// certificate.
func TestSeedExample(t *testing.T) {
	needSlixmpp(t)
	bin := buildRoost(t)
	dir := t.TempDir()

	// The README's command uses the embedded defaults (5222, 5223 and
	// 5684/udp). When one of them is taken on this machine (Roost runs
	// here as a service), overlay a config with free ports and no device
	// listener, which exercises -config on the way.
	args := []string{"run"}
	// mDNS stays off: a test multicasts only inside a network namespace
	// it made (tests/mdns), never on the host's LAN.
	if err := os.WriteFile(filepath.Join(dir, "test.json"), []byte(`{"listen": {"mdns": false}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgArgs := []string{"-config", "test.json"}
	port := 5222
	if !portFree("tcp", ":5222") || !portFree("tcp", ":5223") || !portFree("udp", ":5684") {
		port = testutil.FreePort(t)
		cfg := fmt.Sprintf(`{"listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:%d", "c2s_tls": "127.0.0.1:%d", "dtls": "", "s2s": ""}}`, port, testutil.FreePort(t))
		if err := os.WriteFile(filepath.Join(dir, "test.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cfgArgs = []string{"-config", "test.json"}
		t.Logf("a default port (5222, 5223 or 5684/udp) is busy here; using %d through -config", port)
	}

	if out, err := roost(t, bin, dir, "", append([]string{"init"}, cfgArgs...)...); err != nil || !strings.Contains(out, "created store") {
		t.Fatalf("init: %v\n%s", err, out)
	}
	out, err := roost(t, bin, dir, "alice-secret\n", append(append([]string{"user", "add"}, cfgArgs...), "alice@localhost")...)
	if err != nil || !strings.Contains(out, "added alice@localhost") || !strings.Contains(out, "store ") {
		t.Fatalf("user add (server stopped): %v\n%s", err, out)
	}

	proc := startRoost(t, bin, dir, append(args, cfgArgs...)...)
	logs := proc.logs
	proc.waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))

	out, err = roost(t, bin, dir, "bob-secret\n", append(append([]string{"user", "add"}, cfgArgs...), "bob@localhost")...)
	if err != nil || !strings.Contains(out, "added bob@localhost") || !strings.Contains(out, "running server") {
		t.Fatalf("user add (server running): %v\n%s", err, out)
	}

	cert := filepath.Join(dir, "roost-data", "roost-cert.pem")
	cmd := exec.Command(python, "seed_example.py", "127.0.0.1", fmt.Sprint(port), "localhost",
		"alice", "alice-secret", "bob", "bob-secret", "--cafile", cert, "--timeout", "30")
	res, err := cmd.CombinedOutput()
	t.Logf("seed_example.py:\n%s", res)
	if err != nil || !strings.Contains(string(res), "PASS") {
		t.Fatalf("the slixmpp example failed: %v\nserver log:\n%s", err, logs.String())
	}
	if !strings.Contains(string(res), "starttls=True") {
		t.Errorf("expected the clients to use STARTTLS")
	}

	proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-proc.done:
		if proc.err != nil {
			t.Fatalf("roost exited with %v after SIGTERM; log:\n%s", proc.err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("roost did not stop within 15s of SIGTERM; log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("no clean stop in the log:\n%s", logs.String())
	}
}

// TestGoSendxmpp: Debian's go-sendxmpp (built on github.com/xmppo/go-xmpp)
// sends a message over STARTTLS and over direct TLS to a listening
// go-sendxmpp. It exercises that library's SCRAM quirk (gs2 flag "y" with
// c=biws), which Roost tolerates like Prosody does.
func TestGoSendxmpp(t *testing.T) {
	gsx, err := exec.LookPath("go-sendxmpp")
	if err != nil {
		if os.Getenv("ROOST_ACCEPTANCE") == "require" {
			t.Fatal("go-sendxmpp is not installed (./build.sh test installs it)")
		}
		t.Skip("go-sendxmpp not installed")
	}
	bin := buildRoost(t)
	dir := t.TempDir()
	port, direct := testutil.FreePort(t), testutil.FreePort(t)
	cfg := fmt.Sprintf(`{"listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:%d", "c2s_tls": "127.0.0.1:%d", "dtls": "", "s2s": ""}}`, port, direct)
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(cfg), 0o600)
	if out, err := roost(t, bin, dir, "", "init", "-config", "c.json"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, u := range []string{"alice", "bob"} {
		if out, err := roost(t, bin, dir, u+"-pw\n", "user", "add", "-config", "c.json", u+"@localhost"); err != nil {
			t.Fatalf("user add: %v\n%s", err, out)
		}
	}
	proc := startRoost(t, bin, dir, "run", "-config", "c.json")
	proc.waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
	cert := filepath.Join(dir, "roost-data", "roost-cert.pem")
	env := append(os.Environ(), "HOME="+dir, "SSL_CERT_FILE="+cert)

	listener := exec.Command(gsx, "-l", "-u", "bob@localhost", "-p", "bob-pw", "-j", fmt.Sprintf("127.0.0.1:%d", port))
	listener.Env = env
	var heard testutil.LockedBuffer
	listener.Stdout, listener.Stderr = &heard, &heard
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { listener.Process.Kill(); listener.Wait() }()
	send := func(name, body string, args ...string) {
		t.Helper()
		args = append([]string{"-u", "alice@localhost", "-p", "alice-pw"}, args...)
		cmd := exec.Command(gsx, append(args, "bob@localhost")...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(body + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: go-sendxmpp: %v\n%s\nserver log:\n%s", name, err, out, proc.logs)
		}
	}
	heardAll := func(want ...string) bool {
		for _, w := range want {
			if !strings.Contains(heard.String(), w) {
				return false
			}
		}
		return true
	}
	waitHeard := func(want ...string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !heardAll(want...); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("listener did not print %q in 20 s; it printed:\n%s\nserver log:\n%s", want, heard.String(), proc.logs)
			}
		}
	}
	// The listener is online once a first message reaches it (sent while
	// it logs in, the message waits offline and comes with its presence).
	send("probe", "listener probe", "-j", fmt.Sprintf("127.0.0.1:%d", port))
	waitHeard("alice@localhost: listener probe")

	for _, tc := range []struct {
		name, body string
		args       []string
	}{
		{"STARTTLS", "hello over starttls", []string{"-j", fmt.Sprintf("127.0.0.1:%d", port)}},
		{"direct TLS", "hello over direct tls", []string{"-j", fmt.Sprintf("127.0.0.1:%d", direct), "--tls"}},
	} {
		send(tc.name, tc.body, tc.args...)
	}
	waitHeard("alice@localhost: hello over starttls", "alice@localhost: hello over direct tls")
}

// fixture is a roost process with users, started from a config with free ports.
type fixture struct {
	bin, dir, cert string
	port           int
	proc           *process
}

func newFixture(t *testing.T, users ...string) *fixture {
	t.Helper()
	f := &fixture{bin: buildRoost(t), dir: t.TempDir(), port: testutil.FreePort(t)}
	cfg := fmt.Sprintf(`{"listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:%d", "c2s_tls": "", "dtls": "", "s2s": ""}}`, f.port)
	os.WriteFile(filepath.Join(f.dir, "c.json"), []byte(cfg), 0o600)
	if out, err := roost(t, f.bin, f.dir, "", "init", "-config", "c.json"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, u := range users {
		if out, err := roost(t, f.bin, f.dir, u+"-pw\n", "user", "add", "-config", "c.json", u+"@localhost"); err != nil {
			t.Fatalf("user add: %v\n%s", err, out)
		}
	}
	f.start(t)
	f.cert = filepath.Join(f.dir, "roost-data", "roost-cert.pem")
	return f
}

func (f *fixture) start(t *testing.T) {
	t.Helper()
	f.proc = startRoost(t, f.bin, f.dir, "run", "-config", "c.json")
	f.proc.waitListening(t, fmt.Sprintf("127.0.0.1:%d", f.port))
}

// python runs one of this folder's scripts and requires PASS.
func (f *fixture) python(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(python, args...)
	res, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", args[0], res)
	if err != nil || !strings.Contains(string(res), "PASS") {
		t.Fatalf("%s failed: %v\nserver log:\n%s", args[0], err, f.proc.logs)
	}
}

// TestIMScenarios is issue 4's slixmpp acceptance.
func TestIMScenarios(t *testing.T) {
	needSlixmpp(t)
	f := newFixture(t, "alice", "bob")
	f.python(t, "im_scenarios.py", "127.0.0.1", fmt.Sprint(f.port), "localhost", "alice", "alice-pw", "bob", "bob-pw", "--cafile", f.cert)
}

// TestIMScenariosAioxmpp runs the same scenarios with Debian's
// python3-aioxmpp, a second, independent client library.
func TestIMScenariosAioxmpp(t *testing.T) {
	if err := exec.Command(python, "-c", "import aioxmpp").Run(); err != nil {
		if os.Getenv("ROOST_ACCEPTANCE") == "require" {
			t.Fatalf("python3-aioxmpp is not importable (./build.sh test installs it): %v", err)
		}
		t.Skip("python3-aioxmpp not installed")
	}
	f := newFixture(t, "alice", "bob")
	f.python(t, "im_scenarios_aioxmpp.py", "127.0.0.1", fmt.Sprint(f.port), "localhost", "alice", "alice-pw", "bob", "bob-pw")
}

// TestDurabilityAcrossKill: a subscription approval and an offline message
// that the server acknowledged survive kill -9.
func TestDurabilityAcrossKill(t *testing.T) {
	needSlixmpp(t)
	f := newFixture(t, "alice", "bob", "carol")
	port := fmt.Sprint(f.port)
	f.python(t, "durability.py", "before", "127.0.0.1", port, "localhost", "--cafile", f.cert)
	f.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-f.proc.done
	f.start(t)
	f.python(t, "durability.py", "after", "127.0.0.1", port, "localhost", "--cafile", f.cert)
}
