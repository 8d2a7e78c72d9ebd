package s2s

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// recorder is the Inbound side: what arrived and what bounced.
type recorder struct {
	mu      sync.Mutex
	got     []string
	bounced []stanza.Condition
	texts   []string
	bounce  chan struct{} // one value per bounce, when not full
	arrived chan string
}

func newRecorder() *recorder {
	return &recorder{arrived: make(chan string, 16), bounce: make(chan struct{}, 64)}
}

func (r *recorder) FromRemote(st *stanza.Stanza) { r.arrived <- string(st.Tok.Raw) }
func (r *recorder) Undeliverable(b []byte, cond stanza.Condition, text string) {
	r.mu.Lock()
	r.bounced = append(r.bounced, cond)
	r.texts = append(r.texts, text)
	r.mu.Unlock()
	select {
	case r.bounce <- struct{}{}:
	default:
	}
}
func (r *recorder) bounces() []stanza.Condition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]stanza.Condition(nil), r.bounced...)
}

// fakePeer is a remote server for domain on loopback: it answers every
// stream the service opens (dialback results and verifies are always
// valid) and hands each authenticated outbound stream to the test.
type fakePeer struct {
	t       *testing.T
	domain  string
	ln      net.Listener
	streams chan *peerConn
	hold    chan struct{} // when set, a new connection waits for it before answering
}

type peerConn struct {
	nc   net.Conn
	scan *xmlscan.Scanner
}

// read waits for the next element or the stream's end ("" then).
func (p *peerConn) read(t *testing.T) string {
	t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	tok, err := p.scan.Next()
	if err != nil || tok.Kind == xmlscan.KindClose {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the service neither wrote nor closed within 10 s")
		}
		return ""
	}
	return string(tok.Raw)
}

func newFakePeer(t *testing.T, domain string) *fakePeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePeer{t: t, domain: domain, ln: ln, streams: make(chan *peerConn, 8)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			go f.serve(nc)
		}
	}()
	return f
}

func (f *fakePeer) serve(nc net.Conn) {
	if f.hold != nil {
		<-f.hold
	}
	p := &peerConn{nc: nc, scan: xmlscan.New(nc, xmlscan.Limits{})}
	if tok, err := p.scan.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		nc.Close()
		return
	}
	nc.Write([]byte("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='p1' from='" + f.domain + "' version='1.0'><stream:features/>"))
	for {
		tok, err := p.scan.Next()
		if err != nil || tok.Kind != xmlscan.KindElement {
			nc.Close()
			return
		}
		switch string(tok.Local) {
		case "result":
			nc.Write([]byte("<db:result from='" + f.domain + "' to='" + attr(&tok, "from") + "' type='valid'/>"))
			f.streams <- p
			return
		case "verify":
			nc.Write([]byte("<db:verify from='" + f.domain + "' to='" + attr(&tok, "from") + "' id='" + attr(&tok, "id") + "' type='valid'/>"))
		}
	}
}

func (f *fakePeer) next(t *testing.T) *peerConn {
	t.Helper()
	select {
	case p := <-f.streams:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not open a stream")
		return nil
	}
}

func newService(t *testing.T, cfg Config, in Inbound) *Service {
	cfg.Domain, cfg.Secret = "a.test", []byte("s")
	s := New(cfg, in, quiet())
	t.Cleanup(s.Close)
	return s
}

func (s *Service) outCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.out)
}

// An outbound stream that carried nothing for s2s.idle_timeout is closed
// and forgotten, even when the peer never writes (the read no longer
// lasts for ever); the next stanza opens a new one. s2s.max_outbound
// bounds the domains with a stream: past it the sender gets
// resource-constraint.
func TestOutboundIdleAndMax(t *testing.T) {
	b, c := newFakePeer(t, "b.test"), newFakePeer(t, "c.test")
	rec := newRecorder()
	s := newService(t, Config{
		Routes:      map[string]string{"b.test": b.ln.Addr().String(), "c.test": c.ln.Addr().String()},
		MaxOutbound: 1, IdleTimeout: 300 * time.Millisecond,
	}, rec)
	s.Send("b.test", []byte("<message from='u@a.test/r' to='v@b.test' id='1'/>"))
	p := b.next(t)
	if got := p.read(t); !strings.Contains(got, "id='1'") {
		t.Fatalf("b.test got %q", got)
	}
	s.Send("c.test", []byte("<message from='u@a.test/r' to='v@c.test' id='2'/>"))
	if got := rec.bounces(); len(got) != 1 || got[0] != stanza.ResourceConstraint {
		t.Fatalf("past max_outbound: bounces %v, want one resource-constraint", got)
	}
	start := time.Now()
	if got := p.read(t); got != "" {
		t.Fatalf("expected the idle stream to close, got %q", got)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	if n := s.outCount(); n != 0 {
		t.Fatalf("%d outbound entries after the idle close", n)
	}
	// The place is free again, and the domain is reopened on demand.
	s.Send("c.test", []byte("<message from='u@a.test/r' to='v@c.test' id='3'/>"))
	if got := c.next(t).read(t); !strings.Contains(got, "id='3'") {
		t.Fatalf("c.test got %q", got)
	}
	if got := rec.bounces(); len(got) != 1 {
		t.Fatalf("bounces %v", got)
	}
}

// What waits for a domain whose stream is being opened is bounded in
// bytes (s2s.queue_bytes), not only in count.
func TestOutboundQueueBytes(t *testing.T) {
	b := newFakePeer(t, "b.test")
	b.hold = make(chan struct{})
	rec := newRecorder()
	s := newService(t, Config{Routes: map[string]string{"b.test": b.ln.Addr().String()}, QueueBytes: 120}, rec)
	msg := func(id string) []byte {
		return []byte("<message from='u@a.test/r' to='v@b.test' id='" + id + "'><body>" + strings.Repeat("x", 30) + "</body></message>")
	}
	s.Send("b.test", msg("1")) // ~90 bytes: waits
	s.Send("b.test", msg("2")) // would pass 120: bounced
	if got := rec.bounces(); len(got) != 1 || got[0] != stanza.ResourceConstraint {
		t.Fatalf("past queue_bytes: bounces %v, want one resource-constraint", got)
	}
	close(b.hold)
	p := b.next(t)
	if got := p.read(t); !strings.Contains(got, "id='1'") {
		t.Fatalf("first stanza: %q", got)
	}
}

// Past s2s.max_inbound a connection gets our header and the
// resource-constraint stream error; an authenticated inbound stream that
// carries nothing for idle_timeout is closed.
func TestInboundMaxAndIdle(t *testing.T) {
	b := newFakePeer(t, "b.test")
	rec := newRecorder()
	s := newService(t, Config{Routes: map[string]string{"b.test": b.ln.Addr().String()}, MaxInbound: 1, IdleTimeout: 300 * time.Millisecond}, rec)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { ln.Close() })

	first := dialPeer(t, ln.Addr().String())
	first.nc.Write([]byte("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='b.test' to='a.test' version='1.0'>"))
	first.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if tok, err := first.scan.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		t.Fatalf("first connection: %v", err)
	}
	if f := first.read(t); !strings.Contains(f, "features") {
		t.Fatalf("features: %q", f)
	}

	second := dialPeer(t, ln.Addr().String())
	second.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if tok, err := second.scan.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		t.Fatalf("second connection: no header before the error: %v", err)
	}
	if e := second.read(t); !strings.Contains(e, "<resource-constraint") {
		t.Fatalf("past max_inbound: %q, want resource-constraint", e)
	}
	if rest := second.read(t); rest != "" {
		t.Fatalf("the refused stream goes on: %q", rest)
	}

	first.nc.Write([]byte("<db:result from='b.test' to='a.test'>k</db:result>"))
	if r := first.read(t); !strings.Contains(r, "type='valid'") {
		t.Fatalf("dialback: %q", r)
	}
	first.nc.Write([]byte("<message from='v@b.test/r' to='u@a.test' id='in1'/>"))
	select {
	case got := <-rec.arrived:
		if !strings.Contains(got, "in1") {
			t.Fatalf("arrived: %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stanza did not arrive")
	}
	start := time.Now()
	if got := first.read(t); got != "" {
		t.Fatalf("expected the idle inbound stream to close, got %q", got)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
}

func dialPeer(t *testing.T, addr string) *peerConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &peerConn{nc: nc, scan: xmlscan.New(nc, xmlscan.Limits{})}
}

// TestUnreachableTextHasNoAddresses (issue 17): the error a sender gets
// for a domain that cannot be reached says so without the addresses of
// the gateway's network (peer, resolver) that the dial error names.
func TestUnreachableTextHasNoAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: the dial is refused
	rec := newRecorder()
	s := newService(t, Config{Domain: "a.test", Secret: []byte("s"), Routes: map[string]string{"gone.test": dead}}, rec)
	s.Send("gone.test", []byte("<message from='u@a.test/r' to='x@gone.test' id='1'><body>hi</body></message>"))
	select {
	case <-rec.bounce:
	case <-time.After(10 * time.Second):
		t.Fatal("no bounce within 10 s")
	}
	rec.mu.Lock()
	text := rec.texts[0]
	rec.mu.Unlock()
	if strings.Contains(text, "127.0.0.1") || !strings.Contains(text, "gone.test") {
		t.Fatalf("bounce text %q: want the domain and no address", text)
	}
}
