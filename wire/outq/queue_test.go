package outq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// streamErr is what a session's overflow handler queues (RFC 6120
// §4.9.3.13: policy-violation for a peer that does not read).
const streamErr = "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"

// deadline bounds every wait in these tests.
const deadline = 10 * time.Second

// gateConn is a net.Conn that records each Write as one chunk. While gate
// is set, a Write first announces itself on entered and then waits for
// the gate to be closed, so a test can hold the writer inside Write while
// it queues more.
type gateConn struct {
	mu       sync.Mutex
	chunks   [][]byte
	total    int
	closed   bool
	discard  bool // count writes but keep no copy (for allocation counts)
	writes   int
	gate     chan struct{} // nil: writes pass at once
	entered  chan struct{} // receives once per gated Write
	progress chan struct{} // receives (non-blocking) after every Write and on Close
}

func newGateConn(t *testing.T, gated bool) *gateConn {
	c := &gateConn{entered: make(chan struct{}, 1), progress: make(chan struct{}, 1)}
	if gated {
		c.gate = make(chan struct{})
		t.Cleanup(c.open) // a failed test leaves no writer blocked for the next
	}
	return c
}

func (c *gateConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	gate := c.gate
	c.mu.Unlock()
	if gate != nil {
		select {
		case c.entered <- struct{}{}:
		default:
		}
		<-gate
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.writes++
	c.total += len(b)
	if !c.discard {
		c.chunks = append(c.chunks, bytes.Clone(b))
	}
	c.mu.Unlock()
	c.poke()
	return len(b), nil
}

// open lets every Write through from now on.
func (c *gateConn) open() {
	c.mu.Lock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
	c.mu.Unlock()
}

func (c *gateConn) poke() {
	select {
	case c.progress <- struct{}{}:
	default:
	}
}

func (c *gateConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.poke()
	return nil
}

// state returns the writes so far, their concatenation and whether the
// conn is closed.
func (c *gateConn) state() (writes int, all []byte, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, bytes.Join(c.chunks, nil), c.closed
}

// waitFor waits until cond holds for the conn's state, woken by each
// Write and Close; it fails the test after deadline.
func (c *gateConn) waitFor(t *testing.T, what string, cond func(writes int, all []byte, closed bool) bool) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		if cond(c.state()) {
			return
		}
		select {
		case <-c.progress:
		case <-timer.C:
			w, all, closed := c.state()
			t.Fatalf("%s: not within %s (writes %d, closed %v, bytes %q)", what, deadline, w, closed, all)
		}
	}
}

func (c *gateConn) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-c.entered:
	case <-time.After(deadline):
		t.Fatal("the writer never called Write")
	}
}

func (c *gateConn) Read([]byte) (int, error)           { return 0, io.EOF }
func (c *gateConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *gateConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *gateConn) SetDeadline(time.Time) error        { return nil }
func (c *gateConn) SetReadDeadline(time.Time) error    { return nil }
func (c *gateConn) SetWriteDeadline(t time.Time) error { return nil }

// writers counts the queue writer goroutines alive in this process.
func writers() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "outq.(*Queue).run(")
}

// noWriters waits until no writer goroutine is left: an idle or closed
// queue must not keep one.
func noWriters(t *testing.T) {
	t.Helper()
	for end := time.Now().Add(deadline); writers() > 0; runtime.Gosched() {
		if time.Now().After(end) {
			t.Fatalf("%d writer goroutines still running after %s", writers(), deadline)
		}
	}
}

// Stanzas pushed while a Write is in progress gather into one buffer and
// go out in one Write, in the order they were pushed (the point of the
// queue: one syscall and one TLS record for a burst).
func TestCoalescesInOrder(t *testing.T) {
	c := newGateConn(t, true)
	q := New(c, 1<<20, deadline, nil)
	var want bytes.Buffer
	push := func(i int) {
		b := fmt.Appendf(nil, "<message id='m%d'/>", i)
		want.Write(b)
		if !q.Push(b) {
			t.Fatalf("push %d refused", i)
		}
	}
	push(0)
	c.waitEntered(t) // the writer holds m0 inside Write
	for i := 1; i < 200; i++ {
		push(i)
	}
	c.open()
	c.waitFor(t, "all 200 stanzas written", func(_ int, all []byte, _ bool) bool { return len(all) >= want.Len() })
	writes, all, closed := c.state()
	if !bytes.Equal(all, want.Bytes()) {
		t.Fatalf("written bytes differ from what was pushed, in order:\n got %q\nwant %q", all, want.Bytes())
	}
	if writes != 2 {
		t.Fatalf("%d Writes for a burst pushed during one Write, want 2 (the first stanza, then the other 199 together)", writes)
	}
	if closed {
		t.Fatal("the conn was closed without CloseWith")
	}
	noWriters(t)
}

// Many goroutines pushing at once: every stanza arrives once, and each
// goroutine's stanzas arrive in the order it pushed them.
func TestConcurrentPushKeepsOrder(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	q := New(server, 1<<24, deadline, func() { t.Error("overflow below the limit") })
	const senders, each = 8, 500
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(client); got <- b }()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if !q.Push(fmt.Appendf(nil, "<m s='%d' i='%d'/>", s, i)) {
					t.Errorf("push %d/%d refused", s, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	q.CloseWith([]byte("</stream:stream>"), false)
	if !q.Wait(deadline) {
		t.Fatal("Wait: the conn was not closed after CloseWith")
	}
	var all []byte
	select {
	case all = <-got:
	case <-time.After(deadline):
		t.Fatal("the reader did not see the end of the stream")
	}
	if !bytes.HasSuffix(all, []byte("</stream:stream>")) {
		t.Fatalf("the closing tag is not last: ...%q", all[max(0, len(all)-80):])
	}
	next := make([]int, senders)
	for _, m := range strings.SplitAfter(strings.TrimSuffix(string(all), "</stream:stream>"), "/>") {
		if m == "" {
			continue
		}
		var s, i int
		if _, err := fmt.Sscanf(m, "<m s='%d' i='%d'/>", &s, &i); err != nil {
			t.Fatalf("garbled stanza %q: %v", m, err)
		}
		if i != next[s] {
			t.Fatalf("sender %d: stanza %d arrived when %d was due", s, i, next[s])
		}
		next[s]++
	}
	for s, n := range next {
		if n != each {
			t.Fatalf("sender %d: %d of %d stanzas arrived", s, n, each)
		}
	}
	noWriters(t)
}

// The byte bound: what waits may reach the limit exactly; one byte more
// is refused, the overflow handler runs once (however many pushes follow)
// and, as a session's handler does, closes the stream with
// policy-violation, discarding what the slow peer had not taken.
func TestOverflowClosesWithStreamError(t *testing.T) {
	const limit = 100
	c := newGateConn(t, true)
	var q *Queue
	var overflows atomic.Int32
	q = New(c, limit, deadline, func() {
		overflows.Add(1)
		q.CloseWith([]byte(streamErr), true)
	})
	if !q.Push([]byte("<first/>")) {
		t.Fatal("first push refused")
	}
	c.waitEntered(t) // the writer holds <first/>; what follows waits
	fill := bytes.Repeat([]byte("x"), limit/2)
	if !q.Push(fill) || !q.Push(fill) {
		t.Fatalf("pushes filling the queue to its limit (%d bytes) were refused", limit)
	}
	if n := overflows.Load(); n != 0 {
		t.Fatalf("overflow handler ran at exactly the limit (%d times)", n)
	}
	if q.Push([]byte("y")) {
		t.Fatal("a push past the limit was accepted")
	}
	if q.Push([]byte("z")) {
		t.Fatal("a push after the overflow was accepted")
	}
	if n := overflows.Load(); n != 1 {
		t.Fatalf("overflow handler ran %d times, want once", n)
	}
	c.open()
	if !q.Wait(deadline) {
		t.Fatal("Wait: the conn was not closed after the overflow")
	}
	_, all, closed := c.state()
	if want := "<first/>" + streamErr; string(all) != want {
		t.Fatalf("the peer got %q, want %q (the queued filler dropped, the stream error last)", all, want)
	}
	if !closed {
		t.Fatal("conn not closed")
	}

	// A handler that does not close at once (the session closes from
	// another goroutine) still runs only once.
	g := newGateConn(t, true)
	var later atomic.Int32
	q2 := New(g, limit, deadline, func() { later.Add(1) })
	q2.Push([]byte("<first/>"))
	g.waitEntered(t)
	q2.Push(bytes.Repeat([]byte("x"), limit))
	for range 3 {
		if q2.Push([]byte("y")) {
			t.Fatal("a push past the limit was accepted")
		}
	}
	if n := later.Load(); n != 1 {
		t.Fatalf("overflow handler ran %d times for three pushes past the limit, want once", n)
	}
	g.open()
	q2.CloseWith(nil, true)
	if !q2.Wait(deadline) {
		t.Fatal("not closed")
	}
	noWriters(t)
}

// CloseWith without drop writes what is queued, then the last bytes, then
// closes; Wait returns once the conn is closed and not before; nothing
// is accepted afterwards.
func TestCloseWithDrainsThenWaitReturns(t *testing.T) {
	c := newGateConn(t, true)
	q := New(c, 1<<20, deadline, nil)
	if q.Wait(10 * time.Millisecond) {
		t.Fatal("Wait returned true on an open queue")
	}
	q.Push([]byte("<a/>"))
	c.waitEntered(t)
	q.Push([]byte("<b/>"))
	q.CloseWith([]byte("</stream:stream>"), false)
	if q.Push([]byte("<late/>")) {
		t.Fatal("push after CloseWith accepted")
	}
	q.CloseWith([]byte("<second-close/>"), false) // ignored
	if q.Wait(10 * time.Millisecond) {
		t.Fatal("Wait returned true while the writer was still blocked")
	}
	c.open()
	if !q.Wait(deadline) {
		t.Fatal("Wait timed out after CloseWith")
	}
	_, all, closed := c.state()
	if string(all) != "<a/><b/></stream:stream>" || !closed {
		t.Fatalf("got %q closed=%v, want what was queued, then the closing tag, then close", all, closed)
	}
	if q.pending != nil {
		t.Fatal("a closed queue still holds a buffer")
	}
	noWriters(t)
}

// A peer that does not read: the writer's Write blocks until the write
// timeout, then the conn is closed and Wait returns. net.Pipe has no
// buffer, so the first Write blocks with nobody reading.
func TestBlockedWriterHitsWriteTimeout(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	const timeout = 100 * time.Millisecond
	q := New(server, 1<<20, timeout, nil)
	start := time.Now()
	if !q.Push([]byte("<message>nobody reads this</message>")) {
		t.Fatal("push refused")
	}
	if !q.Wait(deadline) {
		t.Fatalf("a Write with no reader was not cut by the %s write timeout within %s", timeout, deadline)
	}
	if el := time.Since(start); el < timeout {
		t.Fatalf("closed after %s, before the write timeout %s", el, timeout)
	}
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the peer's side is not closed: %v", err)
	}
	if q.Push([]byte("<more/>")) {
		t.Fatal("push to a dead queue accepted")
	}
	q.CloseWith([]byte("</stream:stream>"), false) // a no-op, must not block or panic
	noWriters(t)
}

// Buffers go back to the pool: once a burst is flushed the queue holds no
// buffer and no goroutine, and a steady push-flush cycle allocates
// nothing (a buffer not returned would be a fresh 4 KiB each time).
func TestBuffersReleased(t *testing.T) {
	c := newGateConn(t, false)
	c.discard = true
	q := New(c, 1<<20, deadline, nil)
	msg := []byte("<message to='bob@localhost'><body>hi</body></message>")
	idle := func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return !q.running && q.pending == nil
	}
	waitIdle := func() {
		for end := time.Now().Add(deadline); !idle(); runtime.Gosched() {
			if time.Now().After(end) {
				t.Fatal("the writer did not go idle")
			}
		}
	}
	cycle := func() {
		q.Push(msg)
		waitIdle()
	}
	cycle()
	noWriters(t)
	if a := testing.AllocsPerRun(200, cycle); a >= 1 {
		t.Fatalf("%.0f allocations per push-and-flush, want 0: the written buffer does not go back to the pool", a)
	}
	// A buffer grown past maxPool by a big stanza is not pooled.
	big := make([]byte, maxPool+1)
	b := &big
	PutBuf(b)
	if got := GetBuf(); cap(*got) > maxPool {
		t.Fatal("a buffer bigger than maxPool went back to the pool")
	}
	// The conn dies with bytes queued: they are released too.
	g := newGateConn(t, true)
	q2 := New(g, 1<<20, deadline, nil)
	q2.Push([]byte("<a/>"))
	g.waitEntered(t)
	q2.Push([]byte("<b/>"))
	g.Close() // the Write in progress fails
	g.open()
	if !q2.Wait(deadline) {
		t.Fatal("a failed Write did not close the queue")
	}
	q2.mu.Lock()
	held := q2.pending != nil
	q2.mu.Unlock()
	if held {
		t.Fatal("a dead queue still holds its pending buffer")
	}
	noWriters(t)
}

// Many connections that open, exchange a little and close leave no
// goroutine behind, and an idle open queue has no writer.
func TestNoGoroutineLeak(t *testing.T) {
	noWriters(t)
	before := runtime.NumGoroutine()
	for i := range 50 {
		client, server := net.Pipe()
		q := New(server, 1<<16, time.Second, nil)
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, client); close(done) }()
		q.Push([]byte("<a/>"))
		if i%2 == 0 {
			q.CloseWith([]byte("</stream:stream>"), i%4 == 0)
		} else {
			server.Close() // the peer went away under the queue
			q.Push([]byte("<b/>"))
			q.CloseWith([]byte("</stream:stream>"), false)
		}
		if !q.Wait(deadline) {
			t.Fatalf("round %d: not closed", i)
		}
		client.Close()
		<-done
	}
	noWriters(t)
	for end := time.Now().Add(deadline); runtime.NumGoroutine() > before; runtime.Gosched() {
		if time.Now().After(end) {
			t.Fatalf("%d goroutines before, %d after", before, runtime.NumGoroutine())
		}
	}
}

// What the client asked for (TryPush, PushAll) is paced, never counted
// as slow reading: unsolicited bytes are held to the limit beside it, so
// an offline flush in progress does not get the client dropped when a
// presence arrives (issue 14).
func TestRequestedBytesDoNotCountTowardOverflow(t *testing.T) {
	a, b := net.Pipe() // nobody reads b: the first write blocks the writer
	defer a.Close()
	defer b.Close()
	overflows := 0
	q := New(a, 100, 10*time.Second, func() { overflows++ })
	if !q.Push(make([]byte, 10)) {
		t.Fatal("first push refused")
	}
	// Wait until the writer has taken those 10 bytes (it blocks writing).
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		taken := q.pending == nil || len(*q.pending) == 0
		q.mu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer never took the first push")
		}
		time.Sleep(time.Millisecond)
	}
	if _, ok, full := q.TryPush(make([]byte, 90)); !ok || full {
		t.Fatalf("requested push refused: ok %v full %v", ok, full)
	}
	if !q.Push(make([]byte, 50)) || overflows != 0 {
		t.Fatalf("an unsolicited push within the limit beside requested bytes was refused (overflows %d)", overflows)
	}
	if q.Push(make([]byte, 60)) || overflows != 1 {
		t.Fatalf("unsolicited bytes past the limit were taken (overflows %d)", overflows)
	}
}
