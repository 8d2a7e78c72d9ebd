package server_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	xmpp "github.com/xmppo/go-xmpp"

	"roost/server"
)

// goClient logs in with github.com/xmppo/go-xmpp, an independent client
// library with its own SASL implementation.
func goClient(ts *testServer, user, password, mech string, direct bool) (*xmpp.Client, error) {
	o := xmpp.Options{
		User:          user + "@" + ts.cfg.Domain,
		Password:      password,
		Mechanism:     mech,
		TLSConfig:     ts.tlsConf.Clone(),
		DialTimeout:   5 * time.Second,
		Resource:      "go",
		NoSASLUpgrade: true,
	}
	if direct {
		o.Host = ts.direct
	} else {
		o.Host = ts.c2s
		o.NoTLS = true
		o.StartTLS = true
	}
	return o.NewClient()
}

func TestSASLMechanisms(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "wonderland")
	for _, tc := range []struct {
		name   string
		mech   string
		direct bool
	}{
		{"SCRAM-SHA-256 over STARTTLS", "SCRAM-SHA-256", false},
		{"SCRAM-SHA-1 over STARTTLS", "SCRAM-SHA-1", false},
		{"PLAIN over STARTTLS", "PLAIN", false},
		{"SCRAM-SHA-256 over direct TLS", "SCRAM-SHA-256", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := goClient(ts, "alice", "wonderland", tc.mech, tc.direct)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			defer c.Close()
			if !strings.HasPrefix(c.JID(), "alice@localhost/") {
				t.Errorf("bound JID %q", c.JID())
			}
			if !c.IsEncrypted() {
				t.Error("stream not encrypted")
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "wonderland")
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			_, err := goClient(ts, "alice", "looking-glass", mech, false)
			if err == nil || !strings.Contains(err.Error(), "not-authorized") {
				t.Fatalf("want not-authorized, got %v", err)
			}
			// An unknown user fails the same way, not earlier.
			_, err = goClient(ts, "nobody", "looking-glass", mech, false)
			if err == nil || !strings.Contains(err.Error(), "not-authorized") {
				t.Fatalf("unknown user: want not-authorized, got %v", err)
			}
		})
	}
}

func TestPlainRefusedWithoutTLS(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.TLS.Required = false })
	ts.addUser(t, "alice", "wonderland")
	c := dialRaw(t, ts.c2s)
	f := c.open("localhost")
	if strings.Contains(f.Inner, "PLAIN") {
		t.Errorf("PLAIN offered on a plaintext stream: %s", f.Inner)
	}
	if !strings.Contains(f.Inner, "SCRAM-SHA-256") {
		t.Errorf("SCRAM not offered when TLS is optional: %s", f.Inner)
	}
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>")
	if e := c.next(); e.XMLName.Local != "failure" || !strings.Contains(e.Inner, "encryption-required") {
		t.Fatalf("want failure encryption-required, got %s", e)
	}
	// SCRAM still works on the same stream.
	cl, err := xmpp.Options{Host: ts.c2s, User: "alice@localhost", Password: "wonderland", NoTLS: true,
		InsecureAllowUnencryptedAuth: true, Mechanism: "SCRAM-SHA-256", TLSConfig: &tls.Config{}}.NewClient()
	if err != nil {
		t.Fatalf("SCRAM without TLS: %v", err)
	}
	cl.Close()
}

func TestResourceConflict(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	first := login(t, ts, "alice", "pw", "phone")
	second := login(t, ts, "alice", "pw", "phone")
	first.expectStreamError("conflict")
	if second.jid != "alice@localhost/phone" {
		t.Fatalf("second session bound %q", second.jid)
	}
	second.expectNothing()
}

func TestServerGeneratesResource(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	c := login(t, ts, "alice", "pw", "")
	if !strings.HasPrefix(c.jid, "alice@localhost/") || len(c.jid) <= len("alice@localhost/") {
		t.Fatalf("bound %q", c.jid)
	}
}

func TestBareJIDDeliveryByPriority(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "a")
	prio := map[string]string{"low": "1", "high1": "10", "high2": "10", "neg": "-1", "quiet": ""}
	bobs := map[string]*rawClient{}
	for res, p := range prio {
		b := login(t, ts, "bob", "pw", res)
		if p != "" { // "quiet" never sends presence: not available
			b.send("<presence><priority>" + p + "</priority></presence>")
		}
		b.drain() // its presence has been broadcast once this returns
		bobs[res] = b
	}
	// Drop the presence bob's resources broadcast to each other.
	for _, b := range bobs {
		b.drain()
	}
	a.send("<message to='bob@localhost' type='chat' id='m1'><body>hi</body></message>")
	a.expectNothing()
	for _, res := range []string{"high1", "high2"} {
		e := bobs[res].expect("the message", func(e *element) bool { return e.XMLName.Local == "message" })
		if e.attr("from") != "alice@localhost/a" || !strings.Contains(e.Inner, "hi") {
			t.Errorf("%s got %s", res, e)
		}
	}
	for _, res := range []string{"low", "neg", "quiet"} {
		bobs[res].expectNothing()
	}
}

func TestFromIsStamped(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "a")
	b := login(t, ts, "bob", "pw", "b")
	a.send("<message to='bob@localhost/b' from='carol@localhost/evil' id='x'><body>trust me</body></message>")
	e := b.expect("the message", func(e *element) bool { return e.XMLName.Local == "message" })
	if got := e.attr("from"); got != "alice@localhost/a" {
		t.Fatalf("from = %q, want the sender's true JID", got)
	}
}

func TestRosterSetPushRemove(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	a1 := login(t, ts, "alice", "pw", "one")
	a2 := login(t, ts, "alice", "pw", "two")
	for _, c := range []*rawClient{a1, a2} {
		c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
		e := c.expect("roster result", func(e *element) bool { return e.attr("id") == "r1" })
		if e.attr("type") != "result" || !strings.Contains(e.Inner, "jabber:iq:roster") {
			t.Fatalf("roster get: %s", e)
		}
	}
	a1.send("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='Bob@LocalHost' name='Bob'><group>Friends</group></item></query></iq>")
	res := a1.expect("set result", func(e *element) bool { return e.attr("id") == "s1" })
	if res.attr("type") != "result" {
		t.Fatalf("set: %s", res)
	}
	for _, c := range []*rawClient{a1, a2} {
		push := c.expect("roster push", func(e *element) bool { return e.attr("type") == "set" })
		if !strings.Contains(push.Inner, "jid='bob@localhost'") || !strings.Contains(push.Inner, "name='Bob'") || !strings.Contains(push.Inner, "Friends") {
			t.Errorf("push: %s", push)
		}
	}
	// Stored: a fresh get shows it.
	a2.send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
	e := a2.expect("roster result", func(e *element) bool { return e.attr("id") == "r2" })
	if !strings.Contains(e.Inner, "bob@localhost") {
		t.Fatalf("roster after set: %s", e)
	}
	a2.send("<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
	for _, c := range []*rawClient{a1, a2} {
		push := c.expect("remove push", func(e *element) bool { return e.attr("type") == "set" })
		if !strings.Contains(push.Inner, "subscription='remove'") {
			t.Errorf("remove push: %s", push)
		}
	}
	a2.send("<iq type='set' id='s3'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>")
	e = a2.expect("second remove", func(e *element) bool { return e.attr("id") == "s3" })
	if e.attr("type") != "error" || !strings.Contains(e.Inner, "item-not-found") {
		t.Fatalf("removing a missing item: %s", e)
	}
}

func TestServerIQs(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "a")
	for _, tc := range []struct {
		name, iq, want string
	}{
		{"ping", "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", "type='result'"},
		{"disco info", "<iq type='get' id='p' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", "urn:xmpp:ping"},
		{"disco items", "<iq type='get' id='p' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>", "type='result'"},
		{"version", "<iq type='get' id='p' to='localhost'><query xmlns='jabber:iq:version'/></iq>", "Roost"},
		{"session", "<iq type='set' id='p'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>", "type='result'"},
		{"unknown namespace", "<iq type='get' id='p' to='localhost'><query xmlns='urn:example:nope'/></iq>", "service-unavailable"},
		{"unknown namespace to a bare JID", "<iq type='get' id='p' to='bob@localhost'><query xmlns='urn:example:nope'/></iq>", "service-unavailable"},
		{"iq to an unknown user", "<iq type='get' id='p' to='nobody@localhost'><query xmlns='urn:example:nope'/></iq>", "service-unavailable"},
		{"iq to an offline full JID", "<iq type='get' id='p' to='bob@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>", "service-unavailable"},
		{"iq with two children", "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>", "bad-request"},
		{"iq with no child", "<iq type='get' id='p' to='localhost'/>", "bad-request"},
		{"roster of another user", "<iq type='set' id='p' to='bob@localhost'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/></query></iq>", "forbidden"},
		{"bad to", "<iq type='get' id='p' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>", "jid-malformed"},
		{"remote domain", "<iq type='get' id='p' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>", "remote-server-not-found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.send(tc.iq)
			e := a.expect("the answer", func(e *element) bool { return e.XMLName.Local == "iq" && e.attr("id") == "p" })
			raw := "type='" + e.attr("type") + "' " + e.Inner
			if !strings.Contains(raw, tc.want) {
				t.Fatalf("want %q in %s", tc.want, e)
			}
		})
	}
}

func TestMessageToUnknownUser(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	a := login(t, ts, "alice", "pw", "a")
	a.send("<message to='nobody@localhost' id='m'><body>x</body></message>")
	e := a.expect("bounce", func(e *element) bool { return e.XMLName.Local == "message" })
	if e.attr("type") != "error" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("bounce: %s", e)
	}
}

// TestRosterVersioning: XEP-0237. A get with the current ver is answered
// with an empty result; with an old ver, the whole roster and the new ver.
func TestRosterVersioning(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	a := login(t, ts, "alice", "pw", "a")
	a.send("<iq type='set' id='s'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>")
	a.expect("set result", func(e *element) bool { return e.attr("id") == "s" })
	a.send("<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver=''/></iq>")
	full := a.expect("roster", func(e *element) bool { return e.attr("id") == "g1" })
	if !strings.Contains(full.Inner, "ver='1'") || !strings.Contains(full.Inner, "bob@localhost") {
		t.Fatalf("roster with ver='': %s", full)
	}
	a.send("<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='1'/></iq>")
	same := a.expect("roster", func(e *element) bool { return e.attr("id") == "g2" })
	if same.attr("type") != "result" || same.Inner != "" {
		t.Fatalf("roster with the current ver should be an empty result: %s", same)
	}
}
