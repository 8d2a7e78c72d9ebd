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
	cfg := fmt.Sprintf(`{"log_level": "debug", "listen": {"c2s": "127.0.0.1:%d", "c2s_tls": "", "dtls": "127.0.0.1:%d"},
		"devices": {"idle_timeout": "3s"}}`, f.port, d.dtls)
	os.WriteFile(filepath.Join(f.dir, "c.json"), []byte(cfg), 0o600)
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

// controller starts device_controller.py and waits for it to be ready.
func (d *deviceFixture) controller(t *testing.T, extra ...string) (wait func() string) {
	t.Helper()
	args := append([]string{"device_controller.py", "127.0.0.1", fmt.Sprint(d.port), "localhost", "alice", "alice-pw", "thermo1", "--cafile", d.cert}, extra...)
	cmd := exec.Command(python, args...)
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		all.WriteString(line)
		if strings.TrimSpace(line) == "ready" {
			break
		}
		if err != nil {
			t.Fatalf("controller did not get ready:\n%s\nserver log:\n%s", all.String(), d.proc.logs)
		}
	}
	return func() string {
		rest, _ := io.ReadAll(r)
		cmd.Wait()
		return all.String() + string(rest)
	}
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
	wait := d.controller(t)
	ossl := exec.Command("openssl", "s_client", "-dtls1_2", "-connect", fmt.Sprintf("127.0.0.1:%d", d.dtls),
		"-psk_identity", "thermo1@localhost/device", "-psk", d.psk, "-cipher", "PSK-AES128-CCM8", "-quiet")
	in, _ := ossl.StdinPipe()
	var osslOut testutil.LockedBuffer
	ossl.Stdout, ossl.Stderr = &osslOut, &osslOut
	if err := ossl.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "<presence/>\n")
	time.Sleep(time.Second)
	io.WriteString(in, "<message to='alice@localhost' type='chat'><body>21.5</body></message>\n")
	time.Sleep(time.Second)
	in.Close()
	done := make(chan struct{})
	go func() { ossl.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		ossl.Process.Kill()
	}
	res := wait()
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
	wait := d.controller(t, "--command", "read", "--offline", "thermo2")
	sim := exec.Command(d.bin, "device", "simulate", "-config", "c.json", "-psk", d.psk, "-every", "1s", "thermo1")
	sim.Dir = d.dir
	var simOut testutil.LockedBuffer
	sim.Stdout, sim.Stderr = &simOut, &simOut
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sim.Process.Kill(); sim.Wait() }()
	res := wait()
	t.Logf("controller:\n%s\nsimulator:\n%s", res, simOut.String())
	if !strings.Contains(res, "PASS") {
		t.Fatalf("controller failed; server log:\n%s", d.proc.logs)
	}
}
