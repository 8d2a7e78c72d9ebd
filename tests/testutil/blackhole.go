package testutil

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Blackhole is a TCP proxy on 127.0.0.1 standing for a flaky link: it
// forwards bytes both ways until Cut, after which it silently stops
// forwarding both ways without closing either side, as a Wi-Fi or cellular
// link that drops without a FIN does. Neither end sees an EOF or a reset:
// what they write sits unread in the proxy's socket buffers (it stops
// reading), so a server keeps the connection and whatever it wrote is
// lost in transit. That is the case XEP-0198 stream management exists for
// (XEP-0198 §5 resumption).
//
// Connections accepted after Cut are held open but never connected to the
// target: the link is dead for new connections too. Close ends it all:
// the listener and both sides of every connection, which then see EOF.
type Blackhole struct {
	t      testing.TB
	target string
	ln     net.Listener

	mu     sync.Mutex
	cut    bool // new connections are held, not forwarded
	gen    int  // counts Cuts: a connection forwarded in an earlier generation is dead
	closed bool
	conns  []net.Conn // both sides of every connection, for Cut and Close

	wg      sync.WaitGroup // every goroutine, for Close
	copying sync.WaitGroup // the forwarding goroutines, for Cut; Add only under mu while !cut
}

// NewBlackhole listens on 127.0.0.1:0 and forwards each connection to
// target (host:port). The test's cleanup closes it.
func NewBlackhole(t testing.TB, target string) *Blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("blackhole: listen: %v", err)
	}
	b := &Blackhole{t: t, target: target, ln: ln}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.Close)
	return b
}

// Addr is the address clients dial instead of the target.
func (b *Blackhole) Addr() string { return b.ln.Addr().String() }

// Cut kills the link: from now on no byte is forwarded either way and
// nothing is closed. It returns once the forwarding goroutines have
// stopped, so no byte written after Cut returns reaches the other side.
func (b *Blackhole) Cut() {
	b.mu.Lock()
	if b.cut || b.closed {
		b.mu.Unlock()
		return
	}
	b.cut = true
	b.gen++
	conns := append([]net.Conn(nil), b.conns...)
	b.mu.Unlock()
	// Wake every copier blocked in Read or Write; seeing b.cut, each
	// returns without closing anything.
	past := time.Unix(1, 0)
	for _, c := range conns {
		c.SetDeadline(past)
	}
	b.copying.Wait()
}

// Restore brings the link back for new connections (a client that
// reconnects gets through); the connections Cut killed stay dead, as
// after a real outage.
func (b *Blackhole) Restore() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut = false
}

// Close closes the listener and both sides of every connection, and waits
// for the proxy's goroutines to end. Safe to call more than once.
func (b *Blackhole) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	conns := b.conns
	b.conns = nil
	b.mu.Unlock()
	b.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	b.wg.Wait()
}

func (b *Blackhole) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return // closed
		}
		if !b.track(c) {
			c.Close()
			return
		}
		b.mu.Lock()
		cut := b.cut
		b.mu.Unlock()
		if cut {
			continue // held open, never forwarded
		}
		// Dial outside the lock: a target that does not answer must not
		// block Cut or Close.
		s, err := net.DialTimeout("tcp", b.target, 10*time.Second)
		if err != nil {
			b.t.Logf("blackhole: dial %s: %v", b.target, err)
			c.Close()
			continue
		}
		if !b.track(s) {
			s.Close()
			return
		}
		b.mu.Lock()
		if b.cut {
			b.mu.Unlock()
			continue // cut while dialling: both sides held open
		}
		gen := b.gen
		b.copying.Add(2)
		b.wg.Add(2)
		b.mu.Unlock()
		go b.copy(s, c, gen)
		go b.copy(c, s, gen)
	}
}

// track records c for Cut and Close; false when the blackhole is closed.
func (b *Blackhole) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns = append(b.conns, c)
	return true
}

// copy forwards src to dst until an error. After Cut it returns without
// closing (the deadline Cut set is what stopped it); otherwise the end of
// one direction closes both sides, as a proxy passes a FIN or reset on.
func (b *Blackhole) copy(dst, src net.Conn, gen int) {
	defer b.wg.Done()
	defer b.copying.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if b.dead(gen) {
				return // read just as the link died: dropped, as in transit
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if b.dead(gen) {
				return
			}
			var ne net.Error
			if !errors.Is(err, io.EOF) && !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, net.ErrClosed) {
				b.t.Logf("blackhole: %v", err)
			}
			src.Close()
			dst.Close()
			return
		}
	}
}

// dead reports whether a connection forwarded in generation gen was cut.
func (b *Blackhole) dead(gen int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gen != gen
}
