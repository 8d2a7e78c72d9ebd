// Package simulator is a virtual sensor speaking Roost's datagram binding
// (docs/datagram-binding.md): it is what `roost device simulate` runs, the
// way to try a gateway before any hardware exists, and the reference
// client firmware writers can read. It keeps to what a small C program
// would do: one DTLS association, one stanza per datagram, a few fixed
// replies.
package simulator

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pion/dtls/v3"

	"roost/wire/stanza"
)

// Options describe the device to simulate.
type Options struct {
	Server   string        // host:port of the gateway's DTLS listener
	Identity string        // PSK identity: the device's full JID
	PSK      []byte        // its pre-shared key
	Every    time.Duration // how often to report a reading
	Log      *slog.Logger
}

// Sensor is a running simulated device.
type Sensor struct {
	o    Options
	conn *dtls.Conn
	mu   sync.Mutex
	temp float64 // the reading
	set  float64 // the setpoint, changed by the "set" command
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
	return &Sensor{o: o, conn: c, temp: 21.5, set: 21}, nil
}

// Close sends the DTLS close alert: the gateway marks the device unavailable.
func (s *Sensor) Close() error { return s.conn.Close() }

func (s *Sensor) send(b []byte) error {
	_, err := s.conn.Write(b)
	return err
}

// Run announces the device, reports a reading every o.Every as its
// presence status, and answers commands until ctx ends.
func (s *Sensor) Run(ctx context.Context) error {
	if err := s.report(); err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		s.conn.SetReadDeadline(time.Now())
	}()
	tick := time.NewTicker(s.o.Every)
	defer tick.Stop()
	buf := make([]byte, 16<<10)
	for {
		s.conn.SetReadDeadline(time.Now().Add(s.o.Every))
		n, err := s.conn.Read(buf)
		if ctx.Err() != nil {
			return nil
		}
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
		case err != nil:
			return fmt.Errorf("read: %w", err)
		default:
			s.handle(buf[:n])
		}
		select {
		case <-tick.C:
			s.mu.Lock()
			s.temp += (s.set-s.temp)*0.3 + (rand.Float64()-0.5)*0.2
			s.mu.Unlock()
			if err := s.report(); err != nil {
				return err
			}
		default:
		}
	}
}

// report sends the current reading as presence status: every owner,
// subscribed to the device, sees it.
func (s *Sensor) report() error {
	s.mu.Lock()
	t := s.temp
	s.mu.Unlock()
	return s.send([]byte(fmt.Sprintf("<presence><status>temperature %.1f C</status></presence>", t)))
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
func (s *Sensor) handle(b []byte) {
	var q iq
	if err := xml.Unmarshal(b, &q); err != nil || (q.Type != "get" && q.Type != "set") {
		return // presence, messages, results: nothing to answer
	}
	head := fmt.Sprintf("<iq type='result' id='%s' to='%s'>", esc(q.ID), esc(q.From))
	switch {
	case q.Ping != nil:
		s.send([]byte(head[:len(head)-1] + "/>"))
	case q.Items != nil && q.Items.Node == nsCommands:
		s.send([]byte(head + "<query xmlns='http://jabber.org/protocol/disco#items' node='" + nsCommands + "'>" +
			"<item jid='" + esc(s.o.Identity) + "' node='read' name='Read the temperature'/>" +
			"<item jid='" + esc(s.o.Identity) + "' node='set' name='Set the setpoint'/></query></iq>"))
	case q.Command != nil && q.Command.Node == "read":
		s.mu.Lock()
		t := s.temp
		s.mu.Unlock()
		s.send([]byte(head + "<command xmlns='" + nsCommands + "' node='read' sessionid='r" + esc(q.ID) + "' status='completed'>" +
			"<x xmlns='jabber:x:data' type='result'><field var='reading' label='Temperature (C)'><value>" +
			strconv.FormatFloat(t, 'f', 1, 64) + "</value></field></x></command></iq>"))
	case q.Command != nil && q.Command.Node == "set":
		for _, f := range q.Command.Fields {
			if f.Var == "setpoint" {
				if v, err := strconv.ParseFloat(f.Value, 64); err == nil {
					s.mu.Lock()
					s.set = v
					s.mu.Unlock()
					s.send([]byte(head + "<command xmlns='" + nsCommands + "' node='set' sessionid='s" + esc(q.ID) + "' status='completed'>" +
						"<note type='info'>setpoint " + strconv.FormatFloat(v, 'f', 1, 64) + "</note></command></iq>"))
					return
				}
			}
		}
		// First step: ask for the value with a form.
		s.send([]byte(head + "<command xmlns='" + nsCommands + "' node='set' sessionid='s" + esc(q.ID) + "' status='executing'>" +
			"<x xmlns='jabber:x:data' type='form'><field var='setpoint' type='text-single' label='Setpoint (C)'/></x></command></iq>"))
	default:
		s.send([]byte(fmt.Sprintf("<iq type='error' id='%s' to='%s'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", esc(q.ID), esc(q.From))))
	}
}

func esc(s string) string { return string(stanza.AppendEscaped(nil, s)) }
