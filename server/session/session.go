// Package session is the session core: what a bound session is, whatever
// transport carries it (a TCP/TLS client stream, a DTLS device, and the
// transports still to come). A transport reads frames and hands their
// stanzas to the routing rules with the session as sender; it writes what
// the session queues for it. The rules every transport shares live here
// once: the session's JID and presence state, delivery that never blocks
// and reports a closing session (so that routing sends a message to the
// account's other resources or offline instead, and bounces an iq), one
// close per session, and the replies (errors and iq results) the server
// sends to a session.
package session

import (
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"roost/wire/jid"
	"roost/wire/stanza"
)

// Peer is what routing and the IM rules need of whoever sent a stanza: a
// bound session, or a sender on another domain whose answers go back out
// (route's remote sender).
type Peer interface {
	// JID is the sender's full JID.
	JID() jid.JID
	// Deliver queues raw stanza bytes for the peer. It copies b and never
	// blocks; false means the session is closing and b was not taken.
	Deliver(b []byte) bool
	// Available reports whether the session has sent available presence
	// and so takes part in bare-JID delivery (RFC 6121 §8.5.2).
	Available() bool
	// Priority is the priority of the last available presence.
	Priority() int
	// SetPresence records the session's own presence; it reports whether
	// this made the session available for the first time.
	SetPresence(available bool, priority int, raw []byte) (initial bool)
	// Presence is the session's last available presence, or nil.
	Presence() []byte
	// AddDirectedMax records directed presence sent to j within a bound
	// of max targets (RFC 6121 §4.6); false: the set is full.
	AddDirectedMax(j jid.JID, available bool, max int) bool
	// TakeDirected returns and forgets the JIDs given directed presence.
	TakeDirected() []jid.JID
	// RequestedRoster marks the session as interested in roster pushes.
	RequestedRoster()
	// Interested reports whether the session gets roster pushes.
	Interested() bool
}

// Transport is what a session's connection does for the core: queue bytes
// for the peer and end the connection. A transport frames its own end: a
// client stream writes the stream error and </stream:stream>, a datagram
// association just ends.
type Transport interface {
	// Push queues b (copied) for the peer without blocking; false means
	// the transport is closing and b was not taken.
	Push(b []byte) bool
	// Close ends the connection with the stream error cond (empty: a
	// plain close), after what is already queued.
	Close(cond stanza.StreamCondition, text string)
}

// Host is the server side of every transport's bound sessions: a
// transport hands it each stanza a session sends and tells it when the
// session has ended.
type Host interface {
	// Stanza handles one stanza from s. st.From is untrusted; stamped is
	// the stanza's bytes with from set to the session's full JID (RFC
	// 6120 §8.1.2.1), valid only during the call.
	Stanza(s *Bound, st *stanza.Stanza, stamped []byte)
	// Closed is called once when a bound session has ended, after it
	// left the routing table: its presence goes unavailable.
	Closed(s *Bound)
	// Undelivered is called once when s is gone for good (its resume
	// window passed, it had no stream management, its queue overflowed,
	// its stream failed, the server shut down) with every stanza that was
	// queued to it or sent without being known delivered, in order, as
	// the stamped bytes that were pushed (valid only during the call).
	// "Accepted by Roost" means delivered, stored or bounced (DESIGN.md,
	// "Delivery guarantees"): the host redirects or answers them.
	Undelivered(s *Bound, stanzas [][]byte)
}

// Bound is a bound session of any transport: what the routing table
// holds and delivers to. Its methods are safe for concurrent use.
type Bound struct {
	State

	jid    jid.JID
	full   string // jid.String(), kept to stamp from without a call
	lang   string
	remote net.Addr
	log    *slog.Logger
	// maxStanza is the largest stanza the transport can carry in one
	// piece (a datagram); 0: no such limit.
	maxStanza int
	device    bool
	transport string
	since     time.Time

	// closing mirrors core.closed for the lock-free Closing.
	closing atomic.Bool
	core    core
}

// Options describe a session beyond its JID and transport.
type Options struct {
	Lang      string   // xml:lang of the client's stream ("" when none)
	Remote    net.Addr // the peer's network address
	Log       *slog.Logger
	MaxStanza int // largest stanza the transport carries in one piece; 0: none
	// Device marks a device's session (a registered sensor or actuator,
	// devices/): iq requests reach it only from whom devices.accept_from
	// allows.
	Device bool
	// WriteTimeout bounds how long DeliverRequested waits for room in
	// the queue (limits.write_timeout); 0: 30s.
	WriteTimeout time.Duration
	// SMQueueBytes bounds the stanzas kept for XEP-0198 retransmission
	// (limits.sm_queue_bytes); 0: 1 MiB.
	SMQueueBytes int
	// CSIHoldBytes bounds what an inactive client's session holds back
	// (XEP-0352, limits.csi_hold_bytes); 0: 64 KiB.
	CSIHoldBytes int
	// Transport names the transport for operators ("c2s", "dtls",
	// "websocket"): the administration commands and the status page show it.
	Transport string
}

// New returns a bound session for full over t.
func New(full jid.JID, t Transport, o Options) *Bound {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	s := &Bound{jid: full, full: full.String(), lang: o.Lang, remote: o.Remote, log: log, maxStanza: o.MaxStanza, device: o.Device,
		transport: o.Transport, since: time.Now()}
	s.core.init(t, o)
	return s
}

// JID is the session's full JID, fixed once bound.
func (s *Bound) JID() jid.JID { return s.jid }

// Full is the full JID as a string, as stamped on what the session sends.
func (s *Bound) Full() string { return s.full }

// Lang is the xml:lang of the session's stream ("" when none).
func (s *Bound) Lang() string { return s.lang }

// RemoteAddr is the peer's network address.
func (s *Bound) RemoteAddr() net.Addr { return s.remote }

// Log is the session's logger (with its JID and address).
func (s *Bound) Log() *slog.Logger { return s.log }

// MaxStanzaBytes is the largest stanza the transport carries in one
// piece; 0 when there is no such limit.
func (s *Bound) MaxStanzaBytes() int { return s.maxStanza }

// TransportName names the session's transport ("c2s", "dtls", ...).
func (s *Bound) TransportName() string { return s.transport }

// Since is when the session was bound.
func (s *Bound) Since() time.Time { return s.since }

// Device reports whether this is a device's session.
func (s *Bound) Device() bool { return s.device }

// Closing reports whether the session has ended for good or is ending:
// from then on Deliver refuses. A session detached with XEP-0198
// resumption pending is not closing.
func (s *Bound) Closing() bool { return s.closing.Load() }
