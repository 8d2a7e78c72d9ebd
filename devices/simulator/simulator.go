// Package simulator is a virtual sensor speaking Roost's datagram binding
// (docs/datagram-binding.md): it is what `roost device simulate` runs, the
// way to try a gateway before any hardware exists, and the reference
// client firmware writers can read. It keeps to what a small C program
// would do: one DTLS association, one stanza per datagram with the
// binding's acknowledgements (Link), a few fixed replies.
package simulator

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"

	"roost/devices/datagram/ack"
	"roost/wire/stanza"
)

// Options describe the device to simulate.
type Options struct {
	Server   string        // host:port of the gateway's DTLS listener
	Identity string        // PSK identity: the device's full JID
	PSK      []byte        // its pre-shared key
	Every    time.Duration // how often to report a reading
	Log      *slog.Logger
	// Readings, when above 0, stops reporting after that many readings
	// (the device goes on answering commands).
	Readings int
	// Acks tunes the acknowledgements (zero: the binding's defaults).
	Acks ack.Options
}

// Sensor is a running simulated device.
type Sensor struct {
	o    Options
	conn *dtls.Conn
	link *Link
	mu   sync.Mutex
	temp float64 // the reading
	set  float64 // the setpoint, changed by the "set" command

	reported atomic.Int64 // readings sent
	commands atomic.Int64 // read and set commands executed
}

// Dial performs the DTLS handshake with the gateway.
func Dial(ctx context.Context, o Options) (*Sensor, error) {
	ua, err := net.ResolveUDPAddr("udp", o.Server)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", o.Server, err)
	}
	conf := &dtls.Config{
		PSK:                   func([]byte) ([]byte, error) { return o.PSK, nil },
		PSKIdentityHint:       []byte(o.Identity),
		CipherSuites:          []dtls.CipherSuiteID{dtls.TLS_PSK_WITH_AES_128_CCM_8},
		ConnectionIDGenerator: dtls.OnlySendCIDGenerator(),
	}
	c, err := dtls.Dial("udp", ua, conf)
	if err != nil {
		return nil, fmt.Errorf("dtls to %s: %w", o.Server, err)
	}
	if err := c.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("dtls handshake with %s (a wrong key shows as a timeout): %w", o.Server, err)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	return &Sensor{o: o, conn: c, link: NewLink(c, o.Acks), temp: 21.5, set: 21}, nil
}

// Close stops retransmitting and sends the DTLS close alert: the gateway
// marks the device unavailable.
func (s *Sensor) Close() error {
	s.link.Close()
	return s.conn.Close()
}

// send queues a reply from the reading goroutine: it cannot wait for
// acknowledgements, which that goroutine reads.
func (s *Sensor) send(b []byte) error { return s.link.TrySend(b) }

// Reported is the number of readings sent; Commands the number of read
// and set commands executed (a retransmitted command is executed once).
func (s *Sensor) Reported() int64 { return s.reported.Load() }

// Commands is the number of read and set commands executed.
func (s *Sensor) Commands() int64 { return s.commands.Load() }

// Unacked is the number of stanzas the gateway has not acknowledged.
func (s *Sensor) Unacked() int { return s.link.Unacked() }

// Run announces the device, reports a reading every o.Every as its
// presence status, and answers commands until ctx ends. It returns
// ErrGone when the gateway stopped acknowledging (connect again).
func (s *Sensor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reports := make(chan error, 1)
	go func() { reports <- s.reportEvery(ctx) }()
	go func() {
		select {
		case <-ctx.Done():
		case <-s.link.Gone():
		}
		s.conn.SetReadDeadline(time.Now())
	}()
	buf := make([]byte, 16<<10)
	for {
		got, err := s.link.Read(buf)
		select {
		case <-s.link.Gone():
			return ErrGone
		default:
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		for _, st := range got {
			if err := s.handle(st); err != nil {
				return err
			}
		}
		select {
		case err := <-reports:
			if err != nil {
				return err
			}
			reports = nil
		default:
		}
	}
}

// reportEvery sends the first reading at once (its presence makes the
// device available) and then one every o.Every, each waiting for room in
// the acknowledgement queue.
func (s *Sensor) reportEvery(ctx context.Context) error {
	tick := time.NewTicker(s.o.Every)
	defer tick.Stop()
	for {
		if err := s.report(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if s.o.Readings > 0 && s.reported.Load() >= int64(s.o.Readings) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		s.mu.Lock()
		s.temp += (s.set-s.temp)*0.3 + (rand.Float64()-0.5)*0.2
		s.mu.Unlock()
	}
}

// report sends the current reading as presence status: every owner,
// subscribed to the device, sees it. The reading's number lets an owner
// see that none is missing.
func (s *Sensor) report(ctx context.Context) error {
	s.mu.Lock()
	t := s.temp
	s.mu.Unlock()
	n := s.reported.Add(1)
	return s.link.Send(ctx, []byte(fmt.Sprintf("<presence><status>temperature %.1f C (reading %d)</status></presence>", t, n)))
}

// iq is what the sensor reads of an incoming iq.
type iq struct {
	Type    string `xml:"type,attr"`
	ID      string `xml:"id,attr"`
	From    string `xml:"from,attr"`
	Command *struct {
		Node   string `xml:"node,attr"`
		Action string `xml:"action,attr"`
		Fields []struct {
			Var   string `xml:"var,attr"`
			Value string `xml:"value"`
		} `xml:"x>field"`
	} `xml:"http://jabber.org/protocol/commands command"`
	Items *struct {
		Node string `xml:"node,attr"`
	} `xml:"http://jabber.org/protocol/disco#items query"`
	Ping *struct{} `xml:"urn:xmpp:ping ping"`
}

const nsCommands = "http://jabber.org/protocol/commands"

// handle answers the iqs a sensor understands: ping, the list of its
// commands (XEP-0030 on the XEP-0050 node) and the read and set commands.
// An error is a reply that could not be queued.
func (s *Sensor) handle(b []byte) error {
	var q iq
	if err := xml.Unmarshal(b, &q); err != nil || (q.Type != "get" && q.Type != "set") {
		return nil // presence, messages, results: nothing to answer
	}
	head := fmt.Sprintf("<iq type='result' id='%s' to='%s'>", esc(q.ID), esc(q.From))
	switch {
	case q.Ping != nil:
		return s.send([]byte(head[:len(head)-1] + "/>"))
	case q.Items != nil && q.Items.Node == nsCommands:
		return s.send([]byte(head + "<query xmlns='http://jabber.org/protocol/disco#items' node='" + nsCommands + "'>" +
			"<item jid='" + esc(s.o.Identity) + "' node='read' name='Read the temperature'/>" +
			"<item jid='" + esc(s.o.Identity) + "' node='set' name='Set the setpoint'/></query></iq>"))
	case q.Command != nil && q.Command.Node == "read":
		s.mu.Lock()
		t := s.temp
		s.mu.Unlock()
		s.commands.Add(1)
		return s.send([]byte(head + "<command xmlns='" + nsCommands + "' node='read' sessionid='r" + esc(q.ID) + "' status='completed'>" +
			"<x xmlns='jabber:x:data' type='result'><field var='reading' label='Temperature (C)'><value>" +
			strconv.FormatFloat(t, 'f', 1, 64) + "</value></field></x></command></iq>"))
	case q.Command != nil && q.Command.Node == "set":
		for _, f := range q.Command.Fields {
			if f.Var == "setpoint" {
				if v, err := strconv.ParseFloat(f.Value, 64); err == nil {
					s.mu.Lock()
					s.set = v
					s.mu.Unlock()
					s.commands.Add(1)
					return s.send([]byte(head + "<command xmlns='" + nsCommands + "' node='set' sessionid='s" + esc(q.ID) + "' status='completed'>" +
						"<note type='info'>setpoint " + strconv.FormatFloat(v, 'f', 1, 64) + "</note></command></iq>"))
				}
			}
		}
		// First step: ask for the value with a form.
		return s.send([]byte(head + "<command xmlns='" + nsCommands + "' node='set' sessionid='s" + esc(q.ID) + "' status='executing'>" +
			"<x xmlns='jabber:x:data' type='form'><field var='setpoint' type='text-single' label='Setpoint (C)'/></x></command></iq>"))
	default:
		return s.send([]byte(fmt.Sprintf("<iq type='error' id='%s' to='%s'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", esc(q.ID), esc(q.From))))
	}
}

func esc(s string) string { return string(stanza.AppendEscaped(nil, s)) }
