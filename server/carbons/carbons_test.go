package carbons

import (
	"encoding/xml"
	"roost/server/session/sessiontest"
	"strings"
	"sync"
	"testing"

	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

func TestEligible(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		typ       string
		want      bool
		muc       bool
	}{
		{"chat", `<message type='chat'><body>hi</body></message>`, "chat", true, false},
		{"chat without body (chat state)", `<message type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, "chat", true, false},
		{"normal with body", `<message><body>hi</body></message>`, "", true, false},
		{"type normal with body", `<message type='normal'><body>hi</body></message>`, "normal", true, false},
		{"normal without body", `<message><x xmlns='jabber:x:data'/></message>`, "", false, false},
		{"normal, body only nested", `<message><x xmlns='urn:x'><body>hi</body></x></message>`, "", false, false},
		{"normal, body of another namespace", `<message><body xmlns='urn:other'>hi</body></message>`, "", false, false},
		{"normal, body declared jabber:client", `<message><body xmlns='jabber:client'>hi</body></message>`, "", true, false},
		{"normal, body with stanza default declared", `<message xmlns='jabber:client'><body>hi</body></message>`, "", true, false},
		{"headline", `<message type='headline'><body>hi</body></message>`, "headline", false, false},
		{"groupchat", `<message type='groupchat'><body>hi</body></message>`, "groupchat", false, false},
		{"error", `<message type='error'><body>hi</body><error type='cancel'/></message>`, "error", false, false},
		{"private", `<message type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/></message>`, "chat", false, false},
		{"private prefixed", `<message type='chat' xmlns:c='urn:xmpp:carbons:2'><body>hi</body><c:private/></message>`, "chat", false, false},
		{"private, prefix on the child", `<message type='chat'><body>hi</body><c:private xmlns:c='urn:xmpp:carbons:2'/></message>`, "chat", false, false},
		{"private, escaped namespace", `<message type='chat'><body>hi</body><private xmlns='urn&#58;xmpp:carbons:2'/></message>`, "chat", false, false},
		{"private of another namespace", `<message type='chat'><body>hi</body><private xmlns='urn:other'/></message>`, "chat", true, false},
		{"private nested is not the hint", `<message type='chat'><body>hi</body><x xmlns='urn:x'><private xmlns='urn:xmpp:carbons:2'/></x></message>`, "chat", true, false},
		{"no-copy", `<message type='chat'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/></message>`, "chat", false, false},
		{"already a carbon (received)", `<message type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><body>x</body></message></forwarded></received></message>`, "chat", false, false},
		{"already a carbon (sent)", `<message type='chat'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></sent></message>`, "chat", false, false},
		{"tricky attribute and CDATA", `<message type='chat' id='a>b'><body><![CDATA[<private xmlns='urn:xmpp:carbons:2'/>]]></body><thread parent="x/>y">t</thread></message>`, "chat", true, false},
		{"muc pm", `<message type='chat'><body>hi</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>`, "chat", true, true},
		{"self-closing", `<message type='chat'/>`, "chat", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := payload(scanned(t, tc.msg))
			if got := in.eligible([]byte(tc.typ)); got != tc.want {
				t.Errorf("eligible = %v, want %v (%+v)", got, tc.want, in)
			}
			if in.mucUser != tc.muc {
				t.Errorf("mucUser = %v, want %v", in.mucUser, tc.muc)
			}
		})
	}
}

// scanned is msg as the stream scanner hands it over on a client stream.
func scanned(t testing.TB, msg string) *xmlscan.Token {
	t.Helper()
	return sessiontest.Parse(t, msg).Tok
}

// TestScanAllocs: deciding eligibility allocates nothing.
func TestScanAllocs(t *testing.T) {
	tok := scanned(t, `<message type='chat' to='bob@localhost' xmlns:c='urn:xmpp:carbons:2'><body>hi</body><c:private/><x xmlns='urn:x'><y a="1>"/></x></message>`)
	if n := testing.AllocsPerRun(100, func() { payload(tok).eligible([]byte("chat")) }); n != 0 {
		t.Errorf("payload allocates %v times", n)
	}
}

// A stanza with more direct children than the scanner lists is not
// copied: a private marker past them could not be seen.
func TestManyChildrenNotCopied(t *testing.T) {
	msg := "<message type='chat'><body>hi</body>" + strings.Repeat("<x xmlns='urn:x'/>", xmlscan.MaxKids) + "<private xmlns='urn:xmpp:carbons:2'/></message>"
	if payload(scanned(t, msg)).eligible([]byte("chat")) {
		t.Fatal("a message whose private marker the scanner did not list was eligible")
	}
}

// TestAppendCopy checks the wrapping of XEP-0280 §7 and §8 with an
// independent XML decoder: the forwarded message is in jabber:client.
func TestAppendCopy(t *testing.T) {
	for _, tc := range []struct{ name, msg, dir string }{
		{"received", `<message from='bob@localhost/x' to='alice@localhost/one' type='chat' id='m1'><body>hi &amp; bye</body></message>`, "received"},
		{"sent, explicit namespace", `<message xmlns='jabber:client' from='alice@localhost/one' to='bob@localhost' type='chat'><body>hi</body></message>`, "sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendCopy(nil, tc.dir, "alice@localhost", "alice@localhost/two", []byte("chat"), []byte(tc.msg))
			var m struct {
				XMLName xml.Name `xml:"message"`
				From    string   `xml:"from,attr"`
				To      string   `xml:"to,attr"`
				Type    string   `xml:"type,attr"`
				Dir     []struct {
					XMLName   xml.Name
					Forwarded struct {
						XMLName xml.Name `xml:"urn:xmpp:forward:0 forwarded"`
						Message struct {
							XMLName xml.Name `xml:"jabber:client message"`
							From    string   `xml:"from,attr"`
							Body    string   `xml:"jabber:client body"`
						} `xml:"jabber:client message"`
					} `xml:"urn:xmpp:forward:0 forwarded"`
				} `xml:",any"`
			}
			if err := xml.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if m.From != "alice@localhost" || m.To != "alice@localhost/two" || m.Type != "chat" {
				t.Errorf("wrapper addresses: %s", b)
			}
			if len(m.Dir) != 1 || m.Dir[0].XMLName.Local != tc.dir || m.Dir[0].XMLName.Space != NS {
				t.Fatalf("no <%s xmlns='%s'>: %s", tc.dir, NS, b)
			}
			if m.Dir[0].Forwarded.Message.Body == "" {
				t.Errorf("forwarded message not in jabber:client or without body: %s", b)
			}
			if !IsCopy(b) {
				t.Errorf("IsCopy(%s) = false", b)
			}
			if IsCopy([]byte(tc.msg)) {
				t.Errorf("IsCopy(original) = true")
			}
		})
	}
}

type nopTransport struct {
	mu  sync.Mutex
	got []string
}

func (t *nopTransport) Push(b []byte) bool {
	t.mu.Lock()
	t.got = append(t.got, string(b))
	t.mu.Unlock()
	return true
}
func (t *nopTransport) Close(stanza.StreamCondition, string) {}

func bound(t *testing.T, full string) (*session.Bound, *nopTransport) {
	t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	tr := &nopTransport{}
	return session.New(j, tr, session.Options{}), tr
}

// TestState: enable is idempotent, disable and Closed forget, and the
// count that lets routing skip everything goes back to zero.
func TestState(t *testing.T) {
	c := New()
	one, _ := bound(t, "alice@localhost/one")
	two, _ := bound(t, "alice@localhost/two")
	c.Enable(one)
	c.Enable(one)
	c.Enable(two)
	if !c.Enabled(one) || !c.Enabled(two) || c.total.Load() != 2 {
		t.Fatalf("after enable: %v %v %d", c.Enabled(one), c.Enabled(two), c.total.Load())
	}
	c.Disable(one)
	c.Disable(one)
	if c.Enabled(one) || !c.Enabled(two) || c.total.Load() != 1 {
		t.Fatalf("after disable: %v %v %d", c.Enabled(one), c.Enabled(two), c.total.Load())
	}
	c.Closed(two)
	if c.Enabled(two) || c.total.Load() != 0 || len(c.enabledOf("alice@localhost")) != 0 {
		t.Fatalf("after closed: %v %d", c.Enabled(two), c.total.Load())
	}
	three, _ := bound(t, "alice@localhost/three")
	three.Close("", "")
	c.Enable(three)
	if c.Enabled(three) {
		t.Fatal("a closing session was enabled")
	}
	var nilState *State
	nilState.Closed(one)
	if nilState.Enabled(one) {
		t.Fatal("nil state enabled")
	}
}

// TestCopies drives the hooks directly: who gets which copy.
func TestCopies(t *testing.T) {
	c := New()
	one, t1 := bound(t, "alice@localhost/one")
	two, t2 := bound(t, "alice@localhost/two")
	three, t3 := bound(t, "alice@localhost/three") // not enabled
	bob, tb := bound(t, "bob@localhost/b")
	c.Enable(one)
	c.Enable(two)
	c.Enable(bob)
	reset := func() {
		for _, tr := range []*nopTransport{t1, t2, t3, tb} {
			tr.got = nil
		}
	}
	msg := func(body string) (*stanza.Stanza, []byte) {
		raw := []byte("<message type='chat' to='x'>" + body + "</message>")
		return &stanza.Stanza{Kind: stanza.Message, Type: []byte("chat"), Tok: scanned(t, string(raw))}, raw
	}
	alice := []byte("alice@localhost")

	// bob -> alice/one: alice/two gets received; three (disabled), one
	// (the recipient) nothing; bob's own session is the sender.
	st, raw := msg("<body>1</body>")
	c.ToFull(bob, st, raw, alice, one)
	if len(t2.got) != 1 || !strings.Contains(t2.got[0], "<received xmlns='urn:xmpp:carbons:2'>") || len(t1.got)+len(t3.got)+len(tb.got) != 0 {
		t.Fatalf("received: one %q two %q three %q bob %q", t1.got, t2.got, t3.got, tb.got)
	}
	reset()

	// alice/one -> bob: alice/two gets sent; bob's other enabled
	// resources (none) nothing.
	c.ToFull(one, st, raw, []byte("bob@localhost"), bob)
	if len(t2.got) != 1 || !strings.Contains(t2.got[0], "<sent xmlns='urn:xmpp:carbons:2'>") || len(t1.got)+len(t3.got)+len(tb.got) != 0 {
		t.Fatalf("sent: one %q two %q three %q bob %q", t1.got, t2.got, t3.got, tb.got)
	}
	reset()

	// To the bare JID, delivered to two: one gets received, two not.
	c.ToBare(bob, st, raw, alice, []*session.Bound{two}, true)
	if len(t1.got) != 1 || len(t2.got) != 0 {
		t.Fatalf("bare: one %q two %q", t1.got, t2.got)
	}
	reset()

	// To the bare JID, delivered to both: no copies.
	c.ToBare(bob, st, raw, alice, []*session.Bound{one, two}, true)
	if len(t1.got)+len(t2.got) != 0 {
		t.Fatalf("bare to both: one %q two %q", t1.got, t2.got)
	}
	// Stored offline: no received copies.
	c.ToBare(bob, st, raw, alice, nil, false)
	if len(t1.got)+len(t2.got) != 0 {
		t.Fatalf("offline: one %q two %q", t1.got, t2.got)
	}

	// Private: nothing either way.
	pst, praw := msg("<body>p</body><private xmlns='urn:xmpp:carbons:2'/>")
	c.ToFull(bob, pst, praw, alice, one)
	c.ToFull(one, pst, praw, []byte("bob@localhost"), bob)
	c.ToRemote(one, pst, praw)
	if len(t1.got)+len(t2.got) != 0 {
		t.Fatalf("private: one %q two %q", t1.got, t2.got)
	}

	// A private message from a MUC participant (to a full JID) is not
	// copied as received (XEP-0280 §6); one to a bare JID (an invitation)
	// is.
	mst, mraw := msg("<body>m</body><x xmlns='http://jabber.org/protocol/muc#user'/>")
	c.ToFull(bob, mst, mraw, alice, one)
	if len(t1.got)+len(t2.got) != 0 {
		t.Fatalf("muc pm: one %q two %q", t1.got, t2.got)
	}
	c.ToBare(bob, mst, mraw, alice, []*session.Bound{one}, true)
	if len(t2.got) != 1 {
		t.Fatalf("muc to bare: two %q", t2.got)
	}
	reset()

	// To another domain: sent.
	c.ToRemote(one, st, raw)
	if len(t2.got) != 1 || !strings.Contains(t2.got[0], "<sent ") || len(t1.got) != 0 {
		t.Fatalf("remote: one %q two %q", t1.got, t2.got)
	}
	reset()

	// alice/one -> alice/three: sent copy to two only.
	c.ToFull(one, st, raw, alice, three)
	if len(t2.got) != 1 || !strings.Contains(t2.got[0], "<sent ") || len(t1.got)+len(t3.got) != 0 {
		t.Fatalf("own: one %q two %q three %q", t1.got, t2.got, t3.got)
	}
}

// TestHooksAllocs: with nobody enabled, or only other users, the hooks
// allocate nothing.
func TestHooksAllocs(t *testing.T) {
	c := New()
	one, _ := bound(t, "alice@localhost/one")
	bob, _ := bound(t, "bob@localhost/b")
	carol, _ := bound(t, "carol@localhost/c")
	raw := []byte("<message type='chat'><body>x</body></message>")
	st := &stanza.Stanza{Kind: stanza.Message, Type: []byte("chat"), Tok: scanned(t, string(raw))}
	alice := []byte("alice@localhost")
	var buf [8]*session.Bound
	run := func() {
		c.ToFull(bob, st, raw, alice, one)
		targets := append(buf[:0], one)
		c.ToBare(bob, st, raw, alice, targets, true)
		c.ToRemote(one, st, raw)
	}
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("nobody enabled: %v allocs", n)
	}
	c.Enable(carol)
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("another user enabled: %v allocs", n)
	}
}
