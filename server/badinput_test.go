package server_test

import (
	"crypto/tls"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"roost/server"
)

const streamNS = "xmlns:stream='http://etherx.jabber.org/streams'"

// TestStreamHeaderErrors sends bad stream headers; each gets its stream
// error (RFC 6120 §4.9.3), preceded by the server's own header.
func TestStreamHeaderErrors(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct {
		name, header, cond string
	}{
		{"unknown host", "<stream:stream to='example.org' xmlns='jabber:client' " + streamNS + " version='1.0'>", "host-unknown"},
		{"no to", "<stream:stream xmlns='jabber:client' " + streamNS + " version='1.0'>", "host-unknown"},
		{"wrong stream namespace", "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='urn:wrong' version='1.0'>", "invalid-namespace"},
		{"wrong content namespace", "<stream:stream to='localhost' xmlns='jabber:server' " + streamNS + " version='1.0'>", "invalid-namespace"},
		{"no stream prefix", "<stream to='localhost' xmlns='http://etherx.jabber.org/streams' version='1.0'>", "bad-namespace-prefix"},
		{"version 2", "<stream:stream to='localhost' xmlns='jabber:client' " + streamNS + " version='2.0'>", "unsupported-version"},
		{"no version", "<stream:stream to='localhost' xmlns='jabber:client' " + streamNS + ">", "unsupported-version"},
		{"garbage version", "<stream:stream to='localhost' xmlns='jabber:client' " + streamNS + " version='one'>", "bad-format"},
		{"not a stream", "<message xmlns='jabber:client'/>", "invalid-namespace"},
		{"DTD entity bomb", "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'><!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>]><stream:stream to='localhost' xmlns='jabber:client' " + streamNS + " version='1.0'>&lol2;", "restricted-xml"},
		{"comment", "<!-- hi --><stream:stream to='localhost' xmlns='jabber:client' " + streamNS + " version='1.0'>", "restricted-xml"},
		{"not XML", "hello there\r\n", "not-well-formed"},
		{"bad UTF-8", "<stream:stream to='local\xffhost' xmlns='jabber:client' " + streamNS + " version='1.0'>", "unsupported-encoding"},
		{"latin-1 declared", "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream to='localhost' xmlns='jabber:client' " + streamNS + " version='1.0'>", "unsupported-encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, ts.c2s)
			c.send(tc.header)
			c.readHeader()
			c.expectStreamError(tc.cond)
		})
	}
}

// bystanders logs in two users who keep chatting while others misbehave,
// and returns a check that they still can.
func bystanders(t *testing.T, ts *testServer) func() {
	ts.addUser(t, "carol", "pw")
	ts.addUser(t, "dave", "pw")
	carol := login(t, ts, "carol", "pw", "c")
	dave := login(t, ts, "dave", "pw", "d")
	return func() {
		t.Helper()
		carol.send("<message to='dave@localhost/d' id='still'><body>still here</body></message>")
		e := dave.expect("bystander message", func(e *element) bool { return e.XMLName.Local == "message" })
		if !strings.Contains(e.Inner, "still here") || e.attr("from") != "carol@localhost/c" {
			t.Fatalf("bystander got %s", e)
		}
	}
}

// TestBadInputAfterLogin: each kind of bad input from a bound client gets
// its stream error, and the server and the other sessions keep working.
func TestBadInputAfterLogin(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits.StanzaBytes = 10000 })
	ts.addUser(t, "mallory", "pw")
	stillOK := bystanders(t, ts)
	for _, tc := range []struct {
		name, send, cond string
	}{
		{"mismatched tags", "<message to='carol@localhost'><body></message>", "not-well-formed"},
		{"undeclared entity", "<message to='carol@localhost'><body>&nbsp;</body></message>", "restricted-xml"},
		{"processing instruction", "<?evil?>", "restricted-xml"},
		{"DTD mid-stream", "<!DOCTYPE x>", "restricted-xml"},
		{"oversized stanza", "<message to='carol@localhost'><body>" + strings.Repeat("x", 20000) + "</body></message>", "policy-violation"},
		{"too deep", "<message>" + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + "</message>", "policy-violation"},
		{"unknown top-level element", "<foo xmlns='urn:example:unknown'/>", "unsupported-stanza-type"},
		{"bad UTF-8 in body", "<message to='carol@localhost'><body>\xc3\x28</body></message>", "unsupported-encoding"},
		{"unbound prefix", "<message to='carol@localhost'><x:body>hi</x:body></message>", "not-well-formed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := login(t, ts, "mallory", "pw", "m")
			m.send(tc.send)
			m.expectStreamError(tc.cond)
			stillOK()
		})
	}
}

// TestStanzaBeforeAuth: stanzas before authentication are refused with
// not-authorized (after STARTTLS) and never routed.
func TestStanzaBeforeAuth(t *testing.T) {
	ts := startServer(t, nil)
	stillOK := bystanders(t, ts)
	c := dialRaw(t, ts.c2s)
	c.open("localhost")
	c.starttls(ts)
	c.open("localhost")
	c.send("<message to='dave@localhost/d'><body>spam</body></message>")
	c.expectStreamError("not-authorized")
	stillOK()

	// Before STARTTLS, when TLS is required, it is a policy violation.
	c = dialRaw(t, ts.c2s)
	f := c.open("localhost")
	if !strings.Contains(f.Inner, "<required/>") || strings.Contains(f.Inner, "mechanisms") {
		t.Errorf("features before TLS should require STARTTLS and offer no SASL: %s", f.Inner)
	}
	c.send("<message to='dave@localhost/d'><body>spam</body></message>")
	c.expectStreamError("policy-violation")
	stillOK()
}

func TestAuthTimeout(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits.AuthTimeout = server.Duration(time.Second) })
	c := dialRaw(t, ts.c2s)
	c.open("localhost")
	c.expectStreamError("connection-timeout")
}

func TestSASLFailures(t *testing.T) {
	ts := startServer(t, nil)
	c := dialRaw(t, ts.c2s)
	c.open("localhost")
	c.starttls(ts)
	c.open("localhost")
	for _, tc := range []struct{ send, cond string }{
		{"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>", "invalid-mechanism"},
		{"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!notbase64</auth>", "incorrect-encoding"},
		{"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>", ""},
		{"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", "aborted"},
		{"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AAAA</response>", "malformed-request"},
	} {
		c.send(tc.send)
		e := c.next()
		if tc.cond == "" {
			if e.XMLName.Local != "challenge" {
				t.Fatalf("%s: want an empty challenge, got %s", tc.send, e)
			}
			continue
		}
		if e.XMLName.Local != "failure" || !strings.Contains(e.Inner, tc.cond) {
			t.Fatalf("%s: want failure %s, got %s", tc.send, tc.cond, e)
		}
	}
}

// TestShutdownClosesStreams: a graceful shutdown ends bound streams with
// <system-shutdown/>.
func TestShutdownClosesStreams(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	a := login(t, ts, "alice", "pw", "a")
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(t.Context()) }()
	a.expectStreamError("system-shutdown")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSTARTTLSInjection: bytes sent in plaintext after <starttls/> are
// dropped at the switch, never read as if they came over TLS (the
// STARTTLS command injection attack, CVE-2011-0411 and kin).
func TestSTARTTLSInjection(t *testing.T) {
	ts := startServer(t, nil)
	c := dialRaw(t, ts.c2s)
	c.open("localhost")
	// One write: the command and an injected stanza behind it.
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='inj'><ping xmlns='urn:xmpp:ping'/></iq>")
	if e := c.next(); e.XMLName.Local != "proceed" {
		t.Fatalf("expected proceed, got %s", e)
	}
	tc := tls.Client(c.conn, ts.tlsConf)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.dec = xml.NewDecoder(tc)
	f := c.open("localhost") // fails if the injected iq were taken as the first element
	if !strings.Contains(f.Inner, "mechanisms") {
		t.Fatalf("features after TLS: %s", f.Inner)
	}
}
