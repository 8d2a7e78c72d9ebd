package datagram

import (
	"errors"
	"io"
	"net"
	"roost/server/session"
	"sync"
	"time"

	"github.com/pion/dtls/v3"

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

	// owned by the reading goroutine
	rd   datagramReader
	scan *xmlscan.Scanner
	tok  xmlscan.Token
	st   stanza.Stanza
	out  []byte
}

func newDevice(l *Listener, c *dtls.Conn, full jid.JID, name string) *device {
	d := &device{l: l, conn: c, name: name}
	d.scan = xmlscan.New(&d.rd, xmlscan.Limits{MaxElementBytes: maxDatagram})
	d.b = session.New(full, d, session.Options{Remote: c.RemoteAddr(), Log: l.log.With("jid", full.String()),
		MaxStanza: l.cfg.DatagramBytes, Device: true})
	return d
}

// Push is the session core's Transport: it sends one stanza as one
// datagram. UDP writes do not wait for the peer, so this does not block
// the sender for long; a failed write ends the association.
func (d *device) Push(b []byte) bool {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := d.conn.Write(b); err != nil {
		d.end("write failed: " + err.Error())
		return false
	}
	return true
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
		s.l.router.Unbind(s.b)
		s.l.host.Closed(s.b)
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
		s.datagram(buf[:n])
	}
}

// datagram routes every complete stanza in one datagram. Bad XML drops
// the rest of that datagram only: the association and the session go on,
// since over UDP the next datagram is independent.
func (s *device) datagram(b []byte) {
	s.rd.reset(b)
	s.scan.Reset(&s.rd)
	if _, err := s.scan.Next(); err != nil { // the synthetic header
		return
	}
	for {
		var err error
		if s.tok, err = s.scan.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				s.l.log.Debug("dtls: dropping the rest of a datagram", "jid", s.b.Full(), "err", err)
			}
			return
		}
		var ok bool
		if s.st, ok = stanza.Parse(&s.tok, "jabber:client"); !ok {
			s.l.log.Debug("dtls: not a stanza", "jid", s.b.Full(), "element", string(s.tok.Local))
			continue
		}
		s.out = stanza.AppendForward(s.out[:0], &s.st, s.b.Full(), "")
		s.l.host.Stanza(s.b, &s.st, s.out)
	}
}

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
