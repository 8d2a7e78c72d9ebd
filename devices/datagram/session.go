package datagram

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"

	"roost/server/im"
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

// session is one device's DTLS association, bound as a routed session.
type session struct {
	im.State
	l    *Listener
	conn *dtls.Conn
	jid  jid.JID
	full string
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

func newSession(l *Listener, c *dtls.Conn, full jid.JID, name string) *session {
	s := &session{l: l, conn: c, jid: full, full: full.String(), name: name}
	s.scan = xmlscan.New(&s.rd, xmlscan.Limits{MaxElementBytes: maxDatagram})
	return s
}

// JID is the device's full JID (its PSK identity).
func (s *session) JID() jid.JID { return s.jid }

// MaxStanzaBytes is the largest stanza sent to the device: each must fit
// one datagram (limits.datagram_bytes).
func (s *session) MaxStanzaBytes() int { return s.l.max }

// Deliver sends one stanza as one datagram. UDP writes do not wait for
// the peer, so this does not block the sender for long; a failed write
// ends the session.
func (s *session) Deliver(b []byte) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := s.conn.Write(b); err != nil {
		s.end("write failed: " + err.Error())
		return false
	}
	return true
}

// Close ends the session; cond says why (for example conflict, when the
// device connected again with the same identity).
func (s *session) Close(cond stanza.StreamCondition, text string) { s.end(string(cond)) }

func (s *session) end(reason string) {
	s.once.Do(func() {
		s.endReason = reason
		s.conn.Close()
	})
}

// run binds the session and reads datagrams until the device closes the
// association, goes idle, or the session is ended.
func (s *session) run() {
	srv := s.l.srv
	srv.Bind(s)
	defer srv.Leave(s)
	buf := make([]byte, maxDatagram)
	idle := s.l.cfg.IdleTimeout.D()
	for {
		s.conn.SetReadDeadline(time.Now().Add(idle))
		n, err := s.conn.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, new(*dtls.TemporaryError)):
				// pion reports an oversized record as a temporary
				// error and drops it.
				s.l.log.Debug("dtls: datagram over the size limit dropped", "jid", s.full)
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
func (s *session) datagram(b []byte) {
	s.rd.reset(b)
	s.scan.Reset(&s.rd)
	if _, err := s.scan.Next(); err != nil { // the synthetic header
		return
	}
	for {
		var err error
		if s.tok, err = s.scan.Next(); err != nil {
			if !errors.Is(err, io.EOF) {
				s.l.log.Debug("dtls: dropping the rest of a datagram", "jid", s.full, "err", err)
			}
			return
		}
		var ok bool
		if s.st, ok = stanza.Parse(&s.tok, "jabber:client"); !ok {
			s.l.log.Debug("dtls: not a stanza", "jid", s.full, "element", string(s.tok.Local))
			continue
		}
		s.out = stanza.AppendForward(s.out[:0], &s.st, s.full, "")
		s.l.srv.Route(s, &s.st, s.out)
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
