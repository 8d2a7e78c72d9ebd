package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"roost/server"
)

// startWebServer runs a server with the web face on ephemeral ports.
func startWebServer(t *testing.T, mod func(*server.Config)) *testServer {
	t.Helper()
	return startServer(t, func(c *server.Config) {
		c.Listen.HTTPS = "127.0.0.1:0"
		if mod != nil {
			mod(c)
		}
	})
}

// wsClient is a hand-driven XMPP-over-WebSocket client (RFC 7395): one
// element per text message, parsed on its own with encoding/xml, so each
// message must carry its namespace declarations.
type wsClient struct {
	t   *testing.T
	c   *websocket.Conn
	jid string
}

func (ts *testServer) httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: ts.tlsConf}}
}

func (ts *testServer) wsURL() string { return "wss://" + ts.WebAddr().String() + "/xmpp-websocket" }

func dialWS(t *testing.T, ts *testServer, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{Subprotocols: []string{"xmpp"}}
	}
	opts.HTTPClient = ts.httpClient()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, ts.wsURL(), opts)
}

func newWS(t *testing.T, ts *testServer) *wsClient {
	t.Helper()
	c, _, err := dialWS(t, ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

func (w *wsClient) send(s string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatalf("ws send: %v", err)
	}
}

// tryNext reads one message and parses it as one element.
func (w *wsClient) tryNext() (*element, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, errors.New("binary message from the server")
	}
	var e element
	if err := xml.Unmarshal(b, &e); err != nil {
		return nil, errors.New("message is not one element: " + err.Error() + ": " + string(b))
	}
	return &e, nil
}

func (w *wsClient) next() *element {
	w.t.Helper()
	e, err := w.tryNext()
	if err != nil {
		w.t.Fatalf("ws read: %v", err)
	}
	return e
}

func (w *wsClient) expect(what string, match func(*element) bool) *element {
	w.t.Helper()
	for i := 0; i < 50; i++ {
		e := w.next()
		if match(e) {
			return e
		}
	}
	w.t.Fatalf("no %s", what)
	return nil
}

const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// open sends <open/> and reads the server's <open/> and features.
func (w *wsClient) open(domain string) *element {
	w.t.Helper()
	w.send("<open xmlns='" + nsFraming + "' to='" + domain + "' version='1.0'/>")
	o := w.next()
	if o.XMLName.Local != "open" || o.XMLName.Space != nsFraming || o.attr("from") != domain || o.attr("version") != "1.0" || o.attr("id") == "" {
		w.t.Fatalf("expected <open/>, got %s", o)
	}
	f := w.next()
	if f.XMLName.Local != "features" || f.XMLName.Space != "http://etherx.jabber.org/streams" {
		w.t.Fatalf("expected stream features, got %s", f)
	}
	return f
}

// expectStreamError reads the stream error cond, then <close/>.
func (w *wsClient) expectStreamError(cond string) {
	w.t.Helper()
	e := w.expect("a stream error", func(e *element) bool {
		return e.XMLName.Local == "error" && e.XMLName.Space == "http://etherx.jabber.org/streams"
	})
	if !strings.Contains(e.Inner, "<"+cond) {
		w.t.Fatalf("expected stream error %s, got %s", cond, e.Inner)
	}
	if c := w.next(); c.XMLName.Local != "close" || c.XMLName.Space != nsFraming {
		w.t.Fatalf("expected <close/> after the stream error, got %s", c)
	}
}

func wsLogin(t *testing.T, ts *testServer, user, password, resource string) *wsClient {
	t.Helper()
	w := newWS(t, ts)
	f := w.open(ts.cfg.Domain)
	if !strings.Contains(f.Inner, "<mechanism>PLAIN</mechanism>") || strings.Contains(f.Inner, "starttls") {
		t.Fatalf("features over wss: want PLAIN and no STARTTLS, got %s", f.Inner)
	}
	w.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
	if e := w.next(); e.XMLName.Local != "success" {
		t.Fatalf("login %s: %s", user, e)
	}
	if f := w.open(ts.cfg.Domain); !strings.Contains(f.Inner, "urn:ietf:params:xml:ns:xmpp-bind") {
		t.Fatalf("no bind after authentication: %s", f.Inner)
	}
	w.send("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>")
	e := w.next()
	if e.XMLName.Local != "iq" || e.XMLName.Space != "jabber:client" || e.attr("type") != "result" {
		t.Fatalf("bind: %s", e)
	}
	var b struct {
		JID string `xml:"bind>jid"`
	}
	xml.Unmarshal([]byte("<iq>"+e.Inner+"</iq>"), &b)
	w.jid = b.JID
	return w
}

// TestWebSocketSession: a client over wss logs in with SASL PLAIN, binds,
// and exchanges messages and presence with a TCP client through the same
// router.
func TestWebSocketSession(t *testing.T) {
	ts := startWebServer(t, nil)
	ts.addUser(t, "alice", "secret-a")
	ts.addUser(t, "bob", "secret-b")
	a := wsLogin(t, ts, "alice", "secret-a", "web")
	if a.jid != "alice@"+ts.cfg.Domain+"/web" {
		t.Fatalf("bound %q", a.jid)
	}
	b := login(t, ts, "bob", "secret-b", "tcp")
	if n := ts.Sessions(); n != 2 {
		t.Fatalf("sessions: %d, want 2", n)
	}

	a.send("<message xmlns='jabber:client' to='" + b.jid + "' type='chat' id='m1'><body>hi from the web</body></message>")
	m := b.expect("alice's message", func(e *element) bool { return e.XMLName.Local == "message" })
	if m.attr("from") != a.jid || !strings.Contains(m.Inner, "hi from the web") {
		t.Fatalf("bob got %s", m)
	}
	b.send("<message to='" + a.jid + "' type='chat' id='m2'><body>hi from tcp</body></message>")
	m = a.expect("bob's message", func(e *element) bool { return e.XMLName.Local == "message" })
	if m.XMLName.Space != "jabber:client" || m.attr("from") != b.jid || !strings.Contains(m.Inner, "hi from tcp") {
		t.Fatalf("alice got %s", m)
	}

	a.send("<presence xmlns='jabber:client' to='" + b.jid + "'/>")
	p := b.expect("alice's presence", func(e *element) bool { return e.XMLName.Local == "presence" })
	if p.attr("from") != a.jid {
		t.Fatalf("bob got %s", p)
	}
	b.send("<presence to='" + a.jid + "'/>")
	p = a.expect("bob's presence", func(e *element) bool { return e.XMLName.Local == "presence" })
	if p.attr("from") != b.jid {
		t.Fatalf("alice got %s", p)
	}

	// <close/> ends the stream with <close/> (RFC 7395 §3.6).
	a.send("<close xmlns='" + nsFraming + "'/>")
	if c := a.next(); c.XMLName.Local != "close" {
		t.Fatalf("expected <close/>, got %s", c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ts.Sessions() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions after close: %d, want 1", ts.Sessions())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebSocketNoSubprotocol: without the xmpp subprotocol the connection
// is closed with 1002 (RFC 7395 §3.1).
func TestWebSocketNoSubprotocol(t *testing.T) {
	ts := startWebServer(t, nil)
	c, _, err := dialWS(t, ts, &websocket.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err = c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusProtocolError {
		t.Fatalf("want close 1002, got %v", err)
	}
}

// TestWebSocketOrigin: a foreign Origin gets 403; the page's own origin
// and http.origins are allowed.
func TestWebSocketOrigin(t *testing.T) {
	ts := startWebServer(t, func(c *server.Config) { c.HTTP.Origins = []string{"https://console.example.org"} })
	for origin, ok := range map[string]bool{
		"https://evil.example.com":            false,
		"https://console.example.org":         true,
		"https://" + ts.WebAddr().String():    true,
		"https://console.example.org.evil.io": false,
	} {
		h := http.Header{}
		h.Set("Origin", origin)
		c, resp, err := dialWS(t, ts, &websocket.DialOptions{Subprotocols: []string{"xmpp"}, HTTPHeader: h})
		if ok {
			if err != nil {
				t.Fatalf("origin %s refused: %v", origin, err)
			}
			c.CloseNow()
			continue
		}
		if err == nil {
			c.CloseNow()
			t.Fatalf("origin %s accepted", origin)
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %s: want 403, got %v %v", origin, resp, err)
		}
	}
}

// TestWebSocketBinaryFrame: a binary message ends the stream with a stream
// error and <close/>.
func TestWebSocketBinaryFrame(t *testing.T) {
	ts := startWebServer(t, nil)
	w := newWS(t, ts)
	w.open(ts.cfg.Domain)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageBinary, []byte("<presence/>")); err != nil {
		t.Fatal(err)
	}
	w.expectStreamError("bad-format")
}

// TestWebSocketOversized: a message over limits.stanza_bytes gets
// <policy-violation/>; the other session is fine.
func TestWebSocketOversized(t *testing.T) {
	ts := startWebServer(t, nil)
	ts.addUser(t, "alice", "secret-a")
	ts.addUser(t, "bob", "secret-b")
	a := wsLogin(t, ts, "alice", "secret-a", "web")
	b := login(t, ts, "bob", "secret-b", "tcp")
	big := strings.Repeat("x", ts.cfg.Limits.StanzaBytes+1)
	a.send("<message xmlns='jabber:client' to='" + b.jid + "'><body>" + big + "</body></message>")
	a.expectStreamError("policy-violation")
	b.expectNothing()
}

// TestWebSocketOpenErrors: a wrong domain or namespace in <open/> gets the
// stream errors of a TCP header.
func TestWebSocketOpenErrors(t *testing.T) {
	ts := startWebServer(t, nil)
	w := newWS(t, ts)
	w.send("<open xmlns='" + nsFraming + "' to='elsewhere.example' version='1.0'/>")
	if o := w.next(); o.XMLName.Local != "open" {
		t.Fatalf("expected <open/> before the stream error, got %s", o)
	}
	w.expectStreamError("host-unknown")
	w = newWS(t, ts)
	w.send("<message xmlns='jabber:client'/>")
	w.next() // <open/>
	w.expectStreamError("invalid-namespace")
}

// TestWebPlainHTTPToHTTPS: plain HTTP on the HTTPS port gets Go's 400,
// and the server keeps serving.
func TestWebPlainHTTPToHTTPS(t *testing.T) {
	ts := startWebServer(t, nil)
	nc, err := net.DialTimeout("tcp", ts.WebAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.0 400") {
		t.Fatalf("want a 400, got %q %v", line, err)
	}
	resp, err := ts.httpClient().Get("https://" + ts.WebAddr().String() + "/.well-known/host-meta")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after plain HTTP: %s", resp.Status)
	}
}

// TestWebSlowHeaders: a client that never finishes its headers is cut
// after http.header_timeout.
func TestWebSlowHeaders(t *testing.T) {
	ts := startWebServer(t, func(c *server.Config) { c.HTTP.HeaderTimeout = server.Duration(time.Second) })
	nc, err := tls.Dial("tcp", ts.WebAddr().String(), ts.tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n")
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(nc)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not cut the slow client: %v", err)
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Fatalf("cut after %s, want about 1s", took)
	}
}

// TestWebHostMeta: XEP-0156 host-meta, XRD and JSON, points at the
// WebSocket endpoint of the host asked for; wss on HTTPS, ws on HTTP.
func TestWebHostMeta(t *testing.T) {
	ts := startWebServer(t, func(c *server.Config) { c.Listen.HTTP = "127.0.0.1:0" })
	hc := ts.httpClient()
	get := func(url string) (*http.Response, []byte) {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", url, resp.Status)
		}
		return resp, b
	}
	for _, base := range []struct{ url, ws string }{
		{"https://" + ts.WebAddr().String(), "wss://" + ts.WebAddr().String() + "/xmpp-websocket"},
		{"http://" + ts.WebHTTPAddr().String(), "ws://" + ts.WebHTTPAddr().String() + "/xmpp-websocket"},
	} {
		resp, b := get(base.url + "/.well-known/host-meta")
		var xrd struct {
			XMLName xml.Name `xml:"http://docs.oasis-open.org/ns/xri/xrd-1.0 XRD"`
			Links   []struct {
				Rel  string `xml:"rel,attr"`
				Href string `xml:"href,attr"`
			} `xml:"Link"`
		}
		if err := xml.Unmarshal(b, &xrd); err != nil || len(xrd.Links) != 1 {
			t.Fatalf("XRD %s: %v", b, err)
		}
		if l := xrd.Links[0]; l.Rel != "urn:xmpp:alt-connections:websocket" || l.Href != base.ws {
			t.Fatalf("XRD link %+v, want %s", l, base.ws)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/xrd+xml" {
			t.Fatalf("XRD content type %q", ct)
		}
		resp, b = get(base.url + "/.well-known/host-meta.json")
		var jrd struct {
			Links []struct{ Rel, Href string } `json:"links"`
		}
		if err := json.Unmarshal(b, &jrd); err != nil || len(jrd.Links) != 1 {
			t.Fatalf("JRD %s: %v", b, err)
		}
		if l := jrd.Links[0]; l.Rel != "urn:xmpp:alt-connections:websocket" || l.Href != base.ws {
			t.Fatalf("JRD link %+v, want %s", l, base.ws)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("JRD content type %q", ct)
		}
	}
}

// TestWebSecurityHeaders: every response carries the CSP, nosniff and
// no-referrer, errors included.
func TestWebSecurityHeaders(t *testing.T) {
	ts := startWebServer(t, nil)
	hc := ts.httpClient()
	base := "https://" + ts.WebAddr().String()
	for _, path := range []string{"/", "/.well-known/host-meta", "/no-such-file", "/xmpp-websocket"} {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if got := h.Get("Content-Security-Policy"); got != "default-src 'self'; connect-src 'self' wss: ws:; frame-ancestors 'none'" {
			t.Fatalf("%s: CSP %q", path, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("%s: headers %v", path, h)
		}
	}
}

// TestWebSocketIdle500: 500 idle unauthenticated WebSocket streams cost
// at most a few goroutines each, do not disturb a working session, and
// are closed by limits.auth_timeout.
func TestWebSocketIdle500(t *testing.T) {
	const n = 500
	ts := startWebServer(t, func(c *server.Config) {
		c.Limits.Connections = 2 * n
		c.Limits.ConnectionsPerIP = 2 * n
		c.Limits.AuthTimeout = server.Duration(3 * time.Second)
	})
	ts.addUser(t, "alice", "secret-a")
	ts.addUser(t, "bob", "secret-b")
	base := runtime.NumGoroutine()
	idle := make([]*wsClient, n)
	for i := range idle {
		idle[i] = newWS(t, ts)
		idle[i].open(ts.cfg.Domain)
	}
	opened := time.Now()
	g := runtime.NumGoroutine() - base
	t.Logf("%d goroutines (server and test clients) for %d idle WebSocket streams", g, n)
	if g > 4*n {
		t.Fatalf("%d goroutines for %d idle WebSocket streams", g, n)
	}
	// A working session meanwhile (its login is within the timeout).
	a := wsLogin(t, ts, "alice", "secret-a", "web")
	b := login(t, ts, "bob", "secret-b", "tcp")
	for i := 0; i < 100; i++ {
		a.send("<message xmlns='jabber:client' to='" + b.jid + "' type='chat'><body>m</body></message>")
	}
	for i := 0; i < 100; i++ {
		b.expect("a message", func(e *element) bool { return e.XMLName.Local == "message" })
	}
	// Every idle stream gets <connection-timeout/> or is closed.
	errs := make(chan error, n)
	for _, w := range idle {
		go func() {
			for {
				e, err := w.tryNext()
				if errors.Is(err, context.DeadlineExceeded) {
					errs <- errors.New("an idle stream is still open after 10s")
					return
				}
				if err != nil {
					errs <- nil // closed
					return
				}
				if e.XMLName.Local == "error" && !strings.Contains(e.Inner, "connection-timeout") {
					errs <- errors.New("unexpected stream error " + e.Inner)
					return
				}
			}
		}()
	}
	for range idle {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(opened); took > 10*time.Second {
		t.Fatalf("idle streams closed after %s (auth_timeout 3s)", took)
	}
	// The working session is still fine.
	b.send("<message to='" + a.jid + "' type='chat'><body>still here</body></message>")
	a.expect("bob's message", func(e *element) bool { return e.XMLName.Local == "message" })
}

// /metrics on the web listener carries the gauges read from the running
// server (sessions by transport), not only the counters.
func TestWebMetricsHaveSessions(t *testing.T) {
	ts := startWebServer(t, nil)
	ts.addUser(t, "alice", "pw")
	login(t, ts, "alice", "pw", "a")
	resp, err := ts.httpClient().Get("https://" + ts.WebAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `roost_sessions{transport="c2s"} 1`) {
		t.Fatalf("status %d, /metrics without the c2s session:\n%s", resp.StatusCode, body)
	}
}
