package server_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"roost/server"
	"roost/storage"
)

// collect returns everything queued for the client up to a ping's pong.
func (c *rawClient) collect() []*element {
	c.t.Helper()
	c.send("<iq type='get' id='collect'><ping xmlns='urn:xmpp:ping'/></iq>")
	var out []*element
	for {
		e := c.next()
		if e.XMLName.Local == "iq" && e.attr("id") == "collect" {
			return out
		}
		out = append(out, e)
	}
}

func presenceOfType(els []*element, typ, from string) bool {
	for _, e := range els {
		if e.XMLName.Local == "presence" && e.attr("type") == typ && e.attr("from") == from {
			return true
		}
	}
	return false
}

// state renders one side's view: subscription, ask, approved, pending-in.
func state(t *testing.T, st *storage.Store, user, contact string) string {
	t.Helper()
	it, found, err := st.RosterItem(user, contact)
	if err != nil {
		t.Fatal(err)
	}
	var pending bool
	st.View(func(tx *storage.Tx) error {
		pending, err = tx.HasPendingIn(user, contact)
		return err
	})
	s := "-"
	if found {
		s = it.Subscription
		if it.Ask {
			s += "+ask"
		}
		if it.Approved {
			s += "+approved"
		}
	}
	if pending {
		s += "+pending-in"
	}
	return s
}

// TestSubscriptionStates walks RFC 6121 Appendix A: each row builds a
// state with real stanzas, sends one more, and checks both accounts'
// stored state and what the recipient was shown.
func TestSubscriptionStates(t *testing.T) {
	type step struct{ who, typ string } // who sends: "u" to c, or "c" to u
	var (
		uSub   = []step{{"u", "subscribe"}}
		uTo    = []step{{"u", "subscribe"}, {"c", "subscribed"}}
		uFrom  = []step{{"c", "subscribe"}, {"u", "subscribed"}}
		both   = append(append([]step{}, uTo...), uFrom...)
		preApp = []step{{"c", "subscribed"}}
	)
	for _, tc := range []struct {
		name      string
		setup     []step
		do        step
		u, c      string // u's item for c, c's item for u, after
		delivered bool   // the recipient saw the stanza
	}{
		{"none: subscribe asks and reaches the contact", nil, step{"u", "subscribe"}, "none+ask", "-+pending-in", true},
		{"pending-out: subscribe again is not delivered twice", uSub, step{"u", "subscribe"}, "none+ask", "-+pending-in", false},
		{"from: subscribe asks", uFrom, step{"u", "subscribe"}, "from+ask", "to+pending-in", true},
		{"to: subscribe is answered by the server", uTo, step{"u", "subscribe"}, "to", "from", false},
		{"pending-out: approval makes to/from", uSub, step{"c", "subscribed"}, "to", "from", true},
		{"from+pending-out: approval makes both", append(append([]step{}, uFrom...), step{"u", "subscribe"}), step{"c", "subscribed"}, "both", "both", true},
		{"subscribed without a request pre-approves", nil, step{"c", "subscribed"}, "-", "none+approved", false},
		{"pre-approved: subscribe is approved at once", preApp, step{"u", "subscribe"}, "to", "from", false},
		{"to: unsubscribe makes none", uTo, step{"u", "unsubscribe"}, "none", "none", true},
		{"both: unsubscribe makes from/to", both, step{"u", "unsubscribe"}, "from", "to", true},
		{"pending-out: unsubscribe withdraws the request", uSub, step{"u", "unsubscribe"}, "none", "-", true},
		{"to: contact cancels with unsubscribed", uTo, step{"c", "unsubscribed"}, "none", "none", true},
		{"pending-out: contact denies", uSub, step{"c", "unsubscribed"}, "none", "-", true},
		{"none: unsubscribed changes nothing", nil, step{"c", "unsubscribed"}, "-", "-", false},
		{"both: contact cancels with unsubscribed", both, step{"c", "unsubscribed"}, "from", "to", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, nil)
			ts.addUser(t, "u", "pw")
			ts.addUser(t, "c", "pw")
			u := login(t, ts, "u", "pw", "r")
			c := login(t, ts, "c", "pw", "r")
			for _, cl := range []*rawClient{u, c} {
				cl.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
				cl.send("<presence/>")
			}
			clients := map[string]*rawClient{"u": u, "c": c}
			peer := map[string]string{"u": "c@localhost", "c": "u@localhost"}
			send := func(s step) {
				clients[s.who].send(fmt.Sprintf("<presence to='%s' type='%s'/>", peer[s.who], s.typ))
				clients[s.who].collect()
			}
			for _, s := range tc.setup {
				send(s)
			}
			u.collect()
			c.collect()
			send(tc.do)
			recipient := map[string]string{"u": "c", "c": "u"}[tc.do.who]
			seen := clients[recipient].collect()
			if got := presenceOfType(seen, tc.do.typ, tc.do.who+"@localhost"); got != tc.delivered {
				t.Errorf("delivered to the recipient: %v, want %v (saw %v)", got, tc.delivered, seen)
			}
			if got := state(t, ts.Store(), "u", "c@localhost"); got != tc.u {
				t.Errorf("u's state for c: %s, want %s", got, tc.u)
			}
			if got := state(t, ts.Store(), "c", "u@localhost"); got != tc.c {
				t.Errorf("c's state for u: %s, want %s", got, tc.c)
			}
		})
	}
}

func TestSubscribeToUnknownUser(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "u", "pw")
	u := login(t, ts, "u", "pw", "r")
	u.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
	u.send("<presence/>")
	u.send("<presence to='ghost@localhost' type='subscribe'/>")
	got := u.collect()
	if !presenceOfType(got, "unsubscribed", "ghost@localhost") {
		t.Fatalf("want an unsubscribed answer for the missing account, got %v", got)
	}
	if s := state(t, ts.Store(), "u", "ghost@localhost"); s != "none" {
		t.Fatalf("state %s", s)
	}
}

// TestPresenceFlow: after a mutual subscription each side gets the
// other's presence and changes; a second login gets the contact's
// presence by probe; logging out sends unavailable; pending requests are
// delivered again at login.
func TestPresenceFlow(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "a", "pw")
	ts.addUser(t, "b", "pw")
	a := login(t, ts, "a", "pw", "1")
	b := login(t, ts, "b", "pw", "1")
	b.send("<presence/>")
	a.send("<presence/>")
	a.send("<presence to='b@localhost' type='subscribe'><status>it is me</status></presence>")
	req := b.expect("the request", func(e *element) bool { return e.attr("type") == "subscribe" })
	if req.attr("from") != "a@localhost" || !strings.Contains(req.Inner, "it is me") {
		t.Fatalf("request %s", req)
	}
	b.send("<presence to='a@localhost' type='subscribed'/>")
	a.expect("the approval", func(e *element) bool { return e.attr("type") == "subscribed" })
	a.expect("b's presence", func(e *element) bool {
		return e.XMLName.Local == "presence" && e.attr("type") == "" && e.attr("from") == "b@localhost/1"
	})
	b.send("<presence><show>away</show></presence>")
	away := a.expect("b's away", func(e *element) bool {
		return e.XMLName.Local == "presence" && e.attr("from") == "b@localhost/1" && strings.Contains(e.Inner, "away")
	})
	_ = away
	// A second resource of a gets b's presence by probe.
	a2 := login(t, ts, "a", "pw", "2")
	a2.send("<presence/>")
	a2.expect("b's presence by probe", func(e *element) bool {
		return e.XMLName.Local == "presence" && e.attr("from") == "b@localhost/1" && strings.Contains(e.Inner, "away")
	})
	// b leaves: a's resources get unavailable.
	b.send("</stream:stream>")
	a.expect("b's unavailable", func(e *element) bool {
		return e.attr("type") == "unavailable" && e.attr("from") == "b@localhost/1"
	})
	// A request made while the contact is offline waits for its login.
	ts.addUser(t, "c", "pw")
	a.send("<presence to='c@localhost' type='subscribe'/>")
	a.collect()
	c := login(t, ts, "c", "pw", "1")
	c.send("<presence/>")
	c.expect("the pending request", func(e *element) bool { return e.attr("type") == "subscribe" && e.attr("from") == "a@localhost" })
}

func TestOfflineMessages(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits.OfflineMessages = 2 })
	ts.addUser(t, "a", "pw")
	ts.addUser(t, "b", "pw")
	a := login(t, ts, "a", "pw", "1")
	for i := 1; i <= 3; i++ {
		a.send(fmt.Sprintf("<message to='b@localhost' type='chat' id='m%d'><body>note %d</body></message>", i, i))
	}
	a.send("<message to='b@localhost' type='headline'><body>not kept</body></message>")
	got := a.collect()
	if len(got) != 1 || got[0].attr("type") != "error" || got[0].attr("id") != "m3" || !strings.Contains(got[0].Inner, "service-unavailable") {
		t.Fatalf("over the quota of 2 the third message bounces, got %v", got)
	}
	b := login(t, ts, "b", "pw", "1")
	b.expectNothing() // nothing before available presence
	b.send("<presence/>")
	var bodies []string
	for _, e := range b.collect() {
		if e.XMLName.Local == "message" {
			if !strings.Contains(e.Inner, "urn:xmpp:delay") || e.attr("from") != "a@localhost/1" {
				t.Errorf("offline message without delay stamp or true from: %s", e)
			}
			bodies = append(bodies, e.Inner[strings.Index(e.Inner, "note"):][:6])
		}
	}
	if strings.Join(bodies, ",") != "note 1,note 2" {
		t.Fatalf("delivered %v", bodies)
	}
	// Delivered messages are gone from the store.
	b2 := login(t, ts, "b", "pw", "2")
	b2.send("<presence/>")
	for _, e := range b2.collect() {
		if e.XMLName.Local == "message" {
			t.Fatalf("delivered twice: %s", e)
		}
	}
}

func TestAccountDisco(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "a", "pw")
	ts.addUser(t, "b", "pw")
	a := login(t, ts, "a", "pw", "1")
	b := login(t, ts, "b", "pw", "1")
	query := "<iq type='get' id='d' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
	a.send(fmt.Sprintf(query, "a@localhost"))
	if e := a.expect("own disco", func(e *element) bool { return e.attr("id") == "d" }); !strings.Contains(e.Inner, "category='account'") {
		t.Fatalf("own account disco: %s", e)
	}
	b.send(fmt.Sprintf(query, "a@localhost"))
	if e := b.expect("stranger disco", func(e *element) bool { return e.attr("id") == "d" }); !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("a stranger should learn nothing: %s", e)
	}
	// Ping to a full JID is routed to the client, which answers.
	a.send("<iq type='get' id='p' to='b@localhost/1'><ping xmlns='urn:xmpp:ping'/></iq>")
	ping := b.expect("routed ping", func(e *element) bool { return e.attr("id") == "p" })
	if ping.attr("from") != "a@localhost/1" {
		t.Fatalf("ping %s", ping)
	}
}

// TestUnavailableOnAnyEnd: a session that ends without a goodbye (dropped
// TCP, stream error) still sends unavailable presence, to contacts and to
// JIDs it sent directed presence to.
func TestUnavailableOnAnyEnd(t *testing.T) {
	ts := startServer(t, nil)
	for _, u := range []string{"a", "b", "c"} {
		ts.addUser(t, u, "pw")
	}
	b := login(t, ts, "b", "pw", "1")
	b.send("<presence/>")
	c := login(t, ts, "c", "pw", "1")
	c.send("<presence/>")
	for _, end := range []struct {
		name string
		do   func(*rawClient)
	}{
		{"dropped TCP", func(a *rawClient) { a.conn.Close() }},
		{"stream error", func(a *rawClient) { a.send("<message><unclosed></message>") }},
	} {
		t.Run(end.name, func(t *testing.T) {
			a := login(t, ts, "a", "pw", "x")
			a.send("<presence/>")
			a.send("<presence to='b@localhost/1'/>") // directed, no subscription
			a.send("<presence to='c@localhost'/>")
			b.expect("directed presence", func(e *element) bool { return e.attr("from") == "a@localhost/x" && e.attr("type") == "" })
			c.expect("directed presence", func(e *element) bool { return e.attr("from") == "a@localhost/x" && e.attr("type") == "" })
			end.do(a)
			for _, peer := range []*rawClient{b, c} {
				peer.expect("unavailable", func(e *element) bool { return e.attr("from") == "a@localhost/x" && e.attr("type") == "unavailable" })
			}
		})
	}
}

// TestRosterRemoveCancelsBothWays: RFC 6121 §2.5.2.
func TestRosterRemoveCancelsBothWays(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "a", "pw")
	ts.addUser(t, "b", "pw")
	a := login(t, ts, "a", "pw", "1")
	b := login(t, ts, "b", "pw", "1")
	for _, cl := range []*rawClient{a, b} {
		cl.send("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
		cl.send("<presence/>")
	}
	for _, s := range []struct {
		c      *rawClient
		to, ty string
	}{{a, "b", "subscribe"}, {b, "a", "subscribed"}, {b, "a", "subscribe"}, {a, "b", "subscribed"}} {
		s.c.send("<presence to='" + s.to + "@localhost' type='" + s.ty + "'/>")
		s.c.collect()
	}
	if state(t, ts.Store(), "a", "b@localhost") != "both" || state(t, ts.Store(), "b", "a@localhost") != "both" {
		t.Fatal("setup did not reach both")
	}
	b.collect()
	a.send("<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='b@localhost' subscription='remove'/></query></iq>")
	a.collect()
	seen := b.collect()
	if !presenceOfType(seen, "unsubscribe", "a@localhost") || !presenceOfType(seen, "unsubscribed", "a@localhost") || !presenceOfType(seen, "unavailable", "a@localhost/1") {
		t.Fatalf("b should see unsubscribe, unsubscribed and a's unavailable: %v", seen)
	}
	if got := state(t, ts.Store(), "a", "b@localhost"); got != "-" {
		t.Errorf("a's item: %s", got)
	}
	if got := state(t, ts.Store(), "b", "a@localhost"); got != "none" {
		t.Errorf("b's item: %s", got)
	}
}

// TestPresenceNeverWritesTheStore: presence changes leave the bbolt file
// untouched (SD cards wear out).
func TestPresenceNeverWritesTheStore(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "a", "pw")
	a := login(t, ts, "a", "pw", "1")
	a.send("<presence/>")
	a.collect()
	before, err := os.Stat(ts.Store().Path())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	for i := 0; i < 50; i++ {
		a.send(fmt.Sprintf("<presence><show>away</show><status>%d</status></presence>", i))
	}
	a.send("<presence type='unavailable'/>")
	a.send("<presence/>")
	a.collect()
	after, _ := os.Stat(ts.Store().Path())
	if !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Fatalf("the store file changed: %v/%d -> %v/%d", before.ModTime(), before.Size(), after.ModTime(), after.Size())
	}
}
