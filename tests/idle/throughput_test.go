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
	"roost/devices/datagram/ack"
	"roost/devices/simulator"
	"roost/storage"
)

// linkWriter sends each Write as one stanza over the binding's
// acknowledgements, waiting for room as a device would.
type linkWriter struct {
	ctx context.Context
	l   *simulator.Link
}

func (w linkWriter) Write(p []byte) (int, error) {
	if err := w.l.Send(w.ctx, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

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
// path in one run. Every sender bursts, unpaced. The devices send twice:
// first without the binding's acknowledgements (best effort: what the
// server's UDP receive buffer absorbs), then with them (§5 of
// docs/datagram-binding.md: paced by the gateway's acks, retransmitted),
// where nothing may be lost.
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
	// measure bursts perSender messages from each sender and counts what
	// the controller received until a second passes without one (and,
	// with drained, until the senders hold nothing unacknowledged).
	measure := func(name string, senders []io.Writer, drained func() bool) (sent, got int64) {
		base := cnt.n.Load()
		start := time.Now()
		var wg sync.WaitGroup
		for _, w := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perSender; i++ {
					if _, err := w.Write(msg); err != nil {
						t.Errorf("%s: %v", name, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		last, quiet := cnt.n.Load(), time.Now()
		for (time.Since(quiet) < time.Second || drained != nil && !drained()) && time.Since(start) < 60*time.Second {
			time.Sleep(50 * time.Millisecond)
			if n := cnt.n.Load(); n != last {
				last, quiet = n, time.Now()
			}
		}
		got = last - base
		sent = int64(len(senders) * perSender)
		elapsed := quiet.Sub(start)
		t.Logf("%s: senders=%d sent=%d received=%d (%.1f%%) in %s: %.0f msg/s", name, len(senders), sent,
			got, 100*float64(got)/float64(sent), elapsed.Round(time.Millisecond), float64(got)/elapsed.Seconds())
		return sent, got
	}
	raddr := srv.dtls
	var devs, linked []io.Writer
	var links []*simulator.Link
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.HandshakeContext(hctx); err != nil {
			t.Fatal(err)
		}
		hcancel()
		defer c.Close()
		devs = append(devs, c)
		l := simulator.NewLink(c, ack.Options{})
		defer l.Close()
		linked = append(linked, linkWriter{ctx, l})
		links = append(links, l)
		go func() { // the device's reader: applies the gateway's acks
			buf := make([]byte, 2048)
			for {
				if _, err := l.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	measure("devices over DTLS, no acks", devs, nil)
	drained := func() bool {
		for _, l := range links {
			if l.Unacked() > 0 {
				return false
			}
		}
		return true
	}
	if sent, got := measure("devices over DTLS with acks", linked, drained); got != sent {
		t.Errorf("devices with acks: %d of %d messages lost", sent-got, sent)
	}
	var clients []io.Writer
	for i := range m {
		c, err := session(addr, tlsConf, fmt.Sprintf("idle%d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	measure("clients over STARTTLS", clients, nil)
}
