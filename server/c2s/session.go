package c2s

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"roost/server/im"
	"roost/wire/jid"
	"roost/wire/outq"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Session is a bound client stream: what the router delivers to and what
// stanza handlers reply through. Its methods are safe for concurrent use.
type Session struct {
	env    *Env
	jid    jid.JID
	full   string // jid.String(), kept to stamp from without a call
	lang   string
	remote net.Addr
	q      *outq.Queue
	log    *slog.Logger

	// owned by the reading goroutine
	tok xmlscan.Token
	st  stanza.Stanza

	im.State // presence, directed presence, roster interest

	closeOnce sync.Once
}

// JID is the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// Lang is the xml:lang of the client's stream header ("" when none).
func (s *Session) Lang() string { return s.lang }

// RemoteAddr is the peer's network address.
func (s *Session) RemoteAddr() net.Addr { return s.remote }

// Deliver queues stanza bytes for the client. It never blocks.
func (s *Session) Deliver(b []byte) bool { return s.q.Push(b) }

// Close ends the stream with the stream error cond (RFC 6120 §4.9), or
// with a plain closing tag when cond is empty. The connection closes once
// what is queued before it has been written.
func (s *Session) Close(cond stanza.StreamCondition, text string) {
	s.closeOnce.Do(func() {
		var b []byte
		if cond == "" {
			b = []byte("</stream:stream>")
		} else {
			b = stanza.AppendStreamError(nil, cond, text)
		}
		s.q.CloseWith(b, cond == stanza.StreamPolicyViolation && text == queueOverflowText)
	})
}

const queueOverflowText = "outbound queue limit exceeded: the client does not read fast enough"

// Wait blocks until the session's connection has been written out and
// closed, or d has passed.
func (s *Session) Wait(d time.Duration) bool { return s.q.Wait(d) }
