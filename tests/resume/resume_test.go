// Package resume measures issue 14's "Where we intend to be" figure:
// resumption of many XEP-0198 sessions at once after a simulated Wi-Fi
// drop. N raw Go clients (ROOST_RESUME_SESSIONS, default 50; the recorded
// figure uses 1000) log in to an in-process Roost through one
// testutil.Blackhole with STARTTLS, SASL SCRAM-SHA-256, bind, <enable
// resume='true'/> and initial presence, receive and acknowledge one
// message each, and then the link dies without a FIN (Blackhole.Cut).
// A sender connected directly sends each of them two messages. When the
// link comes back, all N reconnect at the same moment (new TCP, TLS and
// SASL, then <resume previd=” h=”/>, XEP-0198 §5) and the test records
// the wall time from the first reconnect to the last <resumed/>, and to
// the last retransmitted message. Correctness is asserted for every
// client (exactly the two messages, once each, in order); the times are
// only logged, since the machines the tests run on are shared.
package resume

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"github.com/xdg-go/scram"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"roost/server"
	"roost/tests/testutil"
)

// The XEP-0198 and stream namespaces the clients look for.
const (
	nsSM     = "urn:xmpp:sm:3"
	nsClient = "jabber:client"
)

// loginWorkers bounds the logins in flight while the sessions are set
// up: TLS handshakes and the clients' PBKDF2 (SCRAM) are CPU-bound, and
// a thousand at once would only make each slower. A client keeps its
// salted password for the resumption, as RFC 5802 §5.1 allows. The reconnection phase is not bounded: all clients
// come back at once, which is the figure measured.
const loginWorkers = 16

// sessions is N: ROOST_RESUME_SESSIONS, or 50 so that the ordinary test
// run stays short.
func sessions(t *testing.T) int {
	t.Helper()
	v := os.Getenv("ROOST_RESUME_SESSIONS")
	if v == "" {
		return 50
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("ROOST_RESUME_SESSIONS=%q: want a positive number", v)
	}
	return n
}

// env is what every client needs to reach the server.
type env struct {
	domain string
	tls    *tls.Config
}

// startRoost runs an in-process server sized for n clients from
// 127.0.0.1, each of them holding two connections at the moment of
// resumption (the dead one the server has not noticed yet, and the new
// one), plus the sender.
func startRoost(t *testing.T, n int) (*server.Server, env) {
	t.Helper()
	cfg := testutil.Config(t)
	cfg.Limits.ConnectionsPerIP = 2*n + 16
	cfg.Limits.Connections = 2*n + 16
	cfg.Limits.ResumeTimeout = server.Duration(60 * time.Second)
	// The liveness check must not act during the test: the server is to
	// learn of the drop from the resumptions, not from a ping timing out
	// while a thousand logins are still under way on a loaded machine.
	cfg.Limits.IdlePing = server.Duration(10 * time.Minute)
	srv := testutil.Start(t, cfg)
	pem, err := os.ReadFile(srv.CertPath())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", srv.CertPath())
	}
	return srv, env{domain: cfg.Domain, tls: &tls.Config{RootCAs: pool, ServerName: cfg.Domain}}
}

// addUsers creates u0 … u(n-1) and "sender", a few at a time (each
// account costs two PBKDF2 derivations).
func addUsers(t *testing.T, srv *server.Server, n int) {
	t.Helper()
	err := parallel(n+1, loginWorkers, func(i int) error {
		name := "sender"
		if i < n {
			name = user(i)
		}
		if err := srv.Store().AddUser(name, "pw"); err != nil {
			return fmt.Errorf("add user %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func user(i int) string { return "u" + strconv.Itoa(i) }

// parallel runs f(0) … f(n-1) with at most workers at a time and returns
// every error, joined.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, workers)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
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

func (e *element) is(space, local string) bool {
	return e.XMLName.Space == space && e.XMLName.Local == local
}

// stanza reports whether e is a stanza (RFC 6120 §8), which XEP-0198
// counts, rather than a nonza.
func (e *element) stanza() bool {
	return e.XMLName.Space == nsClient &&
		(e.XMLName.Local == "message" || e.XMLName.Local == "presence" || e.XMLName.Local == "iq")
}

func (e *element) String() string {
	return fmt.Sprintf("<%s xmlns='%s' %v>%s", e.XMLName.Local, e.XMLName.Space, e.Attrs, e.Inner)
}

var errStreamClosed = errors.New("the server closed the stream")

// client is one raw XMPP client: its own socket, read with encoding/xml
// (independent of Roost's scanner), every read bounded by deadline.
type client struct {
	env      env
	user     string
	conn     net.Conn
	dec      *xml.Decoder
	deadline time.Time

	sc     *scram.Client // kept from login to resumption (cached salted password)
	jid    string        // full JID after bind
	previd string        // the XEP-0198 resumption id
	in     uint32        // stanzas received since <enable/> (the client's h)
	out    uint32        // stanzas sent since <enable/>
}

func (c *client) errorf(format string, a ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{c.user}, a...)...)
}

func (c *client) send(s string) error {
	c.conn.SetWriteDeadline(c.deadline)
	if _, err := io.WriteString(c.conn, s); err != nil {
		return c.errorf("send: %w", err)
	}
	return nil
}

// next reads the next top-level element.
func (c *client) next() (*element, error) {
	c.conn.SetReadDeadline(c.deadline)
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, c.errorf("read: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			var e element
			if err := c.dec.DecodeElement(&e, &tok); err != nil {
				return nil, c.errorf("read: %w", err)
			}
			return &e, nil
		case xml.EndElement:
			return nil, c.errorf("%w", errStreamClosed)
		}
	}
}

// open sends a stream header and reads the server's header and features.
func (c *client) open() (*element, error) {
	if err := c.send("<?xml version='1.0'?><stream:stream to='" + c.env.domain +
		"' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"); err != nil {
		return nil, err
	}
	c.conn.SetReadDeadline(c.deadline)
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, c.errorf("stream header: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return nil, c.errorf("expected the stream header, got <%s>", se.Name.Local)
			}
			break
		}
	}
	f, err := c.next()
	if err != nil {
		return nil, err
	}
	if f.XMLName.Local != "features" {
		return nil, c.errorf("expected stream features, got %s", f)
	}
	return f, nil
}

// connect dials addr and authenticates: STARTTLS (RFC 6120 §5), SASL
// SCRAM-SHA-256 (§6) with sc when given (a client that logged in before
// and kept its salted password), and the authenticated stream's features.
func connect(e env, addr, user string, sc *scram.Client, deadline time.Time) (*client, error) {
	c := &client{env: e, user: user, sc: sc, deadline: deadline}
	nc, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", addr)
	if err != nil {
		return nil, c.errorf("dial %s: %w", addr, err)
	}
	c.conn, c.dec = nc, xml.NewDecoder(nc)
	if err := c.auth(); err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *client) auth() error {
	f, err := c.open()
	if err != nil {
		return err
	}
	if !strings.Contains(f.Inner, "urn:ietf:params:xml:ns:xmpp-tls") {
		return c.errorf("no STARTTLS offered: %s", f)
	}
	if err := c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return err
	}
	if e, err := c.next(); err != nil {
		return err
	} else if e.XMLName.Local != "proceed" {
		return c.errorf("expected <proceed/>, got %s", e)
	}
	tc := tls.Client(c.conn, c.env.tls)
	tc.SetDeadline(c.deadline)
	if err := tc.Handshake(); err != nil {
		return c.errorf("TLS handshake: %w", err)
	}
	c.conn, c.dec = tc, xml.NewDecoder(tc)
	if _, err := c.open(); err != nil {
		return err
	}
	if err := c.scramSHA256(); err != nil {
		return err
	}
	f, err = c.open()
	if err != nil {
		return err
	}
	if !strings.Contains(f.Inner, nsSM) {
		return c.errorf("the authenticated stream does not offer %s: %s", nsSM, f)
	}
	return nil
}

// scramSHA256 authenticates with SCRAM-SHA-256 (RFC 5802, RFC 7677), as
// slixmpp and most clients do. The client object, and with it the salted
// password it derived at the first login, is kept for the resumption: a
// client may cache it (RFC 5802 §5.1), and a reconnecting phone does.
func (c *client) scramSHA256() error {
	if c.sc == nil {
		sc, err := scram.SHA256.NewClient(c.user, "pw", "")
		if err != nil {
			return c.errorf("SCRAM client: %w", err)
		}
		c.sc = sc
	}
	conv := c.sc.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		return c.errorf("SCRAM: %w", err)
	}
	if err := c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" + base64.StdEncoding.EncodeToString([]byte(first)) + "</auth>"); err != nil {
		return err
	}
	e, err := c.next()
	if err != nil {
		return err
	}
	if e.XMLName.Local != "challenge" {
		return c.errorf("SCRAM: expected a challenge, got %s", e)
	}
	ch, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Inner))
	if err != nil {
		return c.errorf("SCRAM challenge: %w", err)
	}
	final, err := conv.Step(string(ch))
	if err != nil {
		return c.errorf("SCRAM: %w", err)
	}
	if err := c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString([]byte(final)) + "</response>"); err != nil {
		return err
	}
	if e, err = c.next(); err != nil {
		return err
	}
	if e.XMLName.Local != "success" {
		return c.errorf("SCRAM: %s", e)
	}
	v, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Inner))
	if err != nil {
		return c.errorf("SCRAM success: %w", err)
	}
	if _, err := conv.Step(string(v)); err != nil || !conv.Valid() {
		return c.errorf("SCRAM: the server's signature did not verify: %v", err)
	}
	return nil
}

// bind binds resource r (RFC 6120 §7) and records the full JID.
func (c *client) bind(r string) error {
	if err := c.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + r + "</resource></bind></iq>"); err != nil {
		return err
	}
	e, err := c.next()
	if err != nil {
		return err
	}
	var b struct {
		JID string `xml:"bind>jid"`
	}
	if e.attr("type") != "result" || xml.Unmarshal([]byte("<iq>"+e.Inner+"</iq>"), &b) != nil || b.JID == "" {
		return c.errorf("bind: %s", e)
	}
	c.jid = b.JID
	return nil
}

// login is the first connection of a receiving client: authenticate,
// bind, enable stream management with resumption (XEP-0198 §3), and send
// initial presence.
func login(e env, addr string, i int, deadline time.Time) (*client, error) {
	c, err := connect(e, addr, user(i), nil, deadline)
	if err != nil {
		return nil, err
	}
	err = func() error {
		if err := c.bind("r"); err != nil {
			return err
		}
		if err := c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>"); err != nil {
			return err
		}
		en, err := c.next()
		if err != nil {
			return err
		}
		if !en.is(nsSM, "enabled") || en.attr("id") == "" || en.attr("resume") != "true" {
			return c.errorf("want <enabled id='…' resume='true'/>, got %s", en)
		}
		c.previd = en.attr("id")
		c.out++
		return c.send("<presence/>")
	}()
	if err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
}

// ack answers the server's <r/> with the client's h (XEP-0198 §4).
func (c *client) ack() error {
	return c.send("<a xmlns='urn:xmpp:sm:3' h='" + strconv.FormatUint(uint64(c.in), 10) + "'/>")
}

// settle reads until the message with id arrived and a later <r/> from
// the server was answered, then checks with <r/> of its own that the
// server took that acknowledgement: the server handles a client's input
// in order, so its <a/> comes after it processed ours. The server's
// unacknowledged queue for this client is then empty.
func (c *client) settle(id string) error {
	got := false
	for {
		e, err := c.next()
		if err != nil {
			return fmt.Errorf("waiting for %s and the server's <r/>: %w", id, err)
		}
		switch {
		case e.stanza():
			c.in++
			if e.XMLName.Local == "message" && e.attr("id") == id {
				got = true
			}
		case e.is(nsSM, "r"):
			if err := c.ack(); err != nil {
				return err
			}
			if got {
				if err := c.send("<r xmlns='urn:xmpp:sm:3'/>"); err != nil {
					return err
				}
				return c.awaitA()
			}
		}
	}
}

// awaitA reads up to the server's <a/> and checks that it counts every
// stanza the client sent.
func (c *client) awaitA() error {
	for {
		e, err := c.next()
		if err != nil {
			return fmt.Errorf("waiting for the server's <a/>: %w", err)
		}
		switch {
		case e.stanza():
			c.in++
		case e.is(nsSM, "r"):
			if err := c.ack(); err != nil {
				return err
			}
		case e.is(nsSM, "a"):
			if h := e.attr("h"); h != strconv.FormatUint(uint64(c.out), 10) {
				return c.errorf("the server's h=%s, but the client sent %d stanzas", h, c.out)
			}
			return nil
		}
	}
}

// timing is when one client's resumption reached its milestones.
type timing struct {
	resumed, last time.Time
}

// resume reconnects as old did and resumes its session with the h it
// counted (XEP-0198 §5), then reads exactly the stanzas in want, in
// order, and checks that nothing follows them: a ping's answer must be
// the next stanza, since the server handles a client's input in order.
func resume(old *client, addr string, want []string, start <-chan struct{}, deadline time.Time) (timing, error) {
	var tm timing
	<-start
	c, err := connect(old.env, addr, old.user, old.sc, deadline)
	if err != nil {
		return tm, err
	}
	defer c.conn.Close()
	c.previd, c.in, c.out = old.previd, old.in, old.out
	if err := c.send("<resume xmlns='urn:xmpp:sm:3' previd='" + c.previd + "' h='" + strconv.FormatUint(uint64(c.in), 10) + "'/>"); err != nil {
		return tm, err
	}
	e, err := c.next()
	if err != nil {
		return tm, err
	}
	tm.resumed = time.Now()
	if !e.is(nsSM, "resumed") || e.attr("previd") != c.previd || e.attr("h") != strconv.FormatUint(uint64(c.out), 10) {
		return tm, c.errorf("want <resumed previd='%s' h='%d'/>, got %s", c.previd, c.out, e)
	}
	var got []string
	for len(got) < len(want) {
		e, err := c.next()
		if err != nil {
			return tm, fmt.Errorf("after <resumed/>, %d of %d messages (%v): %w", len(got), len(want), got, err)
		}
		switch {
		case e.stanza():
			c.in++
			if e.XMLName.Local != "message" {
				return tm, c.errorf("unexpected stanza after <resumed/>: %s", e)
			}
			got = append(got, e.attr("id"))
		case e.is(nsSM, "r"):
			if err := c.ack(); err != nil {
				return tm, err
			}
		default:
			return tm, c.errorf("unexpected element after <resumed/>: %s", e)
		}
	}
	tm.last = time.Now()
	if !slices.Equal(got, want) {
		return tm, c.errorf("retransmitted %v, want %v in that order", got, want)
	}
	c.out++
	if err := c.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>"); err != nil {
		return tm, err
	}
	for {
		e, err := c.next()
		if err != nil {
			return tm, fmt.Errorf("waiting for the ping's answer: %w", err)
		}
		switch {
		case e.is(nsClient, "iq") && e.attr("id") == "sync":
			c.in++
			return tm, nil
		case e.stanza():
			return tm, c.errorf("after the %d messages, before the ping's answer: %s (a duplicate?)", len(want), e)
		case e.is(nsSM, "r"):
			if err := c.ack(); err != nil {
				return tm, err
			}
		}
	}
}

// sender is the direct (no blackhole) client that sends the messages.
type sender struct{ *client }

// sendAll writes the messages in one go and reads until the answer to a
// ping sent after them: the server handles a client's input in order, so
// every message has been routed by then. An error bounced back fails.
func (s sender) sendAll(msgs []string) error {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m)
	}
	b.WriteString("<iq type='get' id='done'><ping xmlns='urn:xmpp:ping'/></iq>")
	wrote := make(chan error, 1)
	go func() { wrote <- s.send(b.String()) }()
	for {
		e, err := s.next()
		if err != nil {
			return errors.Join(err, <-wrote)
		}
		if e.attr("type") == "error" {
			return s.errorf("bounced: %s", e)
		}
		if e.is(nsClient, "iq") && e.attr("id") == "done" {
			return <-wrote
		}
	}
}

func message(to, id string) string {
	return "<message to='" + to + "' type='chat' id='" + id + "'><body>" + id + "</body></message>"
}

func TestResume(t *testing.T) {
	n := sessions(t)
	srv, e := startRoost(t, n)
	direct := srv.Addrs()[0].String()
	addUsers(t, srv, n)
	hole := testutil.NewBlackhole(t, direct)

	// Every wait is bounded: a generous deadline per phase, scaled to n.
	phase := func() time.Time { return time.Now().Add(60*time.Second + time.Duration(n)*50*time.Millisecond) }

	snd, err := connect(e, direct, "sender", nil, phase())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snd.conn.Close() })
	if err := snd.bind("s"); err != nil {
		t.Fatal(err)
	}
	s := sender{snd}

	// 1. N logins through the link, a few at a time.
	clients := make([]*client, n)
	t0 := time.Now()
	deadline := phase()
	err = parallel(n, loginWorkers, func(i int) error {
		c, err := login(e, hole.Addr(), i, deadline)
		if err != nil {
			return err
		}
		clients[i] = c
		return nil
	})
	for _, c := range clients {
		if c != nil {
			t.Cleanup(func() { c.conn.Close() })
		}
	}
	if err != nil {
		t.Fatalf("logins: %v", err)
	}
	loginTime := time.Since(t0)

	// 2. One message each, received and acknowledged.
	pre := make([]string, n)
	for i, c := range clients {
		pre[i] = message(c.jid, "pre-"+strconv.Itoa(i))
	}
	deadline = phase()
	for _, c := range clients {
		c.deadline = deadline
	}
	s.deadline = deadline
	if err := s.sendAll(pre); err != nil {
		t.Fatalf("sending before the drop: %v", err)
	}
	if err := parallel(n, n, func(i int) error { return clients[i].settle("pre-" + strconv.Itoa(i)) }); err != nil {
		t.Fatalf("before the drop: %v", err)
	}

	// 3. The Wi-Fi drop: nothing arrives any more, nothing closes. Two
	// messages each while the link is dead; the server still holds the
	// old connections open and writes them into the void.
	hole.Cut()
	during := make([]string, 0, 2*n)
	want := make([][]string, n)
	for k := 1; k <= 2; k++ {
		for i, c := range clients {
			id := "drop" + strconv.Itoa(k) + "-" + strconv.Itoa(i)
			during = append(during, message(c.jid, id))
			want[i] = append(want[i], id)
		}
	}
	s.deadline = phase()
	if err := s.sendAll(during); err != nil {
		t.Fatalf("sending during the drop: %v", err)
	}
	// The clients give up on their dead sockets (the server does not hear it).
	for _, c := range clients {
		c.conn.Close()
	}
	hole.Restore()

	// 4. All N reconnect at once: the measured figure.
	start := make(chan struct{})
	times := make([]timing, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	deadline = phase()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			times[i], errs[i] = resume(c, hole.Addr(), want[i], start, deadline)
		}()
	}
	stopProfile := profile(t)
	cpu0 := cpuTime(t)
	t1 := time.Now()
	close(start)
	wg.Wait()
	cpu := cpuTime(t) - cpu0
	stopProfile()
	if err := errors.Join(errs...); err != nil {
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
			}
		}
		t.Fatalf("%d of %d resumptions failed: %v", failed, n, err)
	}
	var lastResumed, lastMsg time.Time
	toResumed := make([]time.Duration, n)
	for i, tm := range times {
		toResumed[i] = tm.resumed.Sub(t1)
		if tm.resumed.After(lastResumed) {
			lastResumed = tm.resumed
		}
		if tm.last.After(lastMsg) {
			lastMsg = tm.last
		}
	}
	slices.Sort(toResumed)
	resumeTime, msgTime := lastResumed.Sub(t1), lastMsg.Sub(t1)
	t.Logf("sessions: %d (GOMAXPROCS=%d, clients, blackhole and server in one process)", n, runtime.GOMAXPROCS(0))
	t.Logf("logins (%d at a time, TLS+SCRAM-SHA-256+bind+enable+presence): %v", loginWorkers, loginTime.Round(time.Millisecond))
	t.Logf("resume, all at once (TCP+TLS+SCRAM-SHA-256+<resume/>): last <resumed/> after %v (median %v), last retransmitted message after %v",
		resumeTime.Round(100*time.Microsecond), toResumed[n/2].Round(100*time.Microsecond), msgTime.Round(100*time.Microsecond))
	t.Logf("resumes/s: %.0f; CPU time of the process (server, clients and blackhole) during the resumptions: %v, %v per resumption",
		float64(n)/resumeTime.Seconds(), cpu.Round(time.Millisecond), (cpu / time.Duration(n)).Round(time.Microsecond))
	t.Logf("messages retransmitted: %d, each exactly once and in order", 2*n)
}

// profile writes a CPU profile of the resumption phase alone to the file
// ROOST_RESUME_CPUPROFILE names, if any (go tool pprof -focus c2s.Serve
// then tells the server's share from the clients' and the blackhole's).
func profile(t *testing.T) (stop func()) {
	t.Helper()
	path := os.Getenv("ROOST_RESUME_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		t.Fatalf("cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Errorf("cpu profile: %v", err)
		}
	}
}

// cpuTime is the user and system CPU time this process has used: the
// resumptions' cost apart from what else the shared machine is doing.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
