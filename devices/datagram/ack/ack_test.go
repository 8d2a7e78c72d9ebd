package ack

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// wire records what a Sender writes.
type wire struct {
	mu  sync.Mutex
	out []string
	c   chan struct{}
}

func newWire() *wire { return &wire{c: make(chan struct{}, 1000)} }

func (w *wire) write(b []byte) error {
	w.mu.Lock()
	w.out = append(w.out, string(b))
	w.mu.Unlock()
	w.c <- struct{}{}
	return nil
}

func (w *wire) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.out
	w.out = nil
	return o
}

// wait blocks until n more datagrams were written, or fails after a
// deadline.
func (w *wire) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-w.c:
		case <-time.After(5 * time.Second):
			t.Fatalf("waiting for %d datagrams", n)
		}
	}
}

func TestReceiverInOrder(t *testing.T) {
	var r Receiver
	for _, c := range []struct {
		n  uint32
		ok bool
		h  uint32
	}{{1, true, 1}, {1, false, 1}, {3, false, 1}, {2, true, 2}, {3, true, 3}, {2, false, 3}} {
		if got := r.Accept(c.n); got != c.ok || r.H() != c.h {
			t.Fatalf("Accept(%d) = %v, h=%d; want %v, h=%d", c.n, got, r.H(), c.ok, c.h)
		}
	}
	// XEP-0198 §4: h wraps at 2^32.
	r.h = 1<<32 - 1
	if !r.Accept(0) || r.H() != 0 || !r.Accept(1) {
		t.Fatal("no wrap at 2^32")
	}
}

func TestMarkerAndAck(t *testing.T) {
	if got := string(AppendMarker(nil, 1<<32-1)); got != "<r xmlns='urn:xmpp:sm:3' seq='4294967295'/>" || len(got) != MarkerMax {
		t.Fatalf("marker %q", got)
	}
	if got := string(AppendAck(nil, 7)); got != "<a xmlns='urn:xmpp:sm:3' h='7'/>" {
		t.Fatalf("ack %q", got)
	}
	for _, bad := range []string{"", "-1", "4294967296", "x", "12345678901"} {
		if _, ok := ParseCounter([]byte(bad)); ok {
			t.Errorf("ParseCounter(%q) accepted", bad)
		}
	}
}

// TestSenderWindowAckRetransmit: stanzas are numbered from 1, at most a
// window is in flight, an ack releases and refills, a timeout
// retransmits what is in flight in order, an ack beyond what was sent is
// refused, a stale one ignored, and Close hands back the rest in order.
func TestSenderWindowAckRetransmit(t *testing.T) {
	w := newWire()
	s := NewSender(Options{MinRTO: 300 * time.Millisecond, MaxRTO: 600 * time.Millisecond, Window: 2, MaxQueue: 4}, w.write, nil)
	for i := 1; i <= 4; i++ {
		if err := s.Push([]byte(fmt.Sprintf("<m%d/>", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Push([]byte("<m5/>")); err != ErrFull {
		t.Fatalf("fifth push: %v, want ErrFull", err)
	}
	w.wait(t, 2)
	if got := strings.Join(w.take(), ""); got != "<r xmlns='urn:xmpp:sm:3' seq='1'/><m1/><r xmlns='urn:xmpp:sm:3' seq='2'/><m2/>" {
		t.Fatalf("first window: %s", got)
	}
	if err := s.Ack(3); err == nil {
		t.Fatal("an ack for more than was sent was taken")
	}
	if err := s.Ack(1); err != nil {
		t.Fatal(err)
	}
	w.wait(t, 1)
	if got := strings.Join(w.take(), ""); got != "<r xmlns='urn:xmpp:sm:3' seq='3'/><m3/>" {
		t.Fatalf("after ack 1: %s", got)
	}
	if err := s.Ack(0); err != nil { // stale (reordered): ignored
		t.Fatal(err)
	}
	// No ack: both in flight come again, in order.
	w.wait(t, 2)
	if got := strings.Join(w.take(), ""); got != "<r xmlns='urn:xmpp:sm:3' seq='2'/><m2/><r xmlns='urn:xmpp:sm:3' seq='3'/><m3/>" {
		t.Fatalf("retransmission: %s", got)
	}
	left := s.Close()
	if len(left) != 3 || string(left[0]) != "<m2/>" || string(left[2]) != "<m4/>" {
		t.Fatalf("Close returned %q", left)
	}
	if err := s.Push([]byte("<m6/>")); err != ErrClosed {
		t.Fatalf("push after close: %v", err)
	}
}

// TestSenderGivesUp: without any ack the sender retransmits MaxRetries
// times, with a doubling timeout, then calls giveUp once.
func TestSenderGivesUp(t *testing.T) {
	w := newWire()
	gone := make(chan struct{})
	s := NewSender(Options{MinRTO: 5 * time.Millisecond, MaxRTO: 20 * time.Millisecond, MaxRetries: 3}, w.write, func() { close(gone) })
	start := time.Now()
	s.Push([]byte("<m/>"))
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("never gave up")
	}
	// 5 + 10 + 20 + 20 ms of timeouts at least.
	if d := time.Since(start); d < 55*time.Millisecond {
		t.Fatalf("gave up after %s: no backoff", d)
	}
	if n := len(w.take()); n != 4 {
		t.Fatalf("%d transmissions, want 1 + 3 retries", n)
	}
}

// TestSenderWrap: numbering and acks across 2^32.
func TestSenderWrap(t *testing.T) {
	w := newWire()
	s := NewSender(Options{Window: 4}, w.write, nil)
	s.acked = 1<<32 - 2
	for range 3 {
		s.Push([]byte("<m/>"))
	}
	w.wait(t, 3)
	got := strings.Join(w.take(), "")
	for _, seq := range []string{"4294967295", "'0'", "'1'"} {
		if !strings.Contains(got, seq) {
			t.Fatalf("no seq %s in %s", seq, got)
		}
	}
	if err := s.Ack(1); err != nil || s.Unacked() != 0 {
		t.Fatalf("ack across the wrap: %v, %d held", err, s.Unacked())
	}
	s.Close()
}

// TestPushWait waits for room and is released by an ack.
func TestPushWait(t *testing.T) {
	w := newWire()
	s := NewSender(Options{Window: 1, MaxQueue: 1}, w.write, nil)
	defer s.Close()
	s.Push([]byte("<a/>"))
	done := make(chan error, 1)
	go func() { done <- s.PushWait(context.Background(), []byte("<b/>")) }()
	w.wait(t, 1)
	select {
	case err := <-done:
		t.Fatalf("PushWait returned %v while the queue was full", err)
	default:
	}
	s.Ack(1)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PushWait not released by the ack")
	}
}

// TestFastRetransmit: two acks in a row that acknowledge nothing new (the
// peer saw a gap) resend what is in flight before the timeout, once.
func TestFastRetransmit(t *testing.T) {
	w := newWire()
	s := NewSender(Options{MinRTO: time.Minute, Window: 3}, w.write, nil)
	defer s.Close()
	for range 3 {
		s.Push([]byte("<m/>"))
	}
	w.wait(t, 3)
	w.take()
	s.Ack(0)
	if n := len(w.take()); n != 0 {
		t.Fatalf("one duplicate ack resent %d", n)
	}
	s.Ack(0)
	w.wait(t, 3)
	if got := w.take(); len(got) != 3 || !strings.HasPrefix(got[0], "<r xmlns='urn:xmpp:sm:3' seq='1'/>") {
		t.Fatalf("fast retransmission: %q", got)
	}
	s.Ack(0)
	if n := len(w.take()); n != 0 {
		t.Fatalf("a third duplicate ack resent %d again", n)
	}
}
