package c2s

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"roost/server/jid"
	"roost/server/stanza"
	"roost/server/xmlscan"
)

// Session is a bound client stream: what the router delivers to and what
// stanza handlers reply through. Its methods are safe for concurrent use.
type Session struct {
	env    *Env
	jid    jid.JID
	full   string // jid.String(), kept to stamp from without a call
	lang   string
	remote net.Addr
	q      *outQueue
	log    *slog.Logger

	// owned by the reading goroutine
	tok xmlscan.Token
	st  stanza.Stanza

	available atomic.Bool
	priority  atomic.Int32
	rosterReq atomic.Bool

	mu       sync.Mutex
	presence []byte // last available presence as broadcast, for probes
	directed map[jid.JID]struct{}

	closeOnce sync.Once
}

// JID is the session's full JID.
func (s *Session) JID() jid.JID { return s.jid }

// Lang is the xml:lang of the client's stream header ("" when none).
func (s *Session) Lang() string { return s.lang }

// RemoteAddr is the peer's network address.
func (s *Session) RemoteAddr() net.Addr { return s.remote }

// Available reports whether the session has sent available presence.
func (s *Session) Available() bool { return s.available.Load() }

// Priority is the priority of the last available presence.
func (s *Session) Priority() int { return int(s.priority.Load()) }

// SetPresence records the session's own presence: available or not, its
// priority, and the stamped stanza (copied) to answer probes with. It
// reports whether this was the session's initial presence.
func (s *Session) SetPresence(available bool, priority int, raw []byte) (initial bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	initial = available && !s.available.Load()
	if available {
		s.presence = append(s.presence[:0], raw...)
	} else {
		s.presence = nil
	}
	s.priority.Store(int32(priority))
	s.available.Store(available)
	return initial
}

// Presence returns a copy of the last available presence, or nil.
func (s *Session) Presence() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.presence == nil {
		return nil
	}
	return append([]byte(nil), s.presence...)
}

// AddDirected remembers that the session sent directed presence to j, so
// that j gets unavailable presence when the session ends (RFC 6121 §4.6).
func (s *Session) AddDirected(j jid.JID, available bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !available {
		delete(s.directed, j)
		return
	}
	if s.directed == nil {
		s.directed = make(map[jid.JID]struct{})
	}
	s.directed[j] = struct{}{}
}

// TakeDirected returns and forgets the JIDs that got directed presence.
func (s *Session) TakeDirected() []jid.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]jid.JID, 0, len(s.directed))
	for j := range s.directed {
		out = append(out, j)
	}
	s.directed = nil
	return out
}

// RequestedRoster marks that the client fetched its roster, which makes it
// an interested resource that gets roster pushes (RFC 6121 §2.1.6).
func (s *Session) RequestedRoster() { s.rosterReq.Store(true) }

// Interested reports whether the client fetched its roster.
func (s *Session) Interested() bool { return s.rosterReq.Load() }

// Deliver queues stanza bytes for the client. It never blocks.
func (s *Session) Deliver(b []byte) bool { return s.q.push(b) }

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
		s.q.closeWith(b, cond == stanza.StreamPolicyViolation && text == queueOverflowText)
	})
}

const queueOverflowText = "outbound queue limit exceeded: the client does not read fast enough"

// Wait blocks until the session's connection has been written out and
// closed, or d has passed.
func (s *Session) Wait(d time.Duration) bool { return s.q.wait(d) }
