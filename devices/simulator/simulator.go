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
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"strconv"
	"strings"
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

	reported  atomic.Int64 // readings sent
	commands  atomic.Int64 // read and set commands executed
	published atomic.Int64 // publishes the gateway confirmed
	pubFailed atomic.Bool  // the last publish was refused (logged once)
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
		return nil, handshakeError(o, err)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Every <= 0 {
		o.Every = 5 * time.Second
	}
	return &Sensor{o: o, conn: c, link: NewLink(c, o.Acks), temp: 21.5, set: 21}, nil
}

// handshakeError says what a failed handshake means for the operator
// (issue 17). A wrong key gives no alert: the gateway drops a Finished it
// cannot decrypt (RFC 6347 §4.1.2.7), so the handshake times out; the
// gateway's log names the device and says "wrong key". An identity the
// gateway does not know is refused at once with a fatal alert.
func handshakeError(o Options, err error) error {
	var alerted interface{ IsFatalOrCloseNotify() bool } // pion's alert error
	switch {
	case errors.As(err, &alerted) && alerted.IsFatalOrCloseNotify():
		return fmt.Errorf("the gateway %s refused the identity %q at once: is the device added (roost device list) and its identity name@domain/resource right? (%w)", o.Server, o.Identity, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer to the DTLS handshake from %s: a wrong key (the gateway's log then names the device and says \"wrong key\"; run roost device rekey and use the new one), or the gateway is not reachable there: %w", o.Server, err)
	}
	return fmt.Errorf("dtls handshake with %s: %w", o.Server, err)
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

// Published is the number of readings the gateway confirmed stored in
// the device's PEP node (iq results to the publishes).
func (s *Sensor) Published() int64 { return s.published.Load() }

// Unacked is the number of stanzas the gateway has not acknowledged.
func (s *Sensor) Unacked() int { return s.link.Unacked() }

// Run announces the device, reports a reading every o.Every (as its
// presence status and as a PEP item, see report), and answers commands
// until ctx ends. It returns ErrGone when the gateway stopped
// acknowledging (connect again).
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

// report sends the current reading twice: as presence status, which
// every owner (subscribed to the device) sees and the status page shows,
// with the reading's number so that an owner can see none is missing; and
// published to the device's own PEP node (docs/datagram-binding.md,
// "Readings (PEP)"), where the gateway keeps the latest value for
// whoever asks later and notifies the subscribers.
func (s *Sensor) report(ctx context.Context) error {
	s.mu.Lock()
	t := s.temp
	s.mu.Unlock()
	n := s.reported.Add(1)
	if err := s.link.Send(ctx, []byte(fmt.Sprintf("<presence><status>temperature %.1f C (reading %d)</status></presence>", t, n))); err != nil {
		return err
	}
	return s.link.Send(ctx, Publish(nil, "pub-"+strconv.FormatInt(n, 10), Reading{
		Sensor: "temperature", Value: strconv.FormatFloat(t, 'f', 1, 64), Unit: "Cel", Time: time.Now()}))
}

// Readings are published to this PEP node (XEP-0163: a node is named
// after its payload's namespace), one item per sensor.
const NSReading = "urn:roost:sensor:0"

// Reading is one sensor's value as the device publishes it.
type Reading struct {
	Sensor string    // the sensor's name: the item id
	Value  string    // the value, a decimal number
	Unit   string    // the unit as RFC 8428 (SenML) names it: Cel, %RH, Pa, W, ...
	Time   time.Time // when it was read (sent in UTC, RFC 3339)
}

// Publish appends the iq that publishes r to the device's own PEP node
// (XEP-0060 §7.1; an iq without 'to' is handled for the sender's own
// account, RFC 6120 §10.3.3, whose bare JID is its PEP service; XEP-0163
// §4.2: publishing creates the node), with the item id
// the sensor's name so that the node keeps one latest item per sensor.
// A temperature reading is 275 bytes: far inside one datagram.
func Publish(dst []byte, id string, r Reading) []byte {
	dst = append(dst, "<iq type='set' id='"...)
	dst = stanza.AppendEscaped(dst, id)
	dst = append(dst, "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='"+NSReading+"'><item id='"...)
	dst = stanza.AppendEscaped(dst, r.Sensor)
	dst = append(dst, "'><reading xmlns='"+NSReading+"' sensor='"...)
	dst = stanza.AppendEscaped(dst, r.Sensor)
	dst = append(dst, "' value='"...)
	dst = stanza.AppendEscaped(dst, r.Value)
	dst = append(dst, "' unit='"...)
	dst = stanza.AppendEscaped(dst, r.Unit)
	dst = append(dst, "' time='"...)
	dst = r.Time.UTC().AppendFormat(dst, time.RFC3339)
	return append(dst, "'/></item></publish></pubsub></iq>"...)
}

// iq is what the sensor reads of an incoming iq.
type iq struct {
	XMLName xml.Name
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
	Ping  *struct{} `xml:"urn:xmpp:ping ping"`
	Error *struct {
		Type  string `xml:"type,attr"`
		Conds []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"error"`
}

const nsCommands = "http://jabber.org/protocol/commands"

// handle answers the iqs a sensor understands: ping, the list of its
// commands (XEP-0030 on the XEP-0050 node) and the read and set commands.
// An error is a reply that could not be queued.
func (s *Sensor) handle(b []byte) error {
	var q iq
	if err := xml.Unmarshal(b, &q); err != nil {
		return nil // not an iq the sensor understands: nothing to answer
	}
	if q.Type == "result" || q.Type == "error" {
		if q.XMLName.Local == "iq" && strings.HasPrefix(q.ID, "pub-") {
			s.published1(q)
		}
		return nil
	}
	if q.Type != "get" && q.Type != "set" {
		return nil // presence, messages: nothing to answer
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

// published1 takes the gateway's answer to a publish: a refusal is
// logged once, not once per reading (a gateway without PEP would flood
// the log), and so is the recovery.
func (s *Sensor) published1(q iq) {
	if q.Type == "result" {
		s.published.Add(1)
		if s.pubFailed.Swap(false) {
			s.o.Log.Info("publishing readings over PEP works again", "identity", s.o.Identity)
		}
		return
	}
	if s.pubFailed.Swap(true) {
		return
	}
	cond := "unknown"
	if q.Error != nil {
		for _, c := range q.Error.Conds {
			if c.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" {
				cond = c.XMLName.Local
				break
			}
		}
	}
	s.o.Log.Warn("the gateway refused a published reading (node "+NSReading+"); readings go on as presence only until it accepts them",
		"identity", s.o.Identity, "id", q.ID, "error", cond)
}

func esc(s string) string { return string(stanza.AppendEscaped(nil, s)) }
