package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"roost/server"
)

// logBuf collects a server's log lines so a test can assert on them.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if os.Getenv("ROOST_TEST_LOG") != "" {
		os.Stderr.Write(p)
	}
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count is how many logged lines contain s.
func (b *logBuf) count(s string) int {
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// waitFor waits until a logged line contains s, failing after 10 s.
func (b *logBuf) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.count(s) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within 10s; log:\n%s", s, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noPanic fails the test when the server logged a recovered panic.
func (b *logBuf) noPanic(t *testing.T) {
	t.Helper()
	if b.count("panic") > 0 || b.count("internal error") > 0 {
		t.Fatalf("the server logged a panic:\n%s", b.String())
	}
}

// startServerLog is startServer with the server's log (at debug level)
// captured in a buffer.
func startServerLog(t *testing.T, mod func(*server.Config)) (*testServer, *logBuf) {
	t.Helper()
	cfg := testConfig(t, mod)
	lb := &logBuf{}
	ts := runServer(t, cfg, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return ts, lb
}

// TestDirectTLSHandshakeFailures: a failed handshake on the XEP-0368 port
// (a health check that connects and closes, a TLS 1.1-only client, a
// client that rejects the certificate) ends the connection quietly, with
// no panic, and the next client is served (issue 12, item 7).
func TestDirectTLSHandshakeFailures(t *testing.T) {
	ts, lb := startServerLog(t, nil)
	ts.addUser(t, "alice", "wonderland")
	cases := []struct {
		name string
		run  func(t *testing.T, conn net.Conn)
	}{
		{"connect and close", func(t *testing.T, conn net.Conn) {}},
		{"TLS 1.1 only", func(t *testing.T, conn net.Conn) {
			tc := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true})
			if err := tc.Handshake(); err == nil {
				t.Fatal("a TLS 1.1 handshake succeeded")
			}
		}},
		{"certificate rejected", func(t *testing.T, conn net.Conn) {
			tc := tls.Client(conn, &tls.Config{ServerName: "localhost"}) // system roots: our self-signed cert is rejected
			if err := tc.Handshake(); err == nil {
				t.Fatal("the self-signed certificate was accepted")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := lb.count("c2s: TLS handshake failed")
			conn, err := net.DialTimeout("tcp", ts.direct, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			tc.run(t, conn)
			conn.Close()
			deadline := time.Now().Add(10 * time.Second)
			for lb.count("c2s: TLS handshake failed") == before {
				if time.Now().After(deadline) {
					t.Fatalf("the failed handshake was not logged; log:\n%s", lb.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			// The server serves the next client over the same port.
			c, err := goClient(ts, "alice", "wonderland", "SCRAM-SHA-256", true)
			if err != nil {
				t.Fatalf("next client: %v", err)
			}
			c.Close()
			lb.noPanic(t)
		})
	}
	// Shutdown waits for every connection's goroutine: nothing can still
	// be logging after it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	lb.noPanic(t)
}

// expectPlainClose reads until the stream closes and fails on a stream
// error: the server answers a client's stream error with its closing tag
// only (RFC 6120 §4.9.1.1).
func (c *rawClient) expectPlainClose() {
	c.t.Helper()
	for {
		e, err := c.tryNext()
		if err == errStreamClosed {
			return
		}
		if err != nil {
			c.t.Fatalf("expected </stream:stream>, got %v", err)
		}
		if e.XMLName.Local == "error" && e.XMLName.Space == "http://etherx.jabber.org/streams" {
			c.t.Fatalf("a client's stream error was answered with a stream error: %s", e.Inner)
		}
	}
}

// TestClientStreamError: a client that ends its stream with a stream
// error gets a plain close, before and after binding (issue 12).
func TestClientStreamError(t *testing.T) {
	ts, lb := startServerLog(t, nil)
	ts.addUser(t, "alice", "wonderland")
	const streamErr = "<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
	t.Run("before auth", func(t *testing.T) {
		c := dialRaw(t, ts.c2s)
		c.open(ts.cfg.Domain)
		c.send(streamErr)
		c.expectPlainClose()
	})
	t.Run("after bind", func(t *testing.T) {
		c := login(t, ts, "alice", "wonderland", "r")
		c.send(streamErr)
		c.expectPlainClose()
	})
	if n := lb.count("the client ended the stream with a stream error"); n != 2 {
		t.Errorf("%d debug lines for the client's stream error, want 2; log:\n%s", n, lb.String())
	}
}

// scramLogin makes one SCRAM-SHA-256 login attempt over STARTTLS from the
// local address laddr (nil: any) and returns "success" or the SASL
// failure's condition, with its text. It does not use testing.T, so that
// many can run in parallel.
func scramLogin(ts *testServer, laddr net.Addr, user, password string) (cond, text string, err error) {
	return scramSession(ts, laddr, user, password, nil)
}

// scramSession is scramLogin that, after a success, restarts the stream
// and runs after on it.
func scramSession(ts *testServer, laddr net.Addr, user, password string, after func(send func(string), next func() (*element, error)) error) (cond, text string, err error) {
	d := net.Dialer{LocalAddr: laddr, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", ts.c2s)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	header := "<?xml version='1.0'?><stream:stream to='" + ts.cfg.Domain + "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	var dec *xml.Decoder
	// next returns the next top-level element after the stream header.
	next := func() (*element, error) {
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, err
			}
			if se, ok := tok.(xml.StartElement); ok {
				if se.Name.Local == "stream" {
					continue
				}
				var e element
				if err := dec.DecodeElement(&e, &se); err != nil {
					return nil, err
				}
				return &e, nil
			}
		}
	}
	open := func() error {
		dec = xml.NewDecoder(conn)
		if _, err := io.WriteString(conn, header); err != nil {
			return err
		}
		f, err := next()
		if err != nil {
			return err
		}
		if f.XMLName.Local != "features" {
			return fmt.Errorf("expected features, got %s", f)
		}
		return nil
	}
	if err := open(); err != nil {
		return "", "", err
	}
	io.WriteString(conn, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if e, err := next(); err != nil || e.XMLName.Local != "proceed" {
		return "", "", fmt.Errorf("starttls: %v %v", e, err)
	}
	tc := tls.Client(conn, ts.tlsConf)
	if err := tc.Handshake(); err != nil {
		return "", "", err
	}
	conn = tc
	if err := open(); err != nil {
		return "", "", err
	}
	client, err := scram.SHA256.NewClient(user, password, "")
	if err != nil {
		return "", "", err
	}
	conv := client.NewConversation()
	msg, _ := conv.Step("")
	io.WriteString(conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"+base64.StdEncoding.EncodeToString([]byte(msg))+"</auth>")
	for {
		e, err := next()
		if err != nil {
			return "", "", err
		}
		switch e.XMLName.Local {
		case "challenge":
			data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Inner))
			if err != nil {
				return "", "", err
			}
			msg, err := conv.Step(string(data))
			if err != nil {
				return "", "", err
			}
			io.WriteString(conn, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"+base64.StdEncoding.EncodeToString([]byte(msg))+"</response>")
		case "success":
			if after != nil {
				if err := open(); err != nil {
					return "", "", err
				}
				return "success", "", after(func(x string) { io.WriteString(conn, x) }, next)
			}
			return "success", "", nil
		case "failure":
			var f struct {
				Conds []struct{ XMLName xml.Name } `xml:",any"`
				Text  string                       `xml:"text"`
			}
			xml.Unmarshal([]byte("<f>"+e.Inner+"</f>"), &f)
			for _, c := range f.Conds {
				if c.XMLName.Local != "text" {
					return c.XMLName.Local, f.Text, nil
				}
			}
			return "", "", fmt.Errorf("failure without a condition: %s", e)
		default:
			return "", "", fmt.Errorf("unexpected %s", e)
		}
	}
}

// TestParallelBruteForce: 50 parallel wrong-password SCRAM attempts from
// one address reach the password check at most as often as the address's
// budget allows; the rest are refused at once with temporary-auth-failure
// (RFC 6120 §6.5.12). Once an account's budget is spent, the addresses
// that failed for it are refused, and its owner still logs in from
// another address (issue 12, item 5).
func TestParallelBruteForce(t *testing.T) {
	const perAddr, perAccount = 10, 3
	ts, lb := startServerLog(t, func(c *server.Config) {
		c.Limits.AuthFailuresPerMinute = perAddr
		c.Limits.AuthFailuresPerAccount = perAccount
	})
	ts.addUser(t, "alice", "wonderland")
	attacker := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	const n = 50
	type result struct{ cond, text string }
	results := make(chan result, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each attempt names another account, so only the address's
			// budget can hold them back.
			cond, text, err := scramLogin(ts, attacker, fmt.Sprintf("user%d", i), "guess")
			if err != nil {
				errs <- err
				return
			}
			results <- result{cond, text}
		}()
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatalf("attempt: %v", err)
	}
	checked, refused := 0, 0
	for r := range results {
		switch r.cond {
		case "not-authorized":
			checked++
		case "temporary-auth-failure":
			refused++
			if !strings.Contains(r.text, "try again in ") {
				t.Errorf("refusal without a retry time: %q", r.text)
			}
		default:
			t.Errorf("attempt ended with %q", r.cond)
		}
	}
	// A token refills every 6 s at 10 a minute: the test's few seconds
	// may add one or two.
	if checked > perAddr+2 || checked == 0 {
		t.Fatalf("%d of %d parallel attempts reached the password check, budget %d", checked, n, perAddr)
	}
	if checked+refused != n {
		t.Fatalf("%d checked + %d refused != %d", checked, refused, n)
	}
	if got := lb.count("c2s: authentication failed"); got != checked {
		t.Fatalf("%d password checks logged, %d answered", got, checked)
	}
	// The right password from the attacking address is refused too: the
	// address's budget is spent.
	if cond, _, err := scramLogin(ts, attacker, "alice", "wonderland"); err != nil || cond != "temporary-auth-failure" {
		t.Fatalf("right password from the attacker's address: %q %v", cond, err)
	}

	// A second attacker spends alice's account budget; then it is refused
	// for alice although its address budget is not spent.
	second := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}
	for i := 0; i < perAccount; i++ {
		if cond, _, err := scramLogin(ts, second, "alice", "guess"); err != nil || cond != "not-authorized" {
			t.Fatalf("guess %d for alice: %q %v", i, cond, err)
		}
	}
	// Each failed login's log line names the prepared account (issue 17).
	if got := lb.count("account=alice@" + ts.cfg.Domain); got < perAccount {
		t.Fatalf("%d failed logins to alice logged with the account, want at least %d", got, perAccount)
	}
	if cond, text, err := scramLogin(ts, second, "alice", "wonderland"); err != nil || cond != "temporary-auth-failure" || !strings.Contains(text, "this account") {
		t.Fatalf("a failed address after the account's budget: %q %q %v", cond, text, err)
	}
	if cond, _, err := scramLogin(ts, second, "user0", "guess"); err != nil || cond != "not-authorized" {
		t.Fatalf("the second attacker and another account: %q %v", cond, err)
	}
	// The owner, from another address, gets in.
	owner := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	if cond, text, err := scramLogin(ts, owner, "alice", "wonderland"); err != nil || cond != "success" {
		t.Fatalf("the owner from another address: %q %q %v", cond, text, err)
	}
	lb.noPanic(t)
}

// TestSessionsPerUserAtomic: logins that bind at the same moment never
// leave an account with more than limits.sessions_per_user sessions; the
// others get resource-constraint (RFC 6120 §7.6.2.1).
func TestSessionsPerUserAtomic(t *testing.T) {
	const limit, n = 2, 16
	ts, _ := startServerLog(t, func(c *server.Config) {
		c.Limits.SessionsPerUser = limit
		c.Limits.AuthFailuresPerMinute = 100
	})
	ts.addUser(t, "alice", "wonderland")
	var wg sync.WaitGroup
	ready := make(chan struct{}) // every login is ready to bind
	var arrived sync.WaitGroup
	arrived.Add(n)
	outcomes := make(chan string, n)
	keep := make(chan struct{}) // bound sessions stay open until the count
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			defer once.Do(arrived.Done) // on every path, so the test never hangs
			_, _, err := scramSession(ts, nil, "alice", "wonderland", func(send func(string), next func() (*element, error)) error {
				once.Do(arrived.Done)
				<-ready
				send(fmt.Sprintf("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r%d</resource></bind></iq>", i))
				e, err := next()
				if err != nil {
					return err
				}
				switch {
				case e.attr("type") == "result":
					outcomes <- "bound"
					<-keep
				case strings.Contains(e.Inner, "resource-constraint"):
					outcomes <- "refused"
				default:
					return fmt.Errorf("bind answered %s", e)
				}
				return nil
			})
			if err != nil {
				outcomes <- "error: " + err.Error()
			}
		}()
	}
	arrived.Wait()
	close(ready)
	bound := 0
	for i := 0; i < n; i++ {
		switch o := <-outcomes; o {
		case "bound":
			bound++
		case "refused":
		default:
			t.Error(o)
		}
	}
	sessions := ts.Sessions()
	close(keep)
	wg.Wait()
	if bound != limit || sessions != limit {
		t.Fatalf("%d binds succeeded, %d sessions bound; limit %d", bound, sessions, limit)
	}
}

// TestPreauthStanzaLimit: before authentication an element may be at most
// limits.preauth_stanza_bytes; a 20 KB unfinished one ends the stream with
// policy-violation. After authentication limits.stanza_bytes applies.
func TestPreauthStanzaLimit(t *testing.T) {
	ts, lb := startServerLog(t, func(c *server.Config) {
		c.Limits.PreauthStanzaBytes = 4096
		c.Limits.StanzaBytes = 64 << 10
	})
	ts.addUser(t, "alice", "wonderland")
	ts.addUser(t, "bob", "pw")
	c := dialRaw(t, ts.c2s)
	c.open(ts.cfg.Domain)
	c.send("<message to='alice@localhost'><body>" + strings.Repeat("x", 20000)) // never finished
	c.expectStreamError("policy-violation")

	// The same size is fine once bound.
	alice := login(t, ts, "alice", "wonderland", "a")
	bob := login(t, ts, "bob", "pw", "b")
	bob.send("<message to='alice@localhost/a' type='chat'><body>" + strings.Repeat("y", 20000) + "</body></message>")
	e := alice.expect("the large message", func(e *element) bool { return e.XMLName.Local == "message" })
	if !strings.Contains(e.Inner, strings.Repeat("y", 20000)) {
		t.Fatalf("large message lost: %d bytes", len(e.Inner))
	}
	lb.noPanic(t)
}

// TestGlobalConnectionCap: past limits.connections a new connection is
// refused with policy-violation, whatever its address; once one closes,
// the next is admitted.
func TestGlobalConnectionCap(t *testing.T) {
	const limit = 3
	ts, lb := startServerLog(t, func(c *server.Config) { c.Limits.Connections = limit })
	open := make([]*rawClient, 0, limit)
	for i := 0; i < limit; i++ {
		c := dialRaw(t, ts.c2s)
		c.open(ts.cfg.Domain) // answered: the server has admitted it
		open = append(open, c)
	}
	// From another address too: the cap is global.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", ts.c2s)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	refused := &rawClient{t: t, conn: conn, dec: xml.NewDecoder(conn)}
	refused.readHeader()
	refused.expectStreamError("policy-violation")
	lb.waitFor(t, "refusing connection: the server has too many connections")

	open[0].conn.Close()
	// The server notices the close asynchronously: retry until admitted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialRaw(t, ts.c2s)
		c.send("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
		c.readHeader()
		e := c.next()
		if e.XMLName.Local == "features" {
			break
		}
		c.conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no connection admitted after one closed: %s", e)
		}
	}
}

// TestPartialStanzaBudget: the read buffers that unfinished stanzas hold
// are charged to one budget for all client connections
// (limits.partial_stanza_bytes); a connection that would pass it ends with
// resource-constraint, the budget is never exceeded, and it is all given
// back when the connections end.
func TestPartialStanzaBudget(t *testing.T) {
	const budget = 20000
	ts, lb := startServerLog(t, func(c *server.Config) {
		c.Limits.StanzaBytes = 10000
		c.Limits.PreauthStanzaBytes = 10000
		c.Limits.PartialStanzaBytes = budget
	})
	ts.addUser(t, "alice", "wonderland")
	const n = 8 // each holds about 10 KB: no more than two fit
	conds := make(chan string, n)
	var clients []*rawClient
	for i := 0; i < n; i++ {
		c := dialRaw(t, ts.c2s)
		c.open(ts.cfg.Domain)
		c.send("<message to='alice@localhost'><body>" + strings.Repeat("x", 9000)) // unfinished
		clients = append(clients, c)
		go func() {
			for {
				e, err := c.tryNext()
				if err != nil {
					conds <- "closed"
					return
				}
				if e.XMLName.Local == "error" {
					conds <- e.Inner
					return
				}
			}
		}()
	}
	e := ""
	select {
	case e = <-conds:
	case <-time.After(10 * time.Second):
		t.Fatalf("no connection was stopped by the budget; %d bytes used", ts.PartialStanzaBytes())
	}
	if !strings.Contains(e, "<resource-constraint") {
		t.Fatalf("want resource-constraint, got %s", e)
	}
	if used := ts.PartialStanzaBytes(); used > budget {
		t.Fatalf("%d bytes charged, budget %d", used, budget)
	}
	for _, c := range clients {
		c.conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for ts.PartialStanzaBytes() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still charged after every connection closed", ts.PartialStanzaBytes())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The server still serves.
	login(t, ts, "alice", "wonderland", "r")
	lb.noPanic(t)
}
