package acceptance

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"roost/tests/testutil"
)

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// deviceFixture is a roost with a user (alice, the owner) and a device.
type deviceFixture struct {
	*fixture
	dtls int
	psk  string
}

func newDeviceFixture(t *testing.T, device string) *deviceFixture {
	t.Helper()
	f := &fixture{bin: buildRoost(t), dir: t.TempDir(), port: testutil.FreePort(t)}
	d := &deviceFixture{fixture: f, dtls: freeUDPPort(t)}
	cfg := fmt.Sprintf(`{"log_level": "debug", "listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:%d", "c2s_tls": "", "dtls": "127.0.0.1:%d"},
		"devices": {"idle_timeout": "3s"}}`, f.port, d.dtls)
	os.WriteFile(filepath.Join(f.dir, "c.json"), []byte(cfg), 0o600)
	if out, err := roost(t, f.bin, f.dir, "", "init", "-config", "c.json"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if out, err := roost(t, f.bin, f.dir, "alice-pw\n", "user", "add", "-config", "c.json", "alice@localhost"); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	out, err := roost(t, f.bin, f.dir, "", "device", "add", "-config", "c.json", "-kind", "thermometer", "-owner", "alice", device)
	if err != nil {
		t.Fatalf("device add: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`psk:\s+([0-9a-f]{32})`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "identity: "+device+"@localhost/device") {
		t.Fatalf("device add output:\n%s", out)
	}
	d.psk = m[1]
	f.start(t)
	f.cert = filepath.Join(f.dir, "roost-data", "roost-cert.pem")
	return d
}

// controllerProc is a running device_controller.py.
type controllerProc struct {
	cmd   *exec.Cmd
	out   testutil.LockedBuffer
	lines chan string // each line it prints; closed at its end
}

// controller starts device_controller.py and waits for it to be ready.
func (d *deviceFixture) controller(t *testing.T, extra ...string) *controllerProc {
	t.Helper()
	args := append([]string{"device_controller.py", "127.0.0.1", fmt.Sprint(d.port), "localhost", "alice", "alice-pw", "thermo1", "--cafile", d.cert}, extra...)
	c := &controllerProc{cmd: exec.Command(python, args...), lines: make(chan string, 100)}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = c.cmd.Stdout
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.out.Write([]byte(sc.Text() + "\n"))
			c.lines <- strings.TrimSpace(sc.Text())
		}
	}()
	c.expect(t, d, "ready")
	return c
}

// expect waits (30 s at most) for the controller to print the line want.
func (c *controllerProc) expect(t *testing.T, d *deviceFixture, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("controller ended before printing %q:\n%s\nserver log:\n%s", want, c.out.String(), d.proc.logs)
			}
			if line == want {
				return
			}
		case <-timeout:
			t.Fatalf("controller did not print %q in 30 s:\n%s\nserver log:\n%s", want, c.out.String(), d.proc.logs)
		}
	}
}

// wait waits for the controller to end (60 s at most) and returns all it
// printed.
func (c *controllerProc) wait(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	go func() {
		for range c.lines {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Errorf("controller still running after 60 s")
		c.cmd.Process.Kill()
		<-done
	}
	c.cmd.Wait()
	return c.out.String()
}

// TestDeviceOverOpenSSL: a DTLS client nobody here wrote (openssl
// s_client with a PSK) is the device; a slixmpp controller that owns it
// sees it come online, gets its message, and sees it go away.
func TestDeviceOverOpenSSL(t *testing.T) {
	needSlixmpp(t)
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (Debian package openssl)")
	}
	d := newDeviceFixture(t, "thermo1")
	ctl := d.controller(t)
	ossl := exec.Command("openssl", "s_client", "-dtls1_2", "-connect", fmt.Sprintf("127.0.0.1:%d", d.dtls),
		"-psk_identity", "thermo1@localhost/device", "-psk", d.psk, "-cipher", "PSK-AES128-CCM8", "-quiet")
	in, _ := ossl.StdinPipe()
	var osslOut testutil.LockedBuffer
	ossl.Stdout, ossl.Stderr = &osslOut, &osslOut
	if err := ossl.Start(); err != nil {
		t.Fatal(err)
	}
	// Each step waits for the controller to see the previous one.
	io.WriteString(in, "<presence/>\n")
	ctl.expect(t, d, "online")
	io.WriteString(in, "<message to='alice@localhost' type='chat'><body>21.5</body></message>\n")
	ctl.expect(t, d, "message")
	in.Close()
	done := make(chan struct{})
	go func() { ossl.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		ossl.Process.Kill()
	}
	res := ctl.wait(t)
	t.Logf("controller:\n%s\nopenssl:\n%s", res, osslOut.String())
	if !strings.Contains(res, "PASS") {
		t.Fatalf("controller failed; server log:\n%s", d.proc.logs)
	}
}

// TestDeviceCommands: a slixmpp controller runs the XEP-0050 "read"
// command on a simulated device (roost device simulate) and gets the
// reading; a command to a device that is not connected fails at once.
func TestDeviceCommands(t *testing.T) {
	needSlixmpp(t)
	d := newDeviceFixture(t, "thermo1")
	if out, err := roost(t, d.bin, d.dir, "", "device", "add", "-config", "c.json", "-owner", "alice", "thermo2"); err != nil {
		t.Fatalf("device add: %v\n%s", err, out)
	}
	ctl := d.controller(t, "--command", "read", "--offline", "thermo2")
	sim := exec.Command(d.bin, "device", "simulate", "-config", "c.json", "-psk", d.psk, "-every", "1s", "thermo1")
	sim.Dir = d.dir
	var simOut testutil.LockedBuffer
	sim.Stdout, sim.Stderr = &simOut, &simOut
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sim.Process.Kill(); sim.Wait() }()
	res := ctl.wait(t)
	t.Logf("controller:\n%s\nsimulator:\n%s", res, simOut.String())
	if !strings.Contains(res, "PASS") {
		t.Fatalf("controller failed; server log:\n%s", d.proc.logs)
	}
}
