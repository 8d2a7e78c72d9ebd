package idle

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"roost/devices"
	"roost/storage"
)

// counter counts "<message" in a byte stream.
type counter struct {
	n    atomic.Int64
	tail []byte
}

func (c *counter) Write(p []byte) (int, error) {
	b := append(c.tail, p...)
	c.n.Add(int64(bytes.Count(b, []byte("<message"))))
	if len(b) > 7 {
		c.tail = append(c.tail[:0], b[len(b)-7:]...)
	} else {
		c.tail = append(c.tail[:0], b...)
	}
	return len(p), nil
}

// TestThroughputDevicesVsC2S sends messages to one controller from M
// devices over DTLS, then from M clients over STARTTLS, and reports the
// rate the controller received at: the datagram path against the TCP
// path in one run. It reports only.
//
//	ROOST_THROUGHPUT=1 go test -run TestThroughputDevicesVsC2S -v ./tests/idle/
func TestThroughputDevicesVsC2S(t *testing.T) {
	if os.Getenv("ROOST_THROUGHPUT") == "" {
		t.Skip("set ROOST_THROUGHPUT=1 (./build.sh measure)")
	}
	const m, perSender = 20, 2000
	dir := t.TempDir()
	bin := filepath.Join(dir, "roost")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	port := freePort(t)
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	udpPort := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	cfg := fmt.Sprintf(`{"log_level":"warn","listen":{"c2s":"127.0.0.1:%d","c2s_tls":"","dtls":"127.0.0.1:%d"},"limits":{"outbound_queue_bytes":67108864}}`, port, udpPort)
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(cfg), 0o600)
	os.MkdirAll(filepath.Join(dir, "roost-data"), 0o700)
	st, err := storage.Open(filepath.Join(dir, "roost-data", "roost.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.AddUser("ctl", "pw")
	keys := make([][]byte, m)
	for i := range m {
		st.AddUser(fmt.Sprintf("idle%d", i), "pw")
		d, _ := devices.Add(st, "localhost", fmt.Sprintf("dev%d", i), "sensor", "", nil)
		keys[i] = d.PSK
	}
	st.Close()
	srv := exec.Command(bin, "run", "-config", "c.json")
	srv.Dir = dir
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if i > 400 {
			t.Fatal("server did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	pem, _ := os.ReadFile(filepath.Join(dir, "roost-data", "roost-cert.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	cnt := &counter{}
	if _, err := sessionTo(addr, tlsConf, "ctl", cnt); err != nil {
		t.Fatal(err)
	}
	msg := []byte("<message to='ctl@localhost' type='chat'><body>temperature 21.5</body></message>")
	measure := func(name string, senders []io.Writer) {
		base := cnt.n.Load()
		start := time.Now()
		var wg sync.WaitGroup
		for _, w := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perSender; i++ {
					if _, err := w.Write(msg); err != nil {
						return
					}
					if i%50 == 49 {
						time.Sleep(time.Millisecond) // UDP has no flow control: pace a little
					}
				}
			}()
		}
		wg.Wait()
		last, quiet := cnt.n.Load(), time.Now()
		for time.Since(quiet) < time.Second && time.Since(start) < 60*time.Second {
			time.Sleep(50 * time.Millisecond)
			if n := cnt.n.Load(); n != last {
				last, quiet = n, time.Now()
			}
		}
		got := last - base
		elapsed := quiet.Sub(start)
		t.Logf("%s: senders=%d sent=%d received=%d (%.1f%%) in %s: %.0f msg/s", name, len(senders), len(senders)*perSender,
			got, 100*float64(got)/float64(len(senders)*perSender), elapsed.Round(time.Millisecond), float64(got)/elapsed.Seconds())
	}
	raddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: udpPort}
	var devs []io.Writer
	for i := range m {
		psk := keys[i]
		c, err := dtls.Dial("udp", raddr, &dtls.Config{
			PSK:             func([]byte) ([]byte, error) { return psk, nil },
			PSKIdentityHint: []byte(fmt.Sprintf("dev%d@localhost/device", i)),
			CipherSuites:    []dtls.CipherSuiteID{dtls.TLS_PSK_WITH_AES_128_CCM_8},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.HandshakeContext(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		defer c.Close()
		devs = append(devs, c)
	}
	measure("devices over DTLS", devs)
	var clients []io.Writer
	for i := range m {
		c, err := session(addr, tlsConf, fmt.Sprintf("idle%d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	measure("clients over STARTTLS", clients)
}
