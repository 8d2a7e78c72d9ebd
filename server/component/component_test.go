package component

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

const (
	domain = "bridge.test"
	secret = "s3cret"
)

// inbound records what the service routes in.
type inbound struct {
	mu  sync.Mutex
	got []string
	ch  chan string
}

func (in *inbound) FromComponent(st *stanza.Stanza) {
	s := string(st.Tok.Raw)
	in.mu.Lock()
	in.got = append(in.got, s)
	in.mu.Unlock()
	in.ch <- s
}

func (in *inbound) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.got)
}

func start(t *testing.T, tune func(*Config)) (*Service, *inbound, string) {
	t.Helper()
	cfg := Config{
		Domains:      map[string]string{domain: secret, "other.test": "x"},
		Limits:       xmlscan.Limits{MaxElementBytes: 16 << 10, MaxDepth: 16, Budget: xmlscan.NewBudget(1 << 20)},
		PreauthBytes: 4096,
		AuthTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		QueueBytes:   64 << 10,
		PendingPerIP: 4,
		MaxPending:   16,
	}
	if tune != nil {
		tune(&cfg)
	}
	in := &inbound{ch: make(chan string, 64)}
	svc := New(cfg, in, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(ln)
	t.Cleanup(svc.Close)
	return svc, in, ln.Addr().String()
}

// client is a raw TCP component.
type client struct {
	t   *testing.T
	nc  net.Conn
	buf []byte
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// until reads until the received text contains want (within 10 s) and
// returns everything received so far.
func (c *client) until(want string) string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 4096)
	for !bytes.Contains(c.buf, []byte(want)) {
		n, err := c.nc.Read(b)
		c.buf = append(c.buf, b[:n]...)
		if err != nil {
			c.t.Fatalf("no %q (%v); received:\n%s", want, err, c.buf)
		}
	}
	return string(c.buf)
}

// eof reads until the server closes the connection and returns all.
func (c *client) eof() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	b := make([]byte, 64<<10)
	for {
		n, err := c.nc.Read(b)
		c.buf = append(c.buf, b[:n]...)
		// A reset is a close too: the server closed with unread input.
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return string(c.buf)
		}
		if err != nil {
			c.t.Fatalf("the server did not close the stream: %v; received:\n%.2000s", err, c.buf)
		}
	}
}

var idRE = regexp.MustCompile(`id='([^']+)'`)

// open sends the stream header for to and returns the stream id.
func (c *client) open(to string) string {
	c.t.Helper()
	c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + to + "'>")
	h := c.until(">")
	m := idRE.FindStringSubmatch(h)
	if m == nil {
		c.t.Fatalf("no stream id in %q", h)
	}
	return m[1]
}

func handshake(id, secret string) string {
	sum := sha1.Sum([]byte(id + secret))
	return "<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>"
}

// connect authenticates a component for d.
func connect(t *testing.T, addr, d, sec string) *client {
	t.Helper()
	c := dial(t, addr)
	c.send(handshake(c.open(d), sec))
	c.until("<handshake/>")
	c.buf = nil
	return c
}

func waitConnected(t *testing.T, svc *Service, d string, want bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); svc.Connected(d) != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Connected(%s) never became %v", d, want)
		}
	}
}

func TestHandshakeAndExchange(t *testing.T) {
	svc, in, addr := start(t, nil)
	if err := svc.Send(domain, []byte("<message to='x@bridge.test'/>")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("send before connect: %v", err)
	}
	c := connect(t, addr, domain, secret)
	waitConnected(t, svc, domain, true)
	c.send("<message from='sensor@bridge.test' to='alice@gw.test'><body>hi</body></message>")
	select {
	case got := <-in.ch:
		if !strings.Contains(got, "<body>hi</body>") {
			t.Fatalf("routed %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stanza was not routed")
	}
	// A client's explicit jabber:client is dropped on the way to the
	// component, so that the stanza is in jabber:component:accept.
	if err := svc.Send(domain, []byte("<message xmlns='jabber:client' from='alice@gw.test/p' to='sensor@bridge.test'><body>back</body></message>")); err != nil {
		t.Fatal(err)
	}
	got := c.until("</message>")
	if strings.Contains(got, "jabber:client") || !strings.Contains(got, "<body>back</body>") {
		t.Fatalf("the component got %q", got)
	}
	if st := svc.Status(); len(st) != 2 || !strings.Contains(strings.Join(st, "\n"), domain+": connected") {
		t.Fatalf("status %q", st)
	}
	// The component ends its stream: the session goes.
	c.send("</stream:stream>")
	if out := c.eof(); !strings.Contains(out, "</stream:stream>") {
		t.Fatalf("no closing tag: %q", out)
	}
	waitConnected(t, svc, domain, false)
}

func TestWrongSecret(t *testing.T) {
	svc, _, addr := start(t, nil)
	c := dial(t, addr)
	c.send(handshake(c.open(domain), "wrong"))
	if out := c.eof(); !strings.Contains(out, "<not-authorized") || strings.Contains(out, "<handshake/>") {
		t.Fatalf("wrong secret: %q", out)
	}
	if svc.Connected(domain) {
		t.Fatal("connected with a wrong secret")
	}
	// Another domain's secret does not open this one either.
	c = dial(t, addr)
	c.send(handshake(c.open(domain), "x"))
	if out := c.eof(); !strings.Contains(out, "<not-authorized") {
		t.Fatalf("another domain's secret: %q", out)
	}
}

func TestUnknownDomainAndNamespace(t *testing.T) {
	_, _, addr := start(t, nil)
	c := dial(t, addr)
	c.open("nobody.test")
	if out := c.eof(); !strings.Contains(out, "<host-unknown") {
		t.Fatalf("unknown domain: %q", out)
	}
	c = dial(t, addr)
	c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "'>")
	if out := c.eof(); !strings.Contains(out, "<invalid-namespace") {
		t.Fatalf("client namespace: %q", out)
	}
	// A stanza before the handshake.
	c = dial(t, addr)
	c.open(domain)
	c.send("<message from='a@bridge.test' to='b@gw.test'/>")
	if out := c.eof(); !strings.Contains(out, "<not-authorized") {
		t.Fatalf("stanza before the handshake: %q", out)
	}
}

func TestSpoofedFrom(t *testing.T) {
	for _, from := range []string{"alice@gw.test", "x@other.test", "x@sub.bridge.test", "bad@@bridge.test"} {
		svc, in, addr := start(t, nil)
		c := connect(t, addr, domain, secret)
		c.send("<message from='" + from + "' to='alice@gw.test'><body>spoof</body></message>")
		if out := c.eof(); !strings.Contains(out, "<invalid-from") {
			t.Fatalf("from %s: %q", from, out)
		}
		waitConnected(t, svc, domain, false)
		if in.count() != 0 {
			t.Fatalf("from %s: routed %q", from, in.got)
		}
	}
	// The same domain in another spelling is the same domain.
	_, in, addr := start(t, nil)
	c := connect(t, addr, domain, secret)
	c.send("<message from='x@BRIDGE.test.' to='alice@gw.test'/>")
	select {
	case <-in.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("a from in another spelling of the domain was not routed")
	}
}

func TestBadTo(t *testing.T) {
	for _, st := range []string{
		"<message from='x@bridge.test' to='a@@gw.test'/>",
		"<message from='x@bridge.test'/>",
		"<iq type='get' id='1' to='gw.test'><ping xmlns='urn:xmpp:ping'/></iq>",
	} {
		_, in, addr := start(t, nil)
		c := connect(t, addr, domain, secret)
		c.send(st)
		if out := c.eof(); !strings.Contains(out, "<improper-addressing") {
			t.Fatalf("%s: %q", st, out)
		}
		if in.count() != 0 {
			t.Fatalf("%s: routed %q", st, in.got)
		}
	}
}

func TestOversizedStanza(t *testing.T) {
	svc, in, addr := start(t, nil)
	c := connect(t, addr, domain, secret)
	c.send("<message from='x@bridge.test' to='alice@gw.test'><body>" + strings.Repeat("a", 20<<10) + "</body></message>")
	if out := c.eof(); !strings.Contains(out, "<policy-violation") {
		t.Fatalf("oversized: %.300q", out)
	}
	waitConnected(t, svc, domain, false)
	if in.count() != 0 {
		t.Fatal("an oversized stanza was routed")
	}
	// Before the handshake the bound is the smaller preauth one.
	c = dial(t, addr)
	c.open(domain)
	c.send("<handshake>" + strings.Repeat("a", 8<<10) + "</handshake>")
	if out := c.eof(); !strings.Contains(out, "<policy-violation") {
		t.Fatalf("oversized handshake: %.300q", out)
	}
}

func TestSlowReader(t *testing.T) {
	svc, _, addr := start(t, func(c *Config) { c.QueueBytes = 32 << 10 })
	c := connect(t, addr, domain, secret)
	msg := []byte("<message from='alice@gw.test/p' to='x@bridge.test'><body>" + strings.Repeat("z", 1000) + "</body></message>")
	// The component reads nothing: the socket buffers fill, then the
	// queue; past it the component is cut and Send refuses.
	var refused bool
	for i := 0; i < 100000 && !refused; i++ {
		refused = errors.Is(svc.Send(domain, msg), ErrNotConnected)
	}
	if !refused {
		t.Fatal("a component that does not read was never cut")
	}
	if out := c.eof(); !strings.HasSuffix(out, "</stream:error></stream:stream>") || !strings.Contains(out, "<policy-violation") {
		t.Fatalf("slow reader's tail: %.300q", out[max(0, len(out)-300):])
	}
	waitConnected(t, svc, domain, false)
}

func TestReplaceAndShutdown(t *testing.T) {
	svc, in, addr := start(t, nil)
	old := connect(t, addr, domain, secret)
	waitConnected(t, svc, domain, true)
	c := connect(t, addr, domain, secret)
	if out := old.eof(); !strings.Contains(out, "<conflict") {
		t.Fatalf("the replaced session: %q", out)
	}
	c.send("<message from='x@bridge.test' to='alice@gw.test'/>")
	select {
	case <-in.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the new session does not route")
	}
	waitConnected(t, svc, domain, true)
	svc.Close()
	if out := c.eof(); !strings.Contains(out, "<system-shutdown") {
		t.Fatalf("shutdown: %q", out)
	}
	if svc.Connected(domain) {
		t.Fatal("connected after Close")
	}
}

func TestAuthTimeoutAndPending(t *testing.T) {
	_, _, addr := start(t, func(c *Config) { c.AuthTimeout = time.Second; c.PendingPerIP = 2 })
	a, b := dial(t, addr), dial(t, addr)
	a.open(domain)
	b.open(domain)
	// A third unauthenticated connection from the same address is refused.
	c := dial(t, addr)
	if out := c.eof(); !strings.Contains(out, "<policy-violation") {
		t.Fatalf("third pending connection: %q", out)
	}
	// The two that never send the handshake are dropped after
	// limits.auth_timeout.
	for _, x := range []*client{a, b} {
		if out := x.eof(); strings.Contains(out, "<handshake/>") {
			t.Fatalf("unauthenticated: %q", out)
		}
	}
	// And their places are free again.
	connect(t, addr, domain, secret)
}

// BenchmarkSend is one stanza for a component onto its session's queue
// (what every message from a local user to a bridge costs here): no
// allocation per stanza.
func BenchmarkSend(b *testing.B) {
	cfg := Config{Domains: map[string]string{domain: secret}, QueueBytes: 64 << 20}
	svc := New(cfg, &inbound{ch: make(chan string, 1)}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	svc.Start(ln)
	defer svc.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "'>"))
	buf := make([]byte, 4096)
	n, _ := nc.Read(buf)
	m := idRE.FindSubmatch(buf[:n])
	if m == nil {
		b.Fatalf("no id in %q", buf[:n])
	}
	nc.Write([]byte(handshake(string(m[1]), secret)))
	for deadline := time.Now().Add(10 * time.Second); !svc.Connected(domain); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the handshake did not complete")
		}
	}
	go io.Copy(io.Discard, nc)
	msg := []byte("<message from='alice@gw.test/phone' to='sensor@bridge.test' type='chat' id='x1'><body>on</body></message>")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := svc.Send(domain, msg); err != nil {
			b.Fatal(err)
		}
	}
}
