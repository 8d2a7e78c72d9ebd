package idle

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"roost/devices"
	"roost/storage"
)

// TestIdleDevicesRSS measures N DTLS device sessions: the server's RSS
// per device, and how fast N devices reconnecting at once get in (the
// power-cut case). It reports only.
//
//	ROOST_IDLE_DEVICES=1000 go test -run TestIdleDevicesRSS -v ./tests/idle/
func TestIdleDevicesRSS(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ROOST_IDLE_DEVICES"))
	if n <= 0 {
		t.Skip("set ROOST_IDLE_DEVICES=N to measure N device sessions (./build.sh measure)")
	}
	keys := make([][]byte, n)
	m := runRoost(t, fmt.Sprintf(`"devices":{"handshake_failures_per_minute":%d}`, n+10), true, func(st *storage.Store) {
		for i := range n {
			d, err := devices.Add(st, "localhost", fmt.Sprintf("dev%d", i), "sensor", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			keys[i] = d.PSK
		}
	})
	srv := m.proc
	before := rss(t, srv.Process.Pid)
	raddr := m.dtls
	conns := make([]*dtls.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed int
	sem := make(chan struct{}, 64)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			psk := keys[i]
			c, err := dtls.Dial("udp", raddr, &dtls.Config{
				PSK:             func([]byte) ([]byte, error) { return psk, nil },
				PSKIdentityHint: []byte(fmt.Sprintf("dev%d@localhost/device", i)),
				CipherSuites:    []dtls.CipherSuiteID{dtls.TLS_PSK_WITH_AES_128_CCM_8},
			})
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = c.HandshakeContext(ctx)
				cancel()
			}
			if err == nil {
				_, err = c.Write([]byte("<presence/>"))
			}
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(time.Second)
	after := rss(t, srv.Process.Pid)
	ok := n - failed
	t.Logf("devices=%d connected=%d handshake+presence time=%s (%.0f/s, 64 at a time) rss_before=%d KiB rss_after=%d KiB per_device=%.1f KiB (RssAnon %.1f KiB)",
		n, ok, elapsed.Round(time.Millisecond), float64(ok)/elapsed.Seconds(), before.rss, after.rss,
		float64(after.rss-before.rss)/float64(ok), float64(after.anon-before.anon)/float64(ok))
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	if failed > 0 {
		t.Errorf("%d devices failed to connect", failed)
	}
}
