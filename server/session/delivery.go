package session

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"roost/wire/outq"
	"roost/wire/stanza"
)

// WriteTracker is what a transport implements, besides Transport, when
// it knows which of the bytes it was given reached the network (a client
// stream's out-queue). The core then keeps a copy of each stanza pushed
// until it is known delivered: written to the socket, or, with XEP-0198
// on, acknowledged by the client. What is left when the session is gone
// for good goes to Host.Undelivered. Transports without it (a datagram
// association) count a stanza as delivered once pushed.
type WriteTracker interface {
	// PushEnd is Push returning the offset just past b in the
	// transport's byte count; the transport reports written offsets
	// through Bound.Written.
	PushEnd(b []byte) (end uint64, ok bool)
	// TryPush pushes b when it fits; full means it did not and nothing
	// else happened (no slow-reader cut).
	TryPush(b []byte) (end uint64, ok, full bool)
	// PushAll pushes b whatever the queue's limit (a bounded
	// retransmission).
	PushAll(b []byte) (end uint64, ok bool)
	// WaitRoom waits until n more bytes fit, the transport closes or
	// deadline passes; false in the last two cases.
	WaitRoom(n int, deadline time.Time) bool
}

// Defaults of the bounds in Options.
const (
	defaultWriteTimeout = 30 * time.Second
	defaultSMQueueBytes = 1 << 20
	defaultCSIHoldBytes = 64 << 10
)

// The server asks the client for an acknowledgement (XEP-0198 §4) once
// ackEvery stanzas are unacknowledged, or ackDelay after the first one,
// whichever comes first, so the unacked queue stays small.
const (
	ackEvery = 5
	ackDelay = 500 * time.Millisecond
)

// NSSM is the XEP-0198 namespace.
const NSSM = "urn:xmpp:sm:3"

var ackRequest = []byte("<r xmlns='urn:xmpp:sm:3'/>")

// counterStart is where both XEP-0198 counters of a newly enabled session
// start (0, as the XEP says); tests move it near 2^32 to see the wrap.
var counterStart atomic.Uint32

// SetCounterStartForTest makes stream management counters of sessions
// enabled from now on start at v instead of 0, so a test can cross the
// 2^32 wrap (XEP-0198 §5) with a few stanzas. The client must count from
// the same value. It returns a function restoring 0. Tests only.
func SetCounterStartForTest(v uint32) (restore func()) {
	counterStart.Store(v)
	return func() { counterStart.Store(0) }
}

// record is one stanza pushed and not yet known delivered: its copy in
// the core's arena, and the transport's offset just past it.
type record struct {
	off, n int    // the stamped bytes are arena[off:off+n]
	end    uint64 // the transport's offset just past it (WriteTracker)
}

// core is a Bound's delivery state: what was pushed and not known
// delivered, the XEP-0198 counters, the XEP-0352 hold, and the transport
// (nil while detached awaiting a resumption). All under mu.
type core struct {
	mu sync.Mutex
	t  Transport
	wt WriteTracker // t as a WriteTracker; nil: nothing is recorded

	ring    []record // power-of-two ring, grown by doubling
	head, n int
	bytes   int
	// arena holds the records' bytes back to back: one pooled buffer per
	// session while it has records (not one per stanza), given back when
	// the last record goes, so an idle session holds none.
	arena *[]byte
	// pre counts the records at the front pushed before XEP-0198 was
	// enabled: the client's h does not count them, so writes release
	// them (or any acknowledgement: later bytes arrived, so they did).
	pre int

	closed   bool // no more deliveries (closing or gone)
	finished bool // Undelivered was called
	detached bool // connection lost, resumption pending
	expire   func()
	resumeT  *time.Timer

	// XEP-0198
	sm        bool
	resumable bool
	id        string
	reg       *Registry
	out       uint32 // the server's count of stanzas sent
	acked     uint32 // the client's last h
	awaiting  bool   // an <r/> is unanswered
	sinceReq  int
	ackT      *time.Timer
	ackArmed  bool
	in        atomic.Uint32 // stanzas received from the client (our h)

	// XEP-0352
	inactive  bool
	held      []*[]byte // nil entries: a presence superseded
	heldBytes int

	writeTimeout time.Duration
	smMax        int
	csiMax       int
}

func (c *core) init(t Transport, o Options) {
	c.t = t
	c.wt, _ = t.(WriteTracker)
	c.writeTimeout = o.WriteTimeout
	if c.writeTimeout <= 0 {
		c.writeTimeout = defaultWriteTimeout
	}
	c.smMax = o.SMQueueBytes
	if c.smMax <= 0 {
		c.smMax = defaultSMQueueBytes
	}
	c.csiMax = o.CSIHoldBytes
	if c.csiMax <= 0 {
		c.csiMax = defaultCSIHoldBytes
	}
}

// record keeps a copy of b in the arena. The ring is allocated on the
// first stanza and grows by doubling, the arena comes from the pool and
// is compacted in place: in steady state a record costs no allocation.
func (c *core) record(b []byte, end uint64) {
	if c.n == len(c.ring) {
		size := max(8, 2*len(c.ring))
		ring := make([]record, size)
		for i := 0; i < c.n; i++ {
			ring[i] = c.ring[(c.head+i)&(len(c.ring)-1)]
		}
		c.ring, c.head = ring, 0
	}
	if c.arena == nil {
		c.arena = outq.GetBuf()
	}
	a := *c.arena
	if len(a)+len(b) > cap(a) && c.n > 0 {
		// Move the live records' bytes to the front before growing.
		if first := c.ring[c.head].off; first > 0 {
			a = a[:copy(a, a[first:])]
			for i := 0; i < c.n; i++ {
				c.ring[(c.head+i)&(len(c.ring)-1)].off -= first
			}
		}
	}
	off := len(a)
	*c.arena = append(a, b...)
	c.ring[(c.head+c.n)&(len(c.ring)-1)] = record{off: off, n: len(b), end: end}
	c.n++
	c.bytes += len(b)
}

// bytesOf is a record's stamped bytes, valid until the next record or pop.
func (c *core) bytesOf(r *record) []byte { return (*c.arena)[r.off : r.off+r.n] }

// pop releases the oldest record; the arena goes back to the pool with
// the last one.
func (c *core) pop() {
	r := &c.ring[c.head]
	c.bytes -= r.n
	*r = record{}
	c.head = (c.head + 1) & (len(c.ring) - 1)
	c.n--
	if c.n == 0 {
		outq.PutBuf(c.arena)
		c.arena = nil
	}
}

// unacked is how many records the client's h counts.
func (c *core) unacked() int { return c.n - c.pre }

// sendLocked pushes b (a stanza) to the transport, or keeps it for the
// resumption while detached. over reports that XEP-0198's queue bound
// (limits.sm_queue_bytes) would be passed: b was not taken and the
// session must end. requested stanzas (what the client asked for, bounded
// by other limits) are not held to that bound.
func (s *Bound) sendLocked(b []byte, requested bool) (ok, over bool) {
	c := &s.core
	if c.sm && !requested && c.n > 0 && c.bytes+len(b) > c.smMax {
		return false, true
	}
	if c.t == nil {
		c.record(b, 0)
		c.out++
		return true, false
	}
	if c.wt == nil {
		return c.t.Push(b), false
	}
	var end uint64
	if requested {
		var full bool
		end, ok, full = c.wt.TryPush(b)
		if full {
			return false, false
		}
	} else {
		end, ok = c.wt.PushEnd(b)
	}
	if !ok {
		return false, false
	}
	c.record(b, end)
	if c.sm {
		c.out++
		c.maybeRequestLocked()
	}
	return true, false
}

// maybeRequestLocked asks for an acknowledgement after ackEvery stanzas,
// or arms the timer that asks after ackDelay.
func (c *core) maybeRequestLocked() {
	c.sinceReq++
	if c.awaiting || c.t == nil {
		return
	}
	if c.sinceReq >= ackEvery {
		c.requestLocked()
		return
	}
	if !c.ackArmed && c.ackT != nil {
		c.ackArmed = true
		c.ackT.Reset(ackDelay)
	}
}

func (c *core) requestLocked() {
	if c.t == nil {
		return
	}
	c.t.Push(ackRequest)
	c.awaiting = true
	c.sinceReq = 0
}

// Deliver queues stanza bytes for the peer. It never blocks; false means
// the session is closing (or its XEP-0198 queue is full, which ends it),
// and the caller applies the rule for a stanza that could not be
// delivered (RFC 6121 §8.5.3.2: a message goes to other resources or
// offline, an iq is answered with an error). A session detached with
// resumption pending keeps the stanza for the resumption. While the
// client is inactive (XEP-0352) presence updates and other non-urgent
// stanzas are held back.
func (s *Bound) Deliver(b []byte) bool {
	c := &s.core
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	var ok, over bool
	if c.inactive {
		ok, over = s.deliverInactiveLocked(b)
	} else {
		ok, over = s.sendLocked(b, false)
	}
	c.mu.Unlock()
	if over {
		s.log.Warn("session: stream management queue full, ending the session", "bytes", c.smMax)
		s.Close(stanza.StreamPolicyViolation, "stream management queue limit exceeded (limits.sm_queue_bytes): the client does not acknowledge")
	}
	return ok
}

// DeliverRequested queues bytes the client asked for (offline messages
// flushed at its initial presence, a large result). It is never counted
// as slow reading: when the queue is full it waits, up to
// limits.write_timeout, for room, instead of dropping the session. false
// means the session is closing or no room came in time.
func (s *Bound) DeliverRequested(b []byte) bool {
	c := &s.core
	deadline := time.Now().Add(c.writeTimeout)
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return false
		}
		ok, _ := s.sendLocked(b, true)
		wt := c.wt
		c.mu.Unlock()
		if ok {
			return true
		}
		if wt == nil || !wt.WaitRoom(len(b), deadline) {
			return false
		}
	}
}

// Written is called by a WriteTracker transport's writer with the offset
// just past the last byte it wrote: stanzas up to there are delivered
// unless XEP-0198 is on, which counts only acknowledgements.
func (s *Bound) Written(w uint64) {
	c := &s.core
	c.mu.Lock()
	limit := c.n
	if c.sm {
		limit = c.pre
	}
	for i := 0; i < limit && c.ring[c.head].end <= w; i++ {
		c.pop()
		if c.sm {
			c.pre--
		}
	}
	c.mu.Unlock()
}

// Close ends the session for good: with the stream error cond (RFC 6120
// §4.9), or a plain close when cond is empty. From then on Deliver
// refuses, so nothing more is queued behind the close. A detached session
// ends at once (its expiry runs in the caller).
func (s *Bound) Close(cond stanza.StreamCondition, text string) {
	c := &s.core
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	s.closing.Store(true)
	t := c.t
	var exp func()
	if c.detached {
		exp, c.expire = c.expire, nil
		if c.resumeT != nil {
			c.resumeT.Stop()
		}
	}
	c.mu.Unlock()
	if t != nil {
		t.Close(cond, text)
	}
	if exp != nil {
		exp()
	}
}

// CloseIf is Close when t is still the session's transport: a resumed
// session is not closed for what happened to its old connection.
func (s *Bound) CloseIf(t Transport, cond stanza.StreamCondition, text string) {
	s.core.mu.Lock()
	cur := s.core.t == t
	s.core.mu.Unlock()
	if cur {
		s.Close(cond, text)
	}
}

// Detach is called by a transport whose connection was lost (not closed
// by either side's stream end) while t was the session's transport. mine
// is false when t is not the session's transport any more (the session
// was resumed elsewhere): the caller only drops its connection. detached
// reports that the session waits for an XEP-0198 resumption: it stays
// routable, keeps what is sent to it (bounded), and expire runs once when
// the resume window (the registry's timeout) passes or the session is
// closed meanwhile. When detached is false the caller ends the session.
func (s *Bound) Detach(t Transport, expire func()) (mine, detached bool) {
	c := &s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t != t {
		return false, false
	}
	if c.closed || !c.resumable || c.reg == nil {
		return true, false
	}
	c.t, c.wt = nil, nil
	c.detached = true
	c.expire = expire
	c.awaiting = false
	if c.ackT != nil {
		c.ackT.Stop()
		c.ackArmed = false
	}
	c.resumeT = time.AfterFunc(c.reg.Timeout, s.resumeExpired)
	return true, true
}

// resumeExpired ends a detached session whose resume window passed.
func (s *Bound) resumeExpired() {
	c := &s.core
	c.mu.Lock()
	if !c.detached || c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	s.closing.Store(true)
	exp := c.expire
	c.expire = nil
	c.mu.Unlock()
	s.log.Debug("session: resume window passed")
	if exp != nil {
		exp()
	}
}

// Finish hands what is left (stanzas pushed and not known delivered,
// then stanzas held for an inactive client) to h.Undelivered, once, and
// forgets the session's resumption. The transport calls it when the
// session is gone for good, after it left the routing table and its
// connection's writer stopped.
func (s *Bound) Finish(h Host) {
	c := &s.core
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	c.finished, c.closed = true, true
	s.closing.Store(true)
	stanzas := make([][]byte, 0, c.n+len(c.held))
	for i := 0; i < c.n; i++ {
		r := &c.ring[(c.head+i)&(len(c.ring)-1)]
		stanzas = append(stanzas, append([]byte(nil), c.bytesOf(r)...))
	}
	for c.n > 0 {
		c.pop()
	}
	c.bytes, c.pre = 0, 0
	var held []*[]byte
	for _, b := range c.held {
		if b != nil {
			stanzas = append(stanzas, *b)
			held = append(held, b)
		}
	}
	c.held, c.heldBytes = nil, 0
	if c.ackT != nil {
		c.ackT.Stop()
	}
	if c.resumeT != nil {
		c.resumeT.Stop()
	}
	reg, id := c.reg, c.id
	c.mu.Unlock()
	if reg != nil && id != "" {
		reg.remove(id, s)
	}
	h.Undelivered(s, stanzas)
	for _, b := range held {
		outq.PutBuf(b)
	}
}

// Errors of stream management requests.
var (
	// ErrSMState: enable twice, or on a session that is ending.
	ErrSMState = errors.New("stream management is already enabled or the session is ending")
	// ErrResumeGone: the session to resume has ended.
	ErrResumeGone = errors.New("the session has ended")
)

// EnableSM turns XEP-0198 on (§3) and pushes <enabled/>, in the same
// step, so that the client's count and the server's start at the same
// stanza. With resume (and a registry whose timeout is not 0) the
// session can be resumed for reg.Timeout after its connection is lost;
// <enabled/> then carries the id, resume='true' and max (seconds).
func (s *Bound) EnableSM(reg *Registry, resume bool) error {
	c := &s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sm || c.closed || c.t == nil {
		return ErrSMState
	}
	c.sm = true
	c.pre = c.n
	start := counterStart.Load()
	c.out, c.acked = start, start
	c.in.Store(start)
	c.ackT = time.AfterFunc(time.Hour, s.ackTimerFired)
	c.ackT.Stop()
	b := append(make([]byte, 0, 128), "<enabled xmlns='urn:xmpp:sm:3'"...)
	if resume && reg != nil && reg.Timeout > 0 {
		c.resumable = true
		c.reg = reg
		c.id = reg.add(s)
		b = append(b, " id='"...)
		b = append(b, c.id...)
		b = append(b, "' resume='true' max='"...)
		b = strconv.AppendInt(b, int64((reg.Timeout+time.Second-1)/time.Second), 10)
		b = append(b, '\'')
	}
	b = append(b, "/>"...)
	c.t.Push(b)
	return nil
}

// SMEnabled reports whether XEP-0198 is on.
func (s *Bound) SMEnabled() bool {
	s.core.mu.Lock()
	defer s.core.mu.Unlock()
	return s.core.sm
}

// CountIn counts one stanza received from the client (its h, XEP-0198
// §4), modulo 2^32.
func (s *Bound) CountIn() { s.core.in.Add(1) }

// HandledIn is the server's h: stanzas received from the client since
// stream management was enabled, modulo 2^32.
func (s *Bound) HandledIn() uint32 { return s.core.in.Load() }

// RequestAck sends <r/> now (liveness, XEP-0198 §4); false when the
// session has no transport or stream management.
func (s *Bound) RequestAck() bool {
	c := &s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sm || c.t == nil || c.closed {
		return false
	}
	c.requestLocked()
	return true
}

func (s *Bound) ackTimerFired() {
	c := &s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ackArmed = false
	if !c.closed && c.t != nil && !c.awaiting && c.unacked() > 0 {
		c.requestLocked()
	}
}

// OverAckError is an <a/> or <resume/> whose h counts more stanzas than
// the server sent (XEP-0198 §4: the stream ends with undefined-condition).
type OverAckError struct{ H, Sent uint32 }

func (e *OverAckError) Error() string {
	return "h='" + strconv.FormatUint(uint64(e.H), 10) + "' acknowledges more stanzas than were sent: the server's count is " + strconv.FormatUint(uint64(e.Sent), 10)
}

// Acked handles the client's <a h='N'/> (XEP-0198 §4): the stanzas it
// covers are delivered. h is compared modulo 2^32. An h beyond what was
// sent is an *OverAckError.
func (s *Bound) Acked(h uint32) error {
	c := &s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.sm {
		return nil
	}
	if err := c.ackLocked(h); err != nil {
		return err
	}
	c.awaiting = false
	if c.unacked() >= ackEvery {
		c.requestLocked()
	} else if c.unacked() > 0 && !c.ackArmed && c.ackT != nil && c.t != nil {
		c.ackArmed = true
		c.ackT.Reset(ackDelay)
	}
	return nil
}

func (c *core) ackLocked(h uint32) error {
	d := h - c.acked
	if d > uint32(c.unacked()) {
		return &OverAckError{H: h, Sent: c.out}
	}
	if d > 0 {
		for c.pre > 0 {
			c.pop()
			c.pre--
		}
		for i := uint32(0); i < d; i++ {
			c.pop()
		}
	}
	c.acked = h
	return nil
}

// Resume moves a detached (or still attached) resumable session onto
// the new transport t (XEP-0198 §5): the stanzas the client's h covers
// are released, <resumed previd='ID' h='N'/> is pushed, then every stanza
// not covered, in order, once. It returns the old transport, if the old
// connection is still open, for the caller to close.
func (s *Bound) Resume(t Transport, h uint32) (old Transport, err error) {
	c := &s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || !c.resumable {
		return nil, ErrResumeGone
	}
	if err := c.ackLocked(h); err != nil {
		return nil, err
	}
	if c.resumeT != nil {
		c.resumeT.Stop()
	}
	old = c.t
	c.t = t
	c.wt, _ = t.(WriteTracker)
	c.detached, c.expire = false, nil
	c.awaiting, c.sinceReq = false, 0
	b := outq.GetBuf()
	*b = append((*b)[:0], "<resumed xmlns='urn:xmpp:sm:3' previd='"...)
	*b = append(*b, c.id...)
	*b = append(*b, "' h='"...)
	*b = strconv.AppendUint(*b, uint64(c.in.Load()), 10)
	*b = append(*b, "'/>"...)
	t.Push(*b)
	outq.PutBuf(b)
	// Every record is retransmitted and counted by the client from h on,
	// including any pushed before stream management was enabled.
	c.pre = 0
	for i := 0; i < c.n; i++ {
		r := &c.ring[(c.head+i)&(len(c.ring)-1)]
		if c.wt != nil {
			r.end, _ = c.wt.PushAll(c.bytesOf(r))
		} else {
			t.Push(c.bytesOf(r))
		}
	}
	c.out = h + uint32(c.n)
	c.inactive = false
	if ok, _ := s.flushHeldLocked(); !ok {
		s.log.Debug("session: held stanzas not flushed after resumption")
	}
	if c.unacked() > 0 {
		c.requestLocked()
	}
	return old, nil
}

// ResumeID is the session's resumption id ("" when not resumable).
func (s *Bound) ResumeID() string {
	s.core.mu.Lock()
	defer s.core.mu.Unlock()
	return s.core.id
}

// SetInactive records the client's XEP-0352 state. Going active flushes
// what was held, in order.
func (s *Bound) SetInactive(inactive bool) {
	c := &s.core
	c.mu.Lock()
	c.inactive = inactive
	var over bool
	if !inactive {
		_, over = s.flushHeldLocked()
	}
	c.mu.Unlock()
	if over {
		s.Close(stanza.StreamPolicyViolation, "stream management queue limit exceeded (limits.sm_queue_bytes): the client does not acknowledge")
	}
}

// deliverInactiveLocked applies XEP-0352 §5 for an inactive client:
// presence updates are held, only the latest per sender full JID; a
// message with a body flushes what is held and goes at once; iqs go at
// once (someone waits for the answer); other messages (chat states,
// receipts) are held in order. Held bytes beyond limits.csi_hold_bytes
// flush.
func (s *Bound) deliverInactiveLocked(b []byte) (ok, over bool) {
	c := &s.core
	switch stanza.KindOf(b) {
	case stanza.IQ:
		return s.sendLocked(b, false)
	case stanza.Message:
		if hasBody(b) {
			if ok, over := s.flushHeldLocked(); !ok {
				return false, over
			}
			return s.sendLocked(b, false)
		}
	default:
		if typ, _ := stanza.AttrValue(b, "type"); typ != "" && typ != "unavailable" {
			return s.sendLocked(b, false) // subscription management, probes, errors
		}
		from := attrRaw(b, "from")
		for i, h := range c.held {
			if h != nil && stanza.KindOf(*h) == stanza.Presence && bytes.Equal(attrRaw(*h, "from"), from) {
				c.heldBytes -= len(*h)
				outq.PutBuf(h)
				c.held[i] = nil
			}
		}
	}
	buf := outq.GetBuf()
	*buf = append((*buf)[:0], b...)
	c.held = append(c.held, buf)
	c.heldBytes += len(b)
	if c.heldBytes > c.csiMax {
		if ok, over := s.flushHeldLocked(); !ok {
			return true, over // b is held: Finish hands it on if the session ends
		}
	}
	return true, false
}

// flushHeldLocked sends what an inactive client's session held, in
// order. ok is false when one could not be sent: it and the rest stay
// held (Finish hands them to Undelivered).
func (s *Bound) flushHeldLocked() (ok, over bool) {
	c := &s.core
	for i, h := range c.held {
		if h == nil {
			continue
		}
		ok, over := s.sendLocked(*h, false)
		if !ok {
			n := copy(c.held, c.held[i:])
			clear(c.held[n:])
			c.held = c.held[:n]
			return false, over
		}
		c.heldBytes -= len(*h)
		outq.PutBuf(h)
		c.held[i] = nil
	}
	c.held = c.held[:0]
	c.heldBytes = 0
	return true, false
}

// hasBody reports whether a message written by the server has a <body/>
// (XEP-0352 §5: such a message is urgent).
func hasBody(b []byte) bool {
	return bytes.Contains(b, []byte("<body>")) || bytes.Contains(b, []byte("<body ")) || bytes.Contains(b, []byte("<body/>"))
}

// attrRaw is the raw attribute name='...' of b's start tag, or nil.
func attrRaw(b []byte, name string) []byte {
	a, e, ok := stanza.FindAttr(b, name)
	if !ok {
		return nil
	}
	return b[a:e]
}

// Registry is where resumable sessions are found by their id (XEP-0198
// §5) while their resume window lasts.
type Registry struct {
	// Timeout is limits.resume_timeout: how long a detached session
	// waits for its resumption; 0 turns resumption off.
	Timeout time.Duration

	mu sync.Mutex
	m  map[string]*Bound
}

// NewRegistry returns an empty registry with the resume window timeout.
func NewRegistry(timeout time.Duration) *Registry {
	return &Registry{Timeout: timeout, m: make(map[string]*Bound)}
}

func (r *Registry) add(s *Bound) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		id := newResumeID()
		if _, taken := r.m[id]; !taken {
			r.m[id] = s
			return id
		}
	}
}

func (r *Registry) remove(id string, s *Bound) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[id] == s {
		delete(r.m, id)
	}
}

// Lookup returns the resumable session with id, or nil.
func (r *Registry) Lookup(id string) *Bound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[id]
}

// Len is the number of resumable sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// newResumeID is a random, unguessable resumption id (XEP-0198 §5: the
// id must not let another party resume the session; Roost also checks
// the account).
func newResumeID() string {
	var b [15]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
