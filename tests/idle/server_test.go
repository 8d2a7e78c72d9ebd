package idle

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"roost/storage"
	"roost/tests/testutil"
)

// measured is a stripped roost binary running for a measurement.
type measured struct {
	proc *exec.Cmd
	dir  string       // the server's working directory (data in roost-data/)
	c2s  string       // STARTTLS address
	web  string       // the HTTPS listener (listen.https): the WebSocket and /metrics
	ws   string       // wss://…/xmpp-websocket
	dtls *net.UDPAddr // nil when off
	tls  *tls.Config  // trusts the generated certificate
}

// runRoost builds the binary, lets setup fill a fresh store (accounts
// written directly: the CLI would take a process per account), starts
// `roost run` with the config overlay extra (JSON members, may be empty)
// and waits until it listens. withDTLS also opens the device listener.
func runRoost(t *testing.T, extra string, withDTLS bool, setup func(*storage.Store)) *measured {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "roost")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	m := &measured{dir: dir, c2s: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), web: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))}
	m.ws = "wss://" + m.web + "/xmpp-websocket"
	dtls := `""`
	if withDTLS {
		pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
		m.dtls = pc.LocalAddr().(*net.UDPAddr)
		pc.Close()
		dtls = fmt.Sprintf("%q", m.dtls.String())
	}
	if extra != "" {
		extra = "," + extra
	}
	cfg := fmt.Sprintf(`{"log_level":"warn","listen":{"https":%q,"c2s":%q,"c2s_tls":"","dtls":%s}%s}`, m.web, m.c2s, dtls, extra)
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(cfg), 0o600)
	os.MkdirAll(filepath.Join(dir, "roost-data"), 0o700)
	st, err := storage.Open(filepath.Join(dir, "roost-data", "roost.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	setup(st)
	st.Close()
	m.proc = exec.Command(bin, "run", "-config", "c.json")
	m.proc.Dir = dir
	m.proc.Stderr = os.Stderr
	if err := m.proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.proc.Process.Kill(); m.proc.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", m.c2s); err == nil {
			c.Close()
			if c, err := net.Dial("tcp", m.web); err == nil {
				c.Close()
				break
			}
		}
		if i > 400 {
			t.Fatal("server did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "roost-data", "roost-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	m.tls = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	time.Sleep(200 * time.Millisecond)
	return m
}
