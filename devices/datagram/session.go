package datagram

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"

	"roost/devices/datagram/ack"
	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// streamHeader gives every datagram the context a client stream has: the
// jabber:client default namespace. It never goes on the wire.
var streamHeader = []byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")

// maxDatagram is the read buffer and the largest datagram taken from a
// device. The binding asks devices to stay under about 1,200 bytes; a
// larger record is dropped (the session goes on). It is held by every
// connected device, so it is kept small: 16 KiB here cost 16 MiB per
// thousand devices.
const maxDatagram = 2 << 10

// device is one device's DTLS association: the session core's Bound,
// written one datagram per stanza, and what the association's reading
// goroutine owns.
type device struct {
	b    *session.Bound
	l    *Listener
	conn *dtls.Conn
	name string

	wmu       sync.Mutex // serialises datagram writes
	once      sync.Once
	endReason string

	// acks is set once the device speaks the binding's acknowledgements
	// (§5): from then on stanzas to it are numbered, held until
	// acknowledged and retransmitted. Before, they are sent once.
	acks  atomic.Pointer[ack.Sender]
	smu   sync.Mutex // orders turning acks on and ending against Push
	ended bool       // under smu: the session is over, Push refuses

	// owned by the reading goroutine
	rd   datagramReader
	scan *xmlscan.Scanner
	tok  xmlscan.Token
	st   stanza.Stanza
	out  []byte
	in   ack.Receiver // the device's numbered stanzas handled (its h)
	abuf []byte
	stat *devStatus // last seen, last stanza (Listener.Status)
}

func newDevice(l *Listener, c *dtls.Conn, full jid.JID, name string) *device {
	d := &device{l: l, conn: c, name: name}
	d.scan = xmlscan.New(&d.rd, xmlscan.Limits{MaxElementBytes: maxDatagram})
	// The marker numbering a stanza shares its datagram (§5), so a stanza
	// leaves room for it within limits.datagram_bytes.
	d.b = session.New(full, d, session.Options{Remote: c.RemoteAddr(), Log: l.log.With("jid", full.String()), Transport: "dtls",
		MaxStanza: max(l.cfg.DatagramBytes-ack.MarkerMax, 1), Device: true})
	return d
}

// Push is the session core's Transport. Without acknowledgements it sends
// one stanza as one datagram, once. With them it hands the stanza to the
// ack sender, which numbers it, sends it when the window allows and holds
// it until the device acknowledges it; more than the sender holds
// (devices.max_unacked) means the device is not keeping up: the session ends and
// what it held is undelivered (docs/datagram-binding.md §5). UDP writes do
// not wait for the peer, so this does not block the sender for long.
func (d *device) Push(b []byte) bool {
	d.smu.Lock()
	if d.ended {
		d.smu.Unlock()
		return false
	}
	as := d.acks.Load()
	if as != nil {
		err := as.Push(b)
		d.smu.Unlock()
		if err == ack.ErrFull {
			d.end("too many unacknowledged stanzas")
		}
		return err == nil
	}
	d.smu.Unlock()
	if err := d.write(b); err != nil {
		d.end("write failed: " + err.Error())
		return false
	}
	return true
}

// write sends one datagram.
func (d *device) write(b []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := d.conn.Write(b)
	return err
}

// enableAcks turns the acknowledgements on at the device's first ack
// element (§5). Stanzas pushed before were sent once, unnumbered.
func (d *device) enableAcks() *ack.Sender {
	if as := d.acks.Load(); as != nil {
		return as
	}
	d.smu.Lock()
	defer d.smu.Unlock()
	if as := d.acks.Load(); as != nil || d.ended {
		return as
	}
	as := ack.NewSender(d.l.cfg.ackOptions(), d.write, func() { d.end("no acknowledgement from the device") })
	d.acks.Store(as)
	return as
}

// finish marks the session over for Push and returns what was pushed and
// never acknowledged, in order: the session core's gone-for-good rule
// applies to it.
func (d *device) finish() [][]byte {
	d.smu.Lock()
	d.ended = true
	as := d.acks.Load()
	d.smu.Unlock()
	if as == nil {
		return nil
	}
	return as.Close()
}

// Close is the session core's Transport: the binding has no stream to
// end with an error, so the association is closed; cond says why (for
// example conflict, when the device connected again with the same
// identity).
func (d *device) Close(cond stanza.StreamCondition, text string) { d.end(string(cond)) }

func (d *device) end(reason string) {
	d.once.Do(func() {
		d.endReason = reason
		d.conn.Close()
	})
}

// run binds the session and reads datagrams until the device closes the
// association, goes idle, or the session is ended.
func (s *device) run() {
	s.l.router.BindReplace(s.b, 0)
	defer func() {
		// Gone for good (DESIGN.md, "Delivery guarantees"): out of the
		// routing table, refusing deliveries, unavailable, and what the
		// device never acknowledged handed to Host.Undelivered with
		// whatever the session core itself held, once.
		s.l.router.Unbind(s.b)
		s.b.Close("", "")
		left := s.finish()
		if len(left) > 0 {
			s.l.log.Info("dtls: stanzas to the device never acknowledged", "jid", s.b.Full(), "count", len(left))
		}
		s.l.host.Closed(s.b)
		s.b.Finish(unacked{s.l.host, left})
	}()
	buf := make([]byte, maxDatagram)
	idle := s.l.cfg.IdleTimeout
	for {
		s.conn.SetReadDeadline(time.Now().Add(idle))
		n, err := s.conn.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, new(*dtls.TemporaryError)):
				// pion reports an oversized record as a temporary
				// error and drops it.
				s.l.log.Debug("dtls: datagram over the size limit dropped", "jid", s.b.Full())
				continue
			case errors.As(err, &ne) && ne.Timeout():
				s.end("idle timeout")
			case errors.Is(err, io.EOF):
				s.end("close alert")
			default:
				s.end(err.Error())
			}
			return
		}
		s.stat.seen(time.Now())
		s.datagram(buf[:n])
	}
}

// unacked is the Host the session core's Finish reports to: the stanzas
// the device never acknowledged come first (they were pushed before
// anything the core still held), in one Undelivered call.
type unacked struct {
	session.Host
	left [][]byte
}

func (u unacked) Undelivered(s *session.Bound, stanzas [][]byte) {
	u.Host.Undelivered(s, append(u.left, stanzas...))
}

// datagram routes every complete stanza in one datagram. Bad XML drops
// the rest of that datagram only: the association and the session go on,
// since over UDP the next datagram is independent.
//
// Acknowledgements (§5): <r seq='K'/> numbers the stanzas after it K,
// K+1...; each is routed only when it is the next one the device has not
// had acknowledged (a number already handled is a retransmission's
// duplicate, a later one follows a lost datagram: both are dropped and
// come again). Any <r/> is answered, after the datagram, with <a h=”/>;
// <a h=”/> from the device acknowledges the stanzas sent to it.
func (s *device) datagram(b []byte) {
	s.rd.reset(b)
	s.scan.Reset(&s.rd)
	if _, err := s.scan.Next(); err != nil { // the synthetic header
		return
	}
	numbered, askedAck := false, false
	var next uint32
	defer func() {
		if askedAck {
			s.abuf = ack.AppendAck(s.abuf[:0], s.in.H())
			if err := s.write(s.abuf); err != nil {
				s.l.log.Debug("dtls: writing an ack", "jid", s.b.Full(), "err", err)
			}
		}
	}()
	for {
		var err error
		if s.tok, err = s.scan.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				s.l.log.Debug("dtls: dropping the rest of a datagram", "jid", s.b.Full(), "err", err)
			}
			return
		}
		if bytes.Equal(s.tok.Space, nsAck) {
			as := s.enableAcks()
			switch string(s.tok.Local) {
			case "r":
				askedAck = true
				if v, ok := s.tok.Attr("seq"); ok {
					if next, ok = ack.ParseCounter(v); !ok {
						s.l.log.Debug("dtls: bad seq; dropping the rest of a datagram", "jid", s.b.Full())
						return
					}
					numbered = true
				}
			case "a":
				v, _ := s.tok.Attr("h")
				h, ok := ack.ParseCounter(v)
				if !ok {
					s.l.log.Debug("dtls: <a/> without a valid h", "jid", s.b.Full())
				} else if as != nil {
					if err := as.Ack(h); err != nil {
						s.l.log.Debug("dtls: ignoring an ack", "jid", s.b.Full(), "err", err)
					}
				}
			case "enable": // XEP-0198 §3; optional here: any ack element enables
				if err := s.write(enabled); err != nil {
					s.l.log.Debug("dtls: writing enabled", "jid", s.b.Full(), "err", err)
				}
			}
			continue
		}
		var ok bool
		if s.st, ok = stanza.Parse(&s.tok, "jabber:client"); !ok {
			s.l.log.Debug("dtls: not a stanza", "jid", s.b.Full(), "element", string(s.tok.Local))
			continue
		}
		if numbered {
			n := next
			next++
			if !s.in.Accept(n) {
				continue // a duplicate, or after a gap
			}
		}
		s.stat.stanza(s.tok.Raw)
		s.out = stanza.AppendForward(s.out[:0], &s.st, s.b.Full(), "")
		s.l.host.Stanza(s.b, &s.st, s.out)
	}
}

var (
	nsAck   = []byte(ack.NS)
	enabled = []byte("<enabled xmlns='urn:xmpp:sm:3'/>")
)

// datagramReader yields the synthetic stream header, then one datagram.
type datagramReader struct {
	head, body []byte
}

func (r *datagramReader) reset(b []byte) {
	r.head = streamHeader
	r.body = b
}

func (r *datagramReader) Read(p []byte) (int, error) {
	switch {
	case len(r.head) > 0:
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	case len(r.body) > 0:
		n := copy(p, r.body)
		r.body = r.body[n:]
		return n, nil
	}
	return 0, io.EOF
}
