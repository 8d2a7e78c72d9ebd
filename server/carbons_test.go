package server_test

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"roost/tests/xmlcheck"
	"roost/wire/xmlscan"
)

// carbon is a XEP-0280 copy as a client reads it: the wrapper and the
// message forwarded inside.
type carbon struct {
	from, to, typ string
	dir           string // "sent" or "received"
	inner         struct {
		XMLName xml.Name `xml:"jabber:client message"`
		From    string   `xml:"from,attr"`
		To      string   `xml:"to,attr"`
		Body    string   `xml:"jabber:client body"`
	}
}

// carbonOf decodes e as a carbon; ok is false when e is not one.
func carbonOf(t *testing.T, e *element) (c carbon, ok bool) {
	t.Helper()
	if e.XMLName.Local != "message" {
		return c, false
	}
	var w struct {
		Dir []struct {
			XMLName   xml.Name
			Forwarded struct {
				Inner []byte `xml:",innerxml"`
			} `xml:"urn:xmpp:forward:0 forwarded"`
		} `xml:",any"`
	}
	if err := xml.Unmarshal([]byte("<message>"+e.Inner+"</message>"), &w); err != nil {
		t.Fatalf("decode %s: %v", e, err)
	}
	if len(w.Dir) != 1 || w.Dir[0].XMLName.Space != "urn:xmpp:carbons:2" {
		return c, false
	}
	c.from, c.to, c.typ, c.dir = e.attr("from"), e.attr("to"), e.attr("type"), w.Dir[0].XMLName.Local
	if err := xml.Unmarshal(w.Dir[0].Forwarded.Inner, &c.inner); err != nil {
		t.Fatalf("the forwarded message of %s is not a jabber:client message: %v", e, err)
	}
	return c, true
}

// expectCarbon reads c's next message and checks it is a carbon of the
// given direction carrying body, sent to c by the account's bare JID.
func expectCarbon(t *testing.T, c *rawClient, dir, body string) carbon {
	t.Helper()
	e := c.expect("a carbon", func(e *element) bool { return e.XMLName.Local == "message" })
	cb, ok := carbonOf(t, e)
	if !ok {
		t.Fatalf("%s: expected a %s carbon of %q, got %s", c.jid, dir, body, e)
	}
	bare, _, _ := strings.Cut(c.jid, "/")
	if cb.dir != dir || cb.inner.Body != body || cb.from != bare || cb.to != c.jid || cb.typ != "chat" {
		t.Fatalf("%s: expected a %s carbon of %q from %s, got %+v from %s", c.jid, dir, body, bare, cb, e)
	}
	return cb
}

// expectMessage reads c's next message and checks it is body itself, not a
// carbon.
func expectMessage(t *testing.T, c *rawClient, body string) {
	t.Helper()
	e := c.expect("a message", func(e *element) bool { return e.XMLName.Local == "message" })
	if _, ok := carbonOf(t, e); ok || !strings.Contains(e.Inner, ">"+body+"<") {
		t.Fatalf("%s: expected the message %q, got %s", c.jid, body, e)
	}
}

func enableCarbons(t *testing.T, c *rawClient, verb string) {
	t.Helper()
	c.send("<iq type='set' id='carbons'><" + verb + " xmlns='urn:xmpp:carbons:2'/></iq>")
	e := c.expect("the carbons answer", func(e *element) bool { return e.XMLName.Local == "iq" && e.attr("id") == "carbons" })
	if e.attr("type") != "result" {
		t.Fatalf("%s carbons: %s", verb, e)
	}
}

// carbonsRig is alice with three resources (one and two enable carbons,
// three does not) and bob with one, all available.
type carbonsRig struct {
	ts                   *testServer
	one, two, three, bob *rawClient
}

func newCarbonsRig(t *testing.T, prio map[string]string) *carbonsRig {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	r := &carbonsRig{ts: ts}
	r.one = login(t, ts, "alice", "pw", "one")
	r.two = login(t, ts, "alice", "pw", "two")
	r.three = login(t, ts, "alice", "pw", "three")
	r.bob = login(t, ts, "bob", "pw", "b")
	enableCarbons(t, r.one, "enable")
	enableCarbons(t, r.two, "enable")
	for _, c := range []*rawClient{r.one, r.two, r.three, r.bob} {
		res := c.jid[strings.IndexByte(c.jid, '/')+1:]
		c.send("<presence><priority>" + prio[res] + "</priority></presence>")
		c.drain()
	}
	for _, c := range []*rawClient{r.one, r.two, r.three, r.bob} {
		c.drain() // the presence the others broadcast
	}
	return r
}

func (r *carbonsRig) nothingMore(t *testing.T) {
	t.Helper()
	for _, c := range []*rawClient{r.one, r.two, r.three, r.bob} {
		c.expectNothing()
	}
}

// TestCarbons is XEP-0280 as issue 14 lists it: alice/one and alice/two
// have carbons enabled, alice/three has not.
func TestCarbons(t *testing.T) {
	r := newCarbonsRig(t, map[string]string{"one": "5", "two": "0", "three": "0", "b": "0"})

	t.Run("received to a full JID", func(t *testing.T) {
		r.bob.send("<message to='alice@localhost/one' type='chat' id='r1'><body>r1</body></message>")
		r.bob.drain() // routed, copies queued
		expectMessage(t, r.one, "r1")
		cb := expectCarbon(t, r.two, "received", "r1")
		if cb.inner.From != "bob@localhost/b" || cb.inner.To != "alice@localhost/one" {
			t.Errorf("forwarded message from %q to %q", cb.inner.From, cb.inner.To)
		}
		r.nothingMore(t)
	})
	t.Run("sent", func(t *testing.T) {
		r.one.send("<message to='bob@localhost' type='chat' id='s1'><body>s1</body></message>")
		r.one.drain()
		expectMessage(t, r.bob, "s1")
		cb := expectCarbon(t, r.two, "sent", "s1")
		if cb.inner.From != "alice@localhost/one" || cb.inner.To != "bob@localhost" {
			t.Errorf("forwarded message from %q to %q", cb.inner.From, cb.inner.To)
		}
		r.nothingMore(t)
	})
	t.Run("sent by a resource without carbons", func(t *testing.T) {
		// XEP-0280 §8: whether or not the sender enabled them.
		r.three.send("<message to='bob@localhost/b' type='chat' id='s2'><body>s2</body></message>")
		r.three.drain()
		expectMessage(t, r.bob, "s2")
		expectCarbon(t, r.one, "sent", "s2")
		expectCarbon(t, r.two, "sent", "s2")
		r.nothingMore(t)
	})
	t.Run("private", func(t *testing.T) {
		r.bob.send("<message to='alice@localhost/one' type='chat'><body>p1</body><private xmlns='urn:xmpp:carbons:2'/></message>")
		r.bob.drain()
		expectMessage(t, r.one, "p1")
		r.one.send("<message to='bob@localhost/b' type='chat'><body>p2</body><private xmlns='urn:xmpp:carbons:2'/></message>")
		r.one.drain()
		expectMessage(t, r.bob, "p2")
		r.nothingMore(t)
	})
	t.Run("no-copy, headline, normal without body", func(t *testing.T) {
		r.bob.send("<message to='alice@localhost/one' type='chat'><body>n1</body><no-copy xmlns='urn:xmpp:hints'/></message>")
		r.bob.drain()
		expectMessage(t, r.one, "n1")
		r.bob.send("<message to='alice@localhost/one' type='headline'><body>n2</body></message>")
		r.bob.drain()
		expectMessage(t, r.one, "n2")
		r.bob.send("<message to='alice@localhost/one'><x xmlns='urn:example'>n3</x></message>")
		r.bob.drain()
		expectMessage(t, r.one, "n3")
		r.nothingMore(t)
	})
	t.Run("normal with body", func(t *testing.T) {
		r.bob.send("<message to='alice@localhost/one'><body>n4</body></message>")
		r.bob.drain()
		expectMessage(t, r.one, "n4")
		e := r.two.expect("a carbon", func(e *element) bool { return e.XMLName.Local == "message" })
		if cb, ok := carbonOf(t, e); !ok || cb.dir != "received" || cb.inner.Body != "n4" || cb.typ != "" {
			t.Fatalf("expected a received carbon of n4 without a type, got %s", e)
		}
		r.nothingMore(t)
	})
	t.Run("bare JID: only resources that did not get it", func(t *testing.T) {
		// one has the highest priority: it alone gets the message (RFC
		// 6121 §8.5.2.1.1), two a copy, three (disabled) nothing.
		r.bob.send("<message to='alice@localhost' type='chat'><body>b1</body></message>")
		r.bob.drain()
		expectMessage(t, r.one, "b1")
		expectCarbon(t, r.two, "received", "b1")
		r.nothingMore(t)
		// Now two ties with one: both get the message, nobody a copy.
		r.two.send("<presence><priority>5</priority></presence>")
		r.two.drain()
		for _, c := range []*rawClient{r.one, r.two, r.three, r.bob} {
			c.drain()
		}
		r.bob.send("<message to='alice@localhost' type='chat'><body>b2</body></message>")
		r.bob.drain()
		expectMessage(t, r.one, "b2")
		expectMessage(t, r.two, "b2")
		r.nothingMore(t)
		r.two.send("<presence><priority>0</priority></presence>")
		r.two.drain()
		for _, c := range []*rawClient{r.one, r.two, r.three, r.bob} {
			c.drain()
		}
	})
	t.Run("between alice's own resources", func(t *testing.T) {
		r.one.send("<message to='alice@localhost/three' type='chat'><body>o1</body></message>")
		r.one.drain()
		expectMessage(t, r.three, "o1")
		expectCarbon(t, r.two, "sent", "o1")
		r.nothingMore(t)
	})
	t.Run("a carbon-wrapped message is not copied again", func(t *testing.T) {
		r.bob.send("<message to='alice@localhost/one' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><body>fake</body></message></forwarded></received></message>")
		r.bob.drain()
		r.one.expect("the message", func(e *element) bool { return e.XMLName.Local == "message" })
		r.nothingMore(t)
	})
	t.Run("disabled", func(t *testing.T) {
		enableCarbons(t, r.two, "disable")
		enableCarbons(t, r.two, "disable") // twice is not an error (§10.1)
		r.bob.send("<message to='alice@localhost/one' type='chat'><body>d1</body></message>")
		r.bob.drain()
		expectMessage(t, r.one, "d1")
		r.three.send("<message to='bob@localhost/b' type='chat'><body>d2</body></message>")
		r.three.drain()
		expectMessage(t, r.bob, "d2")
		expectCarbon(t, r.one, "sent", "d2")
		r.nothingMore(t)
		enableCarbons(t, r.two, "enable")
		enableCarbons(t, r.two, "enable")
		r.bob.send("<message to='alice@localhost/one' type='chat'><body>d3</body></message>")
		r.bob.drain()
		expectMessage(t, r.one, "d3")
		expectCarbon(t, r.two, "received", "d3") // once, though enabled twice
		r.nothingMore(t)
	})
}

// TestCarbonsNewSessionDisabled: carbons belong to the session that
// enabled them; the next login with the same resource has them off.
func TestCarbonsNewSessionDisabled(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	one := login(t, ts, "alice", "pw", "one")
	two := login(t, ts, "alice", "pw", "two")
	bob := login(t, ts, "bob", "pw", "b")
	enableCarbons(t, two, "enable")
	one.send("<presence/>") // available: it sees two's presence
	one.drain()
	two.send("<presence/>")
	two.drain()
	one.drain()
	two.conn.Close()
	// The server has seen two go when one gets its unavailable presence.
	one.expect("two's unavailable presence", func(e *element) bool {
		return e.XMLName.Local == "presence" && e.attr("from") == "alice@localhost/two"
	})
	two = login(t, ts, "alice", "pw", "two")
	bob.send("<message to='alice@localhost/one' type='chat'><body>x</body></message>")
	bob.drain()
	expectMessage(t, one, "x")
	two.expectNothing()
}

// TestCarbonsIQ: the enable/disable iq's errors and the disco feature.
func TestCarbonsIQ(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "a")
	login(t, ts, "bob", "pw", "b")
	for _, tc := range []struct{ name, iq, want string }{
		{"to the server", "<iq type='set' id='c' to='localhost'><enable xmlns='urn:xmpp:carbons:2'/></iq>", "result"},
		{"to the own bare JID", "<iq type='set' id='c' to='alice@localhost'><disable xmlns='urn:xmpp:carbons:2'/></iq>", "result"},
		{"get", "<iq type='get' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>", "bad-request"},
		{"unknown element", "<iq type='set' id='c'><toggle xmlns='urn:xmpp:carbons:2'/></iq>", "bad-request"},
		{"to another account", "<iq type='set' id='c' to='bob@localhost'><enable xmlns='urn:xmpp:carbons:2'/></iq>", "service-unavailable"},
		{"disco#info lists it", "<iq type='get' id='c' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", "var='urn:xmpp:carbons:2'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.send(tc.iq)
			e := a.expect("the answer", func(e *element) bool { return e.XMLName.Local == "iq" && e.attr("id") == "c" })
			if got := e.attr("type") + " " + e.Inner; !strings.Contains(got, tc.want) {
				t.Fatalf("want %q in %s", tc.want, e)
			}
		})
	}
}

// TestCarbonsSlixmpp: a real client library's XEP-0280 plugin enables
// carbons and sees both kinds of copy.
func TestCarbonsSlixmpp(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import slixmpp").Run(); err != nil {
		if os.Getenv("ROOST_ACCEPTANCE") == "require" {
			t.Fatalf("python3-slixmpp is not importable: %v", err)
		}
		t.Skipf("python3-slixmpp not installed: %v", err)
	}
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "alice-pw")
	ts.addUser(t, "bob", "bob-pw")
	script := filepath.Join(t.TempDir(), "carbons.py")
	if err := os.WriteFile(script, []byte(carbonsScript), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(ts.c2s, ":")
	cert := ts.CertPath()
	out, err := exec.Command(python, script, host, port, cert).CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("slixmpp carbons: %v", err)
	}
}

const carbonsScript = `#!/usr/bin/python3
"""XEP-0280 with slixmpp's xep_0280 plugin: alice/one and alice/two enable
carbons; bob's message to alice/one reaches alice/two as carbon_received,
alice/one's message to bob reaches alice/two as carbon_sent, and a
<private/> message reaches nobody else. Prints PASS or FAIL."""
import asyncio, logging, sys
import slixmpp

HOST, PORT, CAFILE = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, pw):
        super().__init__(jid, pw)
        self.ca_certs = CAFILE
        self.ready = asyncio.Event()
        self.got = asyncio.Queue()
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0297")
        self.register_plugin("xep_0280")
        self.register_plugin("xep_0199")
        self.add_event_handler("session_start", self.start)
        self.add_event_handler("carbon_received", lambda m: self.got.put_nowait(("received", m["carbon_received"]["body"])))
        self.add_event_handler("carbon_sent", lambda m: self.got.put_nowait(("sent", m["carbon_sent"]["body"])))
        self.add_event_handler("message", lambda m: m["body"] and self.got.put_nowait(("message", m["body"])))

    async def start(self, _):
        self.send_presence()
        self.ready.set()

async def login(jid, pw):
    c = Client(jid, pw)
    c.connect((HOST, PORT))
    await asyncio.wait_for(c.ready.wait(), 20)
    return c

async def sync(c):
    # The server handles a client's stanzas in order: once this answers,
    # whatever c sent before was routed and its copies queued.
    await c.plugin["xep_0199"].ping(jid="localhost", timeout=10)

async def main():
    one = await login("alice@localhost/one", "alice-pw")
    two = await login("alice@localhost/two", "alice-pw")
    bob = await login("bob@localhost/b", "bob-pw")
    await one.plugin["xep_0280"].enable(timeout=10)
    await two.plugin["xep_0280"].enable(timeout=10)
    info = await one.plugin["xep_0030"].get_info(jid="localhost", timeout=10)
    ok = {}
    ok["disco#info lists urn:xmpp:carbons:2"] = "urn:xmpp:carbons:2" in info["disco_info"]["features"]

    bob.send_message(mto="alice@localhost/one", mbody="hello one", mtype="chat")
    ok["alice/one gets bob's message"] = await asyncio.wait_for(one.got.get(), 10) == ("message", "hello one")
    ok["alice/two gets it as carbon_received"] = await asyncio.wait_for(two.got.get(), 10) == ("received", "hello one")

    one.send_message(mto="bob@localhost", mbody="hello bob", mtype="chat")
    ok["bob gets alice/one's message"] = await asyncio.wait_for(bob.got.get(), 10) == ("message", "hello bob")
    ok["alice/two gets it as carbon_sent"] = await asyncio.wait_for(two.got.get(), 10) == ("sent", "hello bob")

    m = one.make_message(mto="bob@localhost", mbody="secret", mtype="chat")
    m.enable("carbon_private")
    m.send()
    ok["bob gets the private message"] = await asyncio.wait_for(bob.got.get(), 10) == ("message", "secret")
    await sync(one)
    await sync(two)
    ok["alice/two gets no copy of it"] = two.got.empty()

    for c in (one, two, bob):
        c.disconnect()
    for name, v in ok.items():
        print(("ok   " if v else "FAIL ") + name)
    print("PASS" if all(ok.values()) else "FAIL")
    return all(ok.values())

logging.basicConfig(level=logging.ERROR)
sys.exit(0 if asyncio.run(main()) else 1)
`

// TestCarbonsRemote: a message from another domain counts as received and
// one to another domain as sent (XEP-0280 §7, §8), here over the
// component uplink. The forwarded copy keeps a prefix the upstream
// declared only on its stream header resolvable.
func TestCarbonsRemote(t *testing.T) {
	up := newComponentUpstream(t)
	ts := startServer(t, withUplink(up.ln.Addr().String()))
	ts.addUser(t, "alice", "pw")
	p := up.next(t)
	one := login(t, ts, "alice", "pw", "one")
	two := login(t, ts, "alice", "pw", "two")
	enableCarbons(t, two, "enable")

	p.send("<message from='bob@remote.test/r' to='alice@localhost/one' type='chat' id='m1'><body>from afar</body><x:data>1</x:data></message>")
	expectMessage(t, one, "from afar")
	e := two.expect("a carbon", func(e *element) bool { return e.XMLName.Local == "message" })
	cb, ok := carbonOf(t, e)
	if !ok || cb.dir != "received" || cb.inner.Body != "from afar" || cb.inner.From != "bob@remote.test/r" {
		t.Fatalf("expected a received carbon of the remote message, got %s", e)
	}
	var fw struct {
		Data *struct{} `xml:"received>forwarded>message>data"`
	}
	if err := xmlcheck.Element([]byte("<message>"+e.Inner+"</message>"), nil); err != nil {
		t.Fatalf("the carbon is not namespace-well-formed: %v\n%s", err, e.Inner)
	}
	if err := xml.Unmarshal([]byte("<message>"+e.Inner+"</message>"), &fw); err != nil || fw.Data == nil {
		t.Fatalf("x:data lost in the carbon (err %v): %s", err, e.Inner)
	}
	if !strings.Contains(e.Inner, "urn:example:x") {
		t.Fatalf("x: not declared in the carbon: %s", e.Inner)
	}

	one.send("<message to='bob@remote.test/r' type='chat' id='m2'><body>to afar</body></message>")
	if got, _ := p.until(func(tok *xmlscan.Token) bool { return bytes.Contains(tok.Raw, []byte("to afar")) }); got == "" {
		t.Fatal("the message did not leave over the uplink")
	}
	cb = expectCarbon(t, two, "sent", "to afar")
	if cb.inner.To != "bob@remote.test/r" || cb.inner.From != "alice@localhost/one" {
		t.Errorf("forwarded message from %q to %q", cb.inner.From, cb.inner.To)
	}
	one.expectNothing()
	two.expectNothing()
}
