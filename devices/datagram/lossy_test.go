package datagram_test

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"roost/devices/datagram/ack"
	"roost/devices/simulator"
)

// lossyRelay forwards UDP between one client and the server and drops a
// fraction of the DTLS application-data records each way, decided by a
// seeded generator per direction. Handshake records pass: their
// retransmission is pion's business, not the binding's.
type lossyRelay struct {
	front, back *net.UDPConn
	server      *net.UDPAddr
	frac        float64

	mu     sync.Mutex
	client *net.UDPAddr

	dropped, passed [2]atomic.Int64 // [0] device to server, [1] server to device
}

func newLossyRelay(t *testing.T, server net.Addr, frac float64, seed int64) *lossyRelay {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	front, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenUDP("udp", lo)
	if err != nil {
		t.Fatal(err)
	}
	r := &lossyRelay{front: front, back: back, server: server.(*net.UDPAddr), frac: frac}
	t.Cleanup(func() { front.Close(); back.Close() })
	go r.pump(0, rand.New(rand.NewSource(seed)))
	go r.pump(1, rand.New(rand.NewSource(seed+1)))
	return r
}

func (r *lossyRelay) addr() string { return r.front.LocalAddr().String() }

func (r *lossyRelay) pump(dir int, rnd *rand.Rand) {
	buf := make([]byte, 64<<10)
	for {
		var n int
		var err error
		if dir == 0 {
			var from *net.UDPAddr
			n, from, err = r.front.ReadFromUDP(buf)
			if err == nil {
				r.mu.Lock()
				r.client = from
				r.mu.Unlock()
			}
		} else {
			n, _, err = r.back.ReadFromUDP(buf)
		}
		if err != nil {
			return
		}
		if n > 0 && (buf[0] == 23 || buf[0] == 25) && rnd.Float64() < r.frac { // application_data (RFC 6347 §4.1), or with a Connection ID (tls12_cid, RFC 9146)
			r.dropped[dir].Add(1)
			continue
		}
		r.passed[dir].Add(1)
		if dir == 0 {
			r.back.WriteToUDP(buf[:n], r.server)
		} else {
			r.mu.Lock()
			c := r.client
			r.mu.Unlock()
			if c != nil {
				r.front.WriteToUDP(buf[:n], c)
			}
		}
	}
}

var readingRE = regexp.MustCompile(`\(reading (\d+)\)`)

// TestLossyPathExactlyOnce (issue 14): the simulator behind a relay that
// drops 20 % of the data datagrams both ways. Every command the
// controller (alice over c2s) sends reaches the device and is executed
// exactly once, every answer comes back exactly once, and every reading
// the device reports reaches the controller exactly once.
func TestLossyPathExactlyOnce(t *testing.T) {
	const commands, readings = 60, 60
	r := start(t)
	o := r.owner(t)
	relay := newLossyRelay(t, r.dev, 0.2, 14)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := simulator.Dial(dctx, simulator.Options{Server: relay.addr(), Identity: "sensor@localhost/device", PSK: r.psk,
		Every: 20 * time.Millisecond, Readings: readings, Acks: ack.Options{MinRTO: 200 * time.Millisecond}})
	dcancel()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()

	seen := map[int]int{}    // reading number -> times the controller saw it
	answers := map[int]int{} // command number -> results received
	sentCommands := false
	deadline := time.Now().Add(90 * time.Second)
	o.conn.SetReadDeadline(deadline)
	for len(seen) < readings || len(answers) < commands {
		e := o.next()
		if e == nil {
			t.Fatalf("controller: stream ended; readings %d/%d, answers %d/%d", len(seen), readings, len(answers), commands)
		}
		switch e.XMLName.Local {
		case "presence":
			if e.From != "sensor@localhost/device" {
				continue
			}
			m := readingRE.FindStringSubmatch(e.Inner)
			if m == nil {
				continue
			}
			n, _ := strconv.Atoi(m[1])
			seen[n]++
			if !sentCommands { // the device is available: command it
				sentCommands = true
				var b strings.Builder
				for i := 1; i <= commands; i++ {
					fmt.Fprintf(&b, "<iq type='set' id='c%d' to='sensor@localhost/device'><command xmlns='http://jabber.org/protocol/commands' node='set' action='execute'>"+
						"<x xmlns='jabber:x:data' type='submit'><field var='setpoint'><value>%d</value></field></x></command></iq>", i, i)
				}
				io.WriteString(o.conn, b.String())
			}
		case "iq":
			if e.Type != "result" || !strings.HasPrefix(e.ID, "c") {
				if e.Type == "error" {
					t.Fatalf("command %s failed: %s", e.ID, e.Inner)
				}
				continue
			}
			n, _ := strconv.Atoi(e.ID[1:])
			if !strings.Contains(e.Inner, fmt.Sprintf("setpoint %d.0", n)) {
				t.Fatalf("answer to %s: %s", e.ID, e.Inner)
			}
			answers[n]++
		}
	}
	for n, c := range seen {
		if c != 1 || n < 1 || n > readings {
			t.Errorf("reading %d seen %d times", n, c)
		}
	}
	for n, c := range answers {
		if c != 1 || n < 1 || n > commands {
			t.Errorf("command %d answered %d times", n, c)
		}
	}
	if got := s.Commands(); got != commands {
		t.Errorf("the device executed %d commands, want %d (each exactly once)", got, commands)
	}
	select {
	case err := <-runErr:
		t.Fatalf("the simulator stopped: %v", err)
	default:
	}
	t.Logf("relay: device->server dropped %d passed %d; server->device dropped %d passed %d",
		relay.dropped[0].Load(), relay.passed[0].Load(), relay.dropped[1].Load(), relay.passed[1].Load())
	if relay.dropped[0].Load() == 0 || relay.dropped[1].Load() == 0 {
		t.Fatal("the relay dropped nothing one way: the test proves nothing")
	}
	// Nothing more arrives: no late duplicate (a short quiet window after
	// a ping round trip through the server).
	io.WriteString(o.conn, "<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		e := o.next()
		if e == nil {
			t.Fatal("controller: stream ended")
		}
		if e.XMLName.Local == "iq" && e.ID == "end" {
			break
		}
		if e.XMLName.Local == "iq" && strings.HasPrefix(e.ID, "c") {
			t.Fatalf("a late duplicate answer %s", e.ID)
		}
		if e.XMLName.Local == "presence" && readingRE.MatchString(e.Inner) {
			t.Fatalf("a late duplicate reading: %s", e.Inner)
		}
	}
}
