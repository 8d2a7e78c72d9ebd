package server_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"roost/tests/xmlcheck"
)

// exchange sends req and then a ping with a plain id, and returns the raw
// bytes the server wrote before the pong. The server answers a client's
// stanzas in order, so the pong marks the end of the answer to req. Every
// byte read, pong included, must pass xmlcheck.
func exchange(t *testing.T, c *rawClient, req string) []byte {
	t.Helper()
	syncs++
	id := fmt.Sprintf("sync%d", syncs)
	c.send(req + "<iq type='get' id='" + id + "'><ping xmlns='urn:xmpp:ping'/></iq>")
	pong := []byte("<iq type='result' id='" + id + "'")
	var got []byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if i := bytes.Index(got, pong); i >= 0 {
			if j := bytes.Index(got[i:], []byte("/>")); j >= 0 {
				if err := xmlcheck.Stream(got[:i+j+2]); err != nil {
					t.Fatalf("answer to %s is not well formed: %v\n%s", req, err, got)
				}
				return got[:i]
			}
		}
		c.conn.SetReadDeadline(deadline)
		n, err := c.conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("answer to %s: %v after %q", req, err, got)
		}
	}
}

var syncs int

// one decodes the single element in b (already checked by xmlcheck).
func one(t *testing.T, b []byte) *element {
	t.Helper()
	var e element
	if err := xml.Unmarshal(b, &e); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return &e
}

// TestRepliesEscapeQuotes is issue 12 item 3: ids holding the quote Roost
// writes attribute values in came back unescaped (id='it's-1'), in ping
// and roster results and in error bounces alike.
func TestRepliesEscapeQuotes(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	c := login(t, ts, "alice", "pw", "r")
	for _, id := range []struct{ attr, value string }{
		{`id="it's-1"`, `it's-1`},
		{`id='say "hi"'`, `say "hi"`},
		{`id="&apos;&quot;&amp;&lt;'"`, `'"&<'`},
	} {
		for _, tc := range []struct {
			name, req, typ, from, cond string
		}{
			{"ping", `<iq type="get" ` + id.attr + ` to="localhost"><ping xmlns='urn:xmpp:ping'/></iq>`, "result", "localhost", ""},
			{"roster get", `<iq type="get" ` + id.attr + `><query xmlns='jabber:iq:roster'/></iq>`, "result", "", ""},
			{"roster get, current version", `<iq type="get" ` + id.attr + `><query xmlns='jabber:iq:roster' ver='0'/></iq>`, "result", "", ""},
			{"disco", `<iq type="get" ` + id.attr + ` to="localhost"><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`, "result", "localhost", ""},
			{"unknown namespace", `<iq type="get" ` + id.attr + ` to="localhost"><query xmlns='urn:unknown'/></iq>`, "error", "localhost", "service-unavailable"},
			{"no such user", `<iq type="get" ` + id.attr + ` to="nobody@localhost"><ping xmlns='urn:xmpp:ping'/></iq>`, "error", "nobody@localhost", "service-unavailable"},
			{"message to no such user", `<message type="chat" ` + id.attr + ` to="nobody@localhost"><body/></message>`, "error", "nobody@localhost", "service-unavailable"},
			{"bad iq", `<iq type="bogus" ` + id.attr + ` to="localhost"/>`, "error", "localhost", "bad-request"},
		} {
			t.Run(tc.name+" "+id.attr, func(t *testing.T) {
				e := one(t, exchange(t, c, tc.req))
				if e.attr("id") != id.value || e.attr("type") != tc.typ || e.attr("from") != tc.from {
					t.Fatalf("got %s, want type %s, id %q, from %q", e, tc.typ, id.value, tc.from)
				}
				if tc.cond != "" && !strings.Contains(e.Inner, "<"+tc.cond+" ") {
					t.Fatalf("got %s, want %s", e, tc.cond)
				}
			})
		}
	}
}

// TestMalformedToBouncedFromDomain: a stanza to an address that is not a
// JID is answered jid-malformed from the server's domain, never from the
// malformed address (the sender could not parse it and would never see
// the error; RFC 6120 §8.3.1 asks for the 'to', which is not an address).
func TestMalformedToBouncedFromDomain(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	c := login(t, ts, "alice", "pw", "r")
	for _, tc := range []struct{ name, req string }{
		{"message", `<message type='chat' id='m1' to='a@b@c'><body>x</body></message>`},
		{"iq", `<iq type='get' id='m1' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>`},
		{"quoted", `<iq type='get' id="it's" to="a@b@c'"><ping xmlns='urn:xmpp:ping'/></iq>`},
		{"empty localpart", `<message type='chat' id='m1' to='@localhost'><body>x</body></message>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := one(t, exchange(t, c, tc.req))
			if e.attr("type") != "error" || !strings.Contains(e.Inner, "<jid-malformed ") {
				t.Fatalf("got %s, want a jid-malformed error", e)
			}
			if from := e.attr("from"); from != "localhost" {
				t.Fatalf("error from %q, want the server's domain", from)
			}
		})
	}
}
