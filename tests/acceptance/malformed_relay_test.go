package acceptance

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"roost/tests/testutil"
)

// TestMalformedNotRelayed is issue 12's relay check. bob is a real
// slixmpp client (relay_receiver.py), online at bob@localhost/r. For each
// stanza that breaks Namespaces in XML (duplicate expanded attribute
// names, reserved prefixes and namespaces; W3C Namespaces in XML 1.0 §3
// and §6.3), alice sends it over her own TLS stream and:
//   - her stream ends with the not-well-formed stream error (RFC 6120
//     §4.9.3.13), and
//   - bob never sees the stanza, slixmpp logs no error, bob stays
//     connected, and a control message sent after the case reaches him.
//
// Well-formed stanzas that look odd (an id holding the other kind of
// quote, the xml prefix declared to its own namespace) must instead
// reach bob intact, and what Roost writes back must parse.
func TestMalformedNotRelayed(t *testing.T) {
	needSlixmpp(t)
	f := newFixture(t, "alice", "bob")
	addr := fmt.Sprintf("127.0.0.1:%d", f.port)
	pem, err := os.ReadFile(f.cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{RootCAs: roots, ServerName: "localhost"}

	bob := startReceiver(t, t, f)
	ctl := rawLogin(t, addr, tlsConf, "alice", "alice-pw", "ctl")
	controls := 0
	// control sends a message from alice's other session and waits for
	// bob to print it. Whatever bob printed before it (a message, an iq,
	// a logged error, a disconnection) is a leak of the case just run.
	control := func(t *testing.T, name string) {
		t.Helper()
		controls++
		id := fmt.Sprintf("control-%d", controls)
		ctl.send(t, fmt.Sprintf("<message to='bob@localhost/r' type='chat' id='%s'><body>%s</body></message>", id, id))
		before, ok := bob.until(func(l receiverLine) bool { return l.kind == "message" && l.ID == id })
		for _, l := range before {
			t.Errorf("%s: LEAKED: bob's slixmpp printed %s", name, l.raw)
		}
		if !ok {
			t.Errorf("%s: the control message sent afterwards did not reach bob's slixmpp (broken by what reached it?); all it printed:\n%s", name, bob.out.String())
			bob.stop()
		}
	}
	control(t, "before the cases")
	parent := t
	// ensureBob starts a new client for bob when a case broke the last.
	ensureBob := func(t *testing.T) {
		if bob.dead() {
			bob.stop()
			bob = startReceiver(t, parent, f)
		}
	}

	const ns = "xmlns:a='urn:x' xmlns:b='urn:x'"
	for _, tc := range []struct{ name, stanza string }{
		{"duplicate expanded attribute on the stanza",
			"<message to='bob@localhost/r' " + ns + " a:q='1' b:q='2' type='chat' id='leak-1'><body>leak-1</body></message>"},
		{"duplicate expanded attribute on a child",
			"<message to='bob@localhost/r' type='chat' id='leak-2'><body " + ns + " a:q='1' b:q='2'>leak-2</body></message>"},
		{"a prefix bound to the xml namespace",
			"<message to='bob@localhost/r' xmlns:x='http://www.w3.org/XML/1998/namespace' type='chat' id='leak-3'><body>leak-3</body></message>"},
		{"the xml prefix bound to another namespace",
			"<message to='bob@localhost/r' xmlns:xml='urn:other' type='chat' id='leak-4'><body>leak-4</body></message>"},
		{"the xml prefix bound to another namespace on a child",
			"<message to='bob@localhost/r' type='chat' id='leak-5'><body xmlns:xml='urn:other'>leak-5</body></message>"},
		{"the xmlns prefix declared",
			"<message to='bob@localhost/r' xmlns:xmlns='urn:other' type='chat' id='leak-6'><body>leak-6</body></message>"},
		{"a prefix bound to the xmlns namespace",
			"<message to='bob@localhost/r' type='chat' id='leak-7'><body xmlns:x='http://www.w3.org/2000/xmlns/'>leak-7</body></message>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ensureBob(t)
			alice := rawLogin(t, addr, tlsConf, "alice", "alice-pw", "bad")
			alice.send(t, tc.stanza)
			got, closed := alice.drain(5 * time.Second)
			if !strings.Contains(got, "<not-well-formed") || !closed {
				t.Errorf("%s: alice's stream did not end with not-well-formed (closed %v); she got:\n%s", tc.name, closed, got)
			}
			control(t, tc.name)
		})
	}

	// Well-formed: delivered intact.
	t.Run("an id holding the other quote", func(t *testing.T) {
		ensureBob(t)
		alice := rawLogin(t, addr, tlsConf, "alice", "alice-pw", "ids")
		for i, id := range []string{`it"s-1`, `it's-2`} {
			q := "'"
			if strings.Contains(id, "'") {
				q = `"`
			}
			alice.send(t, fmt.Sprintf("<iq type='get' to='bob@localhost/r' id=%s%s%s><query xmlns='urn:roost:test'/></iq>", q, id, q))
			if seen, ok := bob.until(func(l receiverLine) bool { return l.kind == "iq" }); !ok || len(seen) > 0 {
				t.Fatalf("iq %d: bob's slixmpp did not get the iq (printed first: %v); all it printed:\n%s", i, seen, bob.out.String())
			}
			if got := bob.last.ID; got != id {
				t.Errorf("iq %d: bob got id %q, want %q intact", i, got, id)
			}
			// bob's result comes back through Roost and must parse, with
			// the same id.
			res := alice.nextElement(t, fmt.Sprintf("bob's result for id %q", id))
			if res.Name.Local != "iq" || attr(res, "type") != "result" || attr(res, "id") != id {
				t.Errorf("iq %d: alice got %s type=%q id=%q, want the result for id %q", i, res.Name.Local, attr(res, "type"), attr(res, "id"), id)
			}
		}
		// Roost's own answer (a ping to the server) carries the id back
		// escaped for the quote Roost writes it in.
		for i, id := range []string{`ping"1`, `ping'2`} {
			q := "'"
			if strings.Contains(id, "'") {
				q = `"`
			}
			alice.send(t, fmt.Sprintf("<iq type='get' to='localhost' id=%s%s%s><ping xmlns='urn:xmpp:ping'/></iq>", q, id, q))
			res := alice.nextElement(t, fmt.Sprintf("the server's ping result for id %q", id))
			if res.Name.Local != "iq" || attr(res, "type") != "result" || attr(res, "id") != id {
				t.Errorf("ping %d: alice got %s type=%q id=%q, want the result for id %q", i, res.Name.Local, attr(res, "type"), attr(res, "id"), id)
			}
		}
		alice.send(t, "<message to='bob@localhost/r' type='chat' id='xml-ok' xmlns:xml='http://www.w3.org/XML/1998/namespace'><body xml:lang='en'>xml-ok</body></message>")
		if seen, ok := bob.until(func(l receiverLine) bool { return l.kind == "message" && l.ID == "xml-ok" }); !ok || len(seen) > 0 {
			t.Fatalf("the xml prefix declared to its own namespace: bob's slixmpp did not get the message (printed first: %v); all it printed:\n%s", seen, bob.out.String())
		}
		if bob.last.Body != "xml-ok" {
			t.Errorf("body %q, want xml-ok", bob.last.Body)
		}
	})
	ensureBob(t)
	control(t, "after the cases")
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// receiver is a running relay_receiver.py.
type receiver struct {
	cmd   *exec.Cmd
	out   testutil.LockedBuffer
	lines chan receiverLine // closed when it exits
	last  receiverLine      // the line until returned for
	gone  bool
}

type receiverLine struct {
	raw, kind string
	ID        string `json:"id"`
	Body      string `json:"body"`
}

func (l receiverLine) String() string { return l.raw }

// startReceiver starts bob's client and waits until it is online; owner
// (the whole test) stops it at its end.
func startReceiver(t *testing.T, owner testing.TB, f *fixture) *receiver {
	t.Helper()
	r := &receiver{lines: make(chan receiverLine, 100)}
	r.cmd = exec.Command(python, "relay_receiver.py", "127.0.0.1", fmt.Sprint(f.port), "localhost", "bob", "bob-pw", "r", "--cafile", f.cert)
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stderr = r.cmd.Stdout
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(func() { r.cmd.Process.Kill(); r.cmd.Wait() })
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			raw := sc.Text()
			r.out.Write([]byte(raw + "\n"))
			l := receiverLine{raw: raw}
			l.kind, _, _ = strings.Cut(raw, " ")
			if l.kind == "message" || l.kind == "iq" {
				json.Unmarshal([]byte(strings.TrimPrefix(raw, l.kind+" ")), &l)
			}
			r.lines <- l
		}
	}()
	seen, ok := r.until(func(l receiverLine) bool { return l.kind == "ready" })
	for _, l := range seen {
		// A control message that a broken earlier client never took
		// comes to the new one with its login (the session it replaces
		// hands on what it had queued): expected, and not a leak.
		ok = ok && l.kind == "message" && strings.HasPrefix(l.ID, "control-")
	}
	if !ok {
		t.Fatalf("bob's slixmpp did not log in cleanly (printed %v); all it printed:\n%s", seen, r.out.String())
	}
	return r
}

// until waits (20 s at most) for a line matching want and returns the
// lines before it. It gives up early, with ok false, when bob's client
// logs an error, is disconnected or ends: it will not see anything more.
func (r *receiver) until(want func(receiverLine) bool) (before []receiverLine, ok bool) {
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, open := <-r.lines:
			if !open {
				r.gone = true
				return before, false
			}
			if want(l) {
				r.last = l
				return before, true
			}
			before = append(before, l)
			if l.kind == "disconnected" || (l.kind == "log" && strings.HasPrefix(l.raw, "log ERROR")) {
				r.gone = true
				return before, false
			}
		case <-timeout:
			return before, false
		}
	}
}

// stop ends bob's client (a new one is started for the next case).
func (r *receiver) stop() {
	r.gone = true
	r.cmd.Process.Kill()
}

func (r *receiver) dead() bool { return r.gone }

// rawClient is alice on a hand-made TLS stream: STARTTLS, SASL PLAIN,
// bind, nothing else, so a test can write bytes no library would.
type rawClient struct {
	nc  net.Conn
	r   *bufio.Reader
	dec *xml.Decoder
}

const clientHeader = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

func rawLogin(t *testing.T, addr string, conf *tls.Config, user, password, resource string) *rawClient {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	c := &rawClient{nc: raw, r: bufio.NewReader(raw)}
	step := func(send, want string) {
		t.Helper()
		if send != "" {
			if _, err := io.WriteString(c.nc, send); err != nil {
				t.Fatalf("login %s: write: %v", user, err)
			}
		}
		var got []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(got, []byte(want)) {
			n, err := c.r.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("login %s: waiting for %q: %v (got %q)", user, want, err, got)
			}
		}
	}
	step(clientHeader, "</stream:features>")
	step("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed")
	tc := tls.Client(raw, conf)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc, c.r = tc, bufio.NewReader(tc)
	step(clientHeader, "</stream:features>")
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	step("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+auth+"</auth>", "<success")
	step(clientHeader, "</stream:features>")
	step("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>"+resource+"</resource></bind></iq>", "</iq>")
	raw.SetDeadline(time.Time{})
	return c
}

func (c *rawClient) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		t.Fatalf("send %q: %v", s, err)
	}
}

// drain reads until the server closes the stream or d passes; closed is
// false when it was still open at the end.
func (c *rawClient) drain(d time.Duration) (got string, closed bool) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c.r)
	var ne net.Error
	return string(b), !(errors.As(err, &ne) && ne.Timeout())
}

// nextElement reads the next top-level element with encoding/xml (an
// oracle independent of Roost's scanner) and returns its start tag; the
// element must parse completely within 10 s.
func (c *rawClient) nextElement(t *testing.T, what string) xml.StartElement {
	t.Helper()
	if c.dec == nil {
		c.dec = xml.NewDecoder(c.r)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		tok, err := c.dec.Token()
		if err != nil {
			t.Fatalf("%s: what Roost sent alice does not parse: %v", what, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if err := c.dec.Skip(); err != nil {
				t.Fatalf("%s: the element <%s> Roost sent alice does not parse: %v", what, se.Name.Local, err)
			}
			return se
		}
	}
}
