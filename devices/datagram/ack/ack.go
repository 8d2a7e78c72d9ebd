// Package ack is the acknowledgement layer of Roost's datagram binding
// (docs/datagram-binding.md §5), used by both ends: the gateway's DTLS
// transport (devices/datagram) and the reference device
// (devices/simulator). It reuses XEP-0198's elements, in its namespace
// urn:xmpp:sm:3, over datagrams:
//
//   - every stanza has a number, counted from 1 per association and per
//     direction modulo 2^32, the value XEP-0198's h takes once the
//     receiver has handled it (XEP-0198 §4);
//   - a datagram carrying stanzas starts with <r xmlns='urn:xmpp:sm:3'
//     seq='K'/>: the ack request of XEP-0198 §5, with the number of the
//     first stanza that follows (the next ones are K+1, K+2...);
//   - the receiver handles stanzas strictly in order: number h+1 is new
//     (h becomes h+1), a number up to h is a duplicate from a
//     retransmission and is dropped, a number beyond h+1 follows a lost
//     datagram and is dropped too (it comes again). It answers every <r/>
//     with <a xmlns='urn:xmpp:sm:3' h='h'/>;
//   - the sender keeps what is not acknowledged, sends at most a window of
//     it, and retransmits it in order after a timeout that starts at
//     500 ms and doubles to 8 s, or at once when two acks in a row
//     acknowledged nothing new (the receiver saw a gap); after a number of
//     timeouts in a row without progress it gives up: the peer is gone.
//
// XEP-0198's h alone cannot tell a receiver which stanza a retransmitted
// datagram carries; seq does, and makes delivery exactly once within an
// association (go-back-N, as TCP without selective acknowledgements).
package ack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// NS is XEP-0198's namespace, the one the binding's ack elements use.
const NS = "urn:xmpp:sm:3"

// Defaults of a Sender's Options.
const (
	DefaultMinRTO     = 500 * time.Millisecond
	DefaultMaxRTO     = 8 * time.Second
	DefaultMaxRetries = 8 // 0.5+1+2+4+8+8+8+8 s: about 40 s without an ack
	DefaultWindow     = 16
	DefaultMaxQueue   = 256
)

// fastRetransmitAcks is the number of acks in a row without progress
// that resend what is in flight before the timeout.
const fastRetransmitAcks = 2

// MarkerMax is the longest marker AppendMarker writes: the room a stanza
// must leave in a datagram.
const MarkerMax = len("<r xmlns='urn:xmpp:sm:3' seq='4294967295'/>")

// AppendMarker appends the ack request that numbers the stanzas after it.
func AppendMarker(dst []byte, seq uint32) []byte {
	dst = append(dst, "<r xmlns='urn:xmpp:sm:3' seq='"...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	return append(dst, "'/>"...)
}

// AppendAck appends <a xmlns='urn:xmpp:sm:3' h='h'/>.
func AppendAck(dst []byte, h uint32) []byte {
	dst = append(dst, "<a xmlns='urn:xmpp:sm:3' h='"...)
	dst = strconv.AppendUint(dst, uint64(h), 10)
	return append(dst, "'/>"...)
}

// ParseCounter reads a seq or h attribute: a decimal number below 2^32.
func ParseCounter(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b), 10, 32)
	return uint32(v), err == nil
}

// Receiver counts the stanzas received in order (XEP-0198's h) and tells
// new stanzas from duplicates. It is owned by the reading goroutine.
type Receiver struct {
	h uint32
}

// H is the number of stanzas handled: the value to acknowledge.
func (r *Receiver) H() uint32 { return r.h }

// Accept reports whether the stanza numbered n is the next one (handle
// it; h advances) or not (a duplicate or one after a gap: drop it).
func (r *Receiver) Accept(n uint32) bool {
	if n != r.h+1 {
		return false
	}
	r.h = n
	return true
}

// Options tune a Sender; zero values take the defaults above.
type Options struct {
	MinRTO, MaxRTO time.Duration
	MaxRetries     int // timeouts in a row without progress before giving up
	Window         int // stanzas sent and not yet acknowledged at most
	MaxQueue       int // stanzas held (sent or waiting) at most
}

// ErrFull is Push's answer when MaxQueue stanzas are held.
var ErrFull = errors.New("ack: too many unacknowledged stanzas")

// ErrClosed is Push's answer after Close.
var ErrClosed = errors.New("ack: closed")

// Sender numbers outgoing stanzas, holds them until acknowledged and
// retransmits them. Its methods are safe for concurrent use; write is
// called with one datagram at a time, in order.
type Sender struct {
	o      Options
	write  func(datagram []byte) error
	giveUp func()

	mu     sync.Mutex
	acked  uint32   // the peer's h: stanzas acknowledged
	queue  [][]byte // held stanzas; queue[i] is number acked+1+i
	sent   int      // queue[:sent] have been sent at least once
	rto    time.Duration
	tries  int // timeouts in a row without progress
	dups   int // acks in a row that acknowledged nothing new
	due    time.Time
	timer  *time.Timer
	closed bool
	room   chan struct{} // closed when an ack makes room
	buf    []byte
	spare  [][]byte
}

// NewSender returns a Sender writing datagrams with write; giveUp is
// called once (from the timer's goroutine) when MaxRetries timeouts in a
// row brought no acknowledgement.
func NewSender(o Options, write func([]byte) error, giveUp func()) *Sender {
	if o.MinRTO <= 0 {
		o.MinRTO = DefaultMinRTO
	}
	if o.MaxRTO < o.MinRTO {
		o.MaxRTO = max(DefaultMaxRTO, o.MinRTO)
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxQueue < o.Window {
		o.MaxQueue = max(DefaultMaxQueue, o.Window)
	}
	return &Sender{o: o, write: write, giveUp: giveUp, rto: o.MinRTO}
}

// Push numbers b (copied) and sends it now if the window allows, else
// when acknowledgements open it. A write error is not returned: the
// stanza stays held and is retransmitted (or handed back by Close).
func (s *Sender) Push(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.queue) >= s.o.MaxQueue {
		return ErrFull
	}
	var c []byte
	if n := len(s.spare); n > 0 {
		c, s.spare = s.spare[n-1][:0], s.spare[:n-1]
	}
	s.queue = append(s.queue, append(c, b...))
	s.fill()
	return nil
}

// PushWait is Push that waits for room while the queue is full, until ctx
// ends: a device paced by the gateway's acknowledgements.
func (s *Sender) PushWait(ctx context.Context, b []byte) error {
	for {
		err := s.Push(b)
		if err != ErrFull {
			return err
		}
		s.mu.Lock()
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		full := len(s.queue) >= s.o.MaxQueue && !s.closed
		s.mu.Unlock()
		if !full {
			continue
		}
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fill sends held stanzas up to the window and arms the timer. Called
// with s.mu held.
func (s *Sender) fill() {
	for s.sent < len(s.queue) && s.sent < s.o.Window {
		s.send(s.sent)
		s.sent++
	}
	s.arm()
}

// send writes queue[i] as one datagram with its number. Called with s.mu
// held.
func (s *Sender) send(i int) {
	s.buf = AppendMarker(s.buf[:0], s.acked+1+uint32(i))
	s.buf = append(s.buf, s.queue[i]...)
	_ = s.write(s.buf) // lost or not, the timer retransmits it
}

// arm starts the retransmission timer when something is in flight and it
// is not running. Called with s.mu held.
func (s *Sender) arm() {
	if s.sent == 0 || s.closed || !s.due.IsZero() {
		return
	}
	s.due = time.Now().Add(s.rto)
	if s.timer == nil {
		s.timer = time.AfterFunc(s.rto, s.timeout)
	} else {
		s.timer.Reset(s.rto)
	}
}

// timeout retransmits everything in flight, in order, and doubles the
// timeout; after MaxRetries of them in a row it gives up.
func (s *Sender) timeout() {
	s.mu.Lock()
	if s.closed || s.sent == 0 {
		s.due = time.Time{}
		s.mu.Unlock()
		return
	}
	if wait := time.Until(s.due); wait > 0 { // re-armed meanwhile
		s.timer.Reset(wait)
		s.mu.Unlock()
		return
	}
	s.tries++
	if s.tries > s.o.MaxRetries {
		s.due = time.Time{}
		s.mu.Unlock()
		if s.giveUp != nil {
			s.giveUp()
		}
		return
	}
	s.rto = min(2*s.rto, s.o.MaxRTO)
	for i := 0; i < s.sent; i++ {
		s.send(i)
	}
	s.due = time.Time{}
	s.arm()
	s.mu.Unlock()
}

// Ack applies <a h='h'/> from the peer: the stanzas up to h are
// delivered and released. An h behind the last one is a stale ack that
// UDP reordered and is ignored; an h beyond what was sent is an error
// (XEP-0198 §4 makes it a stream error; a datagram session just ignores
// it).
func (s *Sender) Ack(h uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := int64(int32(h - s.acked))
	if s.closed || d < 0 {
		return nil
	}
	if d == 0 {
		// The peer answered a stanza after a gap: the one after h was
		// lost. At the second such ack, resend what is in flight at once
		// rather than at the timeout (TCP's fast retransmit, RFC 5681 §3.2,
		// with go-back-N); once, until progress.
		if s.sent > 0 {
			s.dups++
			if s.dups == fastRetransmitAcks {
				for i := 0; i < s.sent; i++ {
					s.send(i)
				}
			}
		}
		return nil
	}
	if d > int64(s.sent) {
		return fmt.Errorf("ack: h=%d acknowledges more than was sent (%d)", h, s.acked+uint32(s.sent))
	}
	n := int(d)
	for i := 0; i < n; i++ {
		if len(s.spare) < s.o.Window {
			s.spare = append(s.spare, s.queue[i])
		}
		s.queue[i] = nil
	}
	s.queue = append(s.queue[:0], s.queue[n:]...)
	s.sent -= n
	s.acked = h
	s.tries, s.dups, s.rto, s.due = 0, 0, s.o.MinRTO, time.Time{}
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	s.fill() // re-arms for what is still in flight
	return nil
}

// Unacked is the number of stanzas held (sent or waiting).
func (s *Sender) Unacked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Close stops the Sender and returns what was never acknowledged, sent
// or not, in order (the caller owns the slices). Push refuses from then
// on.
func (s *Sender) Close() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
	q := s.queue
	s.queue, s.spare = nil, nil
	return q
}
