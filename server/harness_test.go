package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"roost/server"
)

// testServer is a real Roost on loopback with a real bbolt file.
type testServer struct {
	*server.Server
	cfg     *server.Config
	c2s     string // STARTTLS address
	direct  string // direct TLS address
	tlsConf *tls.Config
}

// startServer runs a server with the embedded defaults changed by mod.
func startServer(t testing.TB, mod func(*server.Config)) *testServer {
	t.Helper()
	cfg := testConfig(t, mod)
	level := slog.LevelWarn
	if os.Getenv("ROOST_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return runServer(t, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
}

// testConfig is the embedded defaults with a temporary data_dir and
// ephemeral loopback listeners, changed by mod.
func testConfig(t testing.TB, mod func(*server.Config)) *server.Config {
	t.Helper()
	defaults, err := os.ReadFile("../config.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(defaults, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Listen.C2S = "127.0.0.1:0"
	cfg.Listen.C2STLS = "127.0.0.1:0"
	cfg.Listen.DTLS = "" // tests that want a listener beyond c2s set its address to 127.0.0.1:0
	cfg.Listen.HTTPS = ""
	cfg.Listen.MDNS = false
	if mod != nil {
		mod(cfg)
	}
	return cfg
}

// runServer starts a server for cfg logging to log, stopped when the
// test ends.
func runServer(t testing.TB, cfg *server.Config, log *slog.Logger) *testServer {
	t.Helper()
	srv := server.New(cfg, log)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	pem, err := os.ReadFile(srv.CertPath())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ts := &testServer{Server: srv, cfg: cfg, tlsConf: &tls.Config{RootCAs: pool, ServerName: cfg.Domain}}
	addrs := srv.Addrs()
	ts.c2s, ts.direct = addrs[0].String(), addrs[1].String()
	return ts
}

func (ts *testServer) addUser(t *testing.T, local, password string) {
	t.Helper()
	if err := ts.Store().AddUser(local, password); err != nil {
		t.Fatal(err)
	}
}

// rawClient is a hand-driven XMPP client that reads with encoding/xml,
// independent of Roost's scanner, for checking exact server behaviour.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	dec  *xml.Decoder
	jid  string
}

// element is any top-level element the server sent.
type element struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (e *element) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (e *element) String() string {
	return fmt.Sprintf("<%s %v>%s", e.XMLName.Local, e.Attrs, e.Inner)
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn}
	c.dec = xml.NewDecoder(conn)
	return c
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// open sends a stream header and reads the server's header and features.
func (c *rawClient) open(domain string) *element {
	c.t.Helper()
	c.send("<?xml version='1.0'?><stream:stream to='" + domain + "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
	c.readHeader()
	f := c.next()
	if f.XMLName.Local != "features" {
		c.t.Fatalf("expected stream features, got %s", f)
	}
	return f
}

// readHeader consumes tokens up to the server's stream open tag.
func (c *rawClient) readHeader() {
	c.t.Helper()
	for {
		tok, err := c.token()
		if err != nil {
			c.t.Fatalf("reading stream header: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				c.t.Fatalf("expected stream header, got <%s>", se.Name.Local)
			}
			return
		}
	}
}

func (c *rawClient) token() (xml.Token, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c.dec.Token()
}

// next reads the next top-level element; it fails the test on a stream
// close or read error.
func (c *rawClient) next() *element {
	c.t.Helper()
	e, err := c.tryNext()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return e
}

var errStreamClosed = errors.New("stream closed")

func (c *rawClient) tryNext() (*element, error) {
	for {
		tok, err := c.token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			var e element
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if err := c.dec.DecodeElement(&e, &tok); err != nil {
				return nil, err
			}
			return &e, nil
		case xml.EndElement:
			return nil, errStreamClosed
		}
	}
}

// expectStreamError reads until a stream error and checks its condition,
// then expects the stream to close.
func (c *rawClient) expectStreamError(cond string) {
	c.t.Helper()
	for {
		e, err := c.tryNext()
		if err != nil {
			c.t.Fatalf("expected stream error %s, got %v", cond, err)
		}
		if e.XMLName.Local != "error" || e.XMLName.Space != "http://etherx.jabber.org/streams" {
			continue
		}
		if !strings.Contains(e.Inner, "<"+cond) {
			c.t.Fatalf("expected stream error %s, got %s", cond, e.Inner)
		}
		_, err = c.tryNext()
		if !errors.Is(err, errStreamClosed) && !errors.Is(err, io.EOF) {
			c.t.Fatalf("after the stream error the stream should close, got %v", err)
		}
		return
	}
}

// starttls negotiates TLS after features offering it.
func (c *rawClient) starttls(ts *testServer) {
	c.t.Helper()
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if e := c.next(); e.XMLName.Local != "proceed" {
		c.t.Fatalf("expected proceed, got %s", e)
	}
	tc := tls.Client(c.conn, ts.tlsConf)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.dec = xml.NewDecoder(tc)
}

// login connects with STARTTLS and SASL PLAIN and binds resource.
func login(t *testing.T, ts *testServer, user, password, resource string) *rawClient {
	t.Helper()
	c := dialRaw(t, ts.c2s)
	c.open(ts.cfg.Domain)
	c.starttls(ts)
	c.open(ts.cfg.Domain)
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>")
	if e := c.next(); e.XMLName.Local != "success" {
		t.Fatalf("login %s: %s", user, e)
	}
	c.open(ts.cfg.Domain)
	res := ""
	if resource != "" {
		res = "<resource>" + resource + "</resource>"
	}
	c.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>")
	e := c.next()
	if e.attr("type") != "result" {
		t.Fatalf("bind: %s", e)
	}
	var b struct {
		JID string `xml:"bind>jid"`
	}
	xml.Unmarshal([]byte("<iq>"+e.Inner+"</iq>"), &b)
	c.jid = b.JID
	return c
}

// expect reads elements until one satisfies match, failing after 10 s.
func (c *rawClient) expect(what string, match func(*element) bool) *element {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		e, err := c.tryNext()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(e) {
			return e
		}
	}
	c.t.Fatalf("no %s within 10s", what)
	return nil
}

// expectNothing checks that nothing is waiting for the client: it pings
// the server and requires the pong to be the next element. The server
// handles a client's stanzas in order, so anything routed to this client
// before the ping would arrive before the pong.
func (c *rawClient) expectNothing() {
	c.t.Helper()
	c.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	e := c.next()
	if e.XMLName.Local != "iq" || e.attr("id") != "sync" {
		c.t.Fatalf("expected nothing before the pong, got %s", e)
	}
}

// drain discards everything queued for the client so far (see expectNothing).
func (c *rawClient) drain() {
	c.t.Helper()
	c.send("<iq type='get' id='drain'><ping xmlns='urn:xmpp:ping'/></iq>")
	c.expect("the drain pong", func(e *element) bool { return e.XMLName.Local == "iq" && e.attr("id") == "drain" })
}
