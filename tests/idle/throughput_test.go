package idle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
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
	keys := make([][]byte, m)
	srv := runRoost(t, `"limits":{"outbound_queue_bytes":67108864}`, true, func(st *storage.Store) {
		st.AddUser("ctl", "pw")
		for i := range m {
			st.AddUser(fmt.Sprintf("idle%d", i), "pw")
			d, _ := devices.Add(st, "localhost", fmt.Sprintf("dev%d", i), "sensor", "", nil)
			keys[i] = d.PSK
		}
	})
	addr, tlsConf := srv.c2s, srv.tls
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
	raddr := srv.dtls
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
