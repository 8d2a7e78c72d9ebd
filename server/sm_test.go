package server_test

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"roost/server"
	"roost/server/session"
	"roost/storage"
)

// Tests of issue 14 in the session core and client streams: XEP-0198
// stream management (enable, counting, acks, resumption), XEP-0352 client
// state indication, and what happens to stanzas a session could not
// deliver. Raw clients on real sockets.

// authOnly connects with STARTTLS and SASL PLAIN and opens the
// authenticated stream, without binding: its features are returned.
func authOnly(t *testing.T, ts *testServer, user, password string) (*rawClient, *element) {
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
	return c, c.open(ts.cfg.Domain)
}

// enable turns stream management on and returns <enabled/>.
func (c *rawClient) enable(resume bool) *element {
	c.t.Helper()
	if resume {
		c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	} else {
		c.send("<enable xmlns='urn:xmpp:sm:3'/>")
	}
	e := c.next()
	if e.XMLName.Local != "enabled" || e.XMLName.Space != session.NSSM {
		c.t.Fatalf("expected <enabled/>, got %s", e)
	}
	return e
}

// isMsg matches a message with the given id.
func isMsg(id string) func(*element) bool {
	return func(e *element) bool { return e.XMLName.Local == "message" && e.attr("id") == id }
}

// askH sends <r/> and returns the h of the server's <a/>.
func (c *rawClient) askH() uint32 {
	c.t.Helper()
	c.send("<r xmlns='urn:xmpp:sm:3'/>")
	e := c.expect("the server's <a/>", func(e *element) bool { return e.XMLName.Local == "a" })
	h, err := strconv.ParseUint(e.attr("h"), 10, 32)
	if err != nil {
		c.t.Fatalf("bad h in %s", e)
	}
	return uint32(h)
}

func TestSMFeaturesAndEnable(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	c, f := authOnly(t, ts, "alice", "pw")
	if !strings.Contains(f.Inner, "urn:xmpp:sm:3") || !strings.Contains(f.Inner, "urn:xmpp:csi:0") {
		t.Fatalf("features after authentication lack sm or csi: %s", f.Inner)
	}
	// Enable before bind: refused, the stream goes on (XEP-0198 §3).
	c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	if e := c.next(); e.XMLName.Local != "failed" || !strings.Contains(e.Inner, "unexpected-request") {
		t.Fatalf("enable before bind: want failed/unexpected-request, got %s", e)
	}
	c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>")
	if e := c.next(); e.attr("type") != "result" {
		t.Fatalf("bind: %s", e)
	}
	e := c.enable(true)
	if e.attr("id") == "" || e.attr("resume") != "true" || e.attr("max") != "300" {
		t.Fatalf("enabled lacks id, resume='true' or max='300': %s", e)
	}
	// A second enable is refused.
	c.send("<enable xmlns='urn:xmpp:sm:3'/>")
	if e := c.next(); e.XMLName.Local != "failed" {
		t.Fatalf("second enable: want failed, got %s", e)
	}
}

func TestSMBeforeAuth(t *testing.T) {
	ts := startServer(t, nil)
	c := dialRaw(t, ts.c2s)
	c.open(ts.cfg.Domain)
	c.starttls(ts)
	c.open(ts.cfg.Domain)
	for _, el := range []string{"<enable xmlns='urn:xmpp:sm:3'/>", "<resume xmlns='urn:xmpp:sm:3' previd='x' h='0'/>"} {
		c.send(el)
		if e := c.next(); e.XMLName.Local != "failed" || !strings.Contains(e.Inner, "unexpected-request") {
			t.Fatalf("%s before auth: want failed/unexpected-request, got %s", el, e)
		}
	}
}

// TestSMCounting: h counts stanzas both ways, never nonzas; the server
// asks for an acknowledgement by itself after a few stanzas.
func TestSMCounting(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "a")
	b := login(t, ts, "bob", "pw", "b")
	a.enable(false)
	if h := a.askH(); h != 0 {
		t.Fatalf("h before any stanza = %d, want 0", h)
	}
	for i := 0; i < 3; i++ {
		a.send(fmt.Sprintf("<iq type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>", i))
	}
	a.send("<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='0'/>")
	if h := a.askH(); h != 3 { // 3 iqs; the <r/>, <a/> and this <r/> are nonzas
		t.Fatalf("h after 3 iqs and nonzas = %d, want 3", h)
	}
	// 3 pong results reached alice (read, before the <a/>); now bob
	// sends 5 messages: the server asks for an ack as soon as 5 stanzas
	// are unacknowledged, that is after the second message.
	for i := 0; i < 5; i++ {
		b.send(fmt.Sprintf("<message to='alice@localhost/a' type='chat' id='m%d'><body>%d</body></message>", i, i))
	}
	received := 0
	a.expect("the server's <r/>", func(e *element) bool {
		if e.XMLName.Local == "iq" || e.XMLName.Local == "message" {
			received++
		}
		return e.XMLName.Local == "r" && e.XMLName.Space == session.NSSM
	})
	if 3+received != 5 {
		t.Fatalf("the server asked for an ack after %d stanzas, want 5 (ackEvery)", 3+received)
	}
	// Acknowledge everything: accepted, nothing more.
	for received < 5 {
		a.expect("the rest", func(e *element) bool {
			if e.XMLName.Local == "iq" || e.XMLName.Local == "message" {
				received++
				return true
			}
			return false
		})
	}
	a.send("<a xmlns='urn:xmpp:sm:3' h='8'/>")
	a.expectNothing()
}

// TestSMCounterWrap: both counters wrap at 2^32 (XEP-0198 §5).
func TestSMCounterWrap(t *testing.T) {
	defer session.SetCounterStartForTest(1<<32 - 2)()
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	a := login(t, ts, "alice", "pw", "a")
	a.enable(false)
	for i := 0; i < 3; i++ {
		a.send(fmt.Sprintf("<iq type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>", i))
	}
	if h := a.askH(); h != 1 { // 2^32-2 + 3 wraps to 1
		t.Fatalf("server h = %d, want 1 after the wrap", h)
	}
	// (askH read the 3 results before the server's <a/>.)
	// The client's count, started at the same value, wraps too: an ack
	// of h='1' covers the 3 results and is accepted.
	a.send("<a xmlns='urn:xmpp:sm:3' h='1'/>")
	a.expectNothing()
	// One more stanza was sent (the pong of expectNothing): h='3' is
	// one too many.
	a.send("<a xmlns='urn:xmpp:sm:3' h='3'/>")
	a.expectStreamError("undefined-condition")
}

// TestSMOverAck: <a/> for more than was sent ends the stream with
// undefined-condition and a text naming both numbers.
func TestSMOverAck(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	a := login(t, ts, "alice", "pw", "a")
	a.enable(false)
	a.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	a.expect("pong", func(e *element) bool { return e.attr("id") == "p" })
	a.send("<a xmlns='urn:xmpp:sm:3' h='7'/>")
	for {
		e, err := a.tryNext()
		if err != nil {
			t.Fatalf("want a stream error, got %v", err)
		}
		if e.XMLName.Local != "error" {
			continue
		}
		if !strings.Contains(e.Inner, "undefined-condition") || !strings.Contains(e.Inner, "7") || !strings.Contains(e.Inner, "count is 1") {
			t.Fatalf("want undefined-condition naming h=7 and the 1 sent, got %s", e.Inner)
		}
		return
	}
}

// dropped ends a raw client's connection without a closing tag, as a
// lost link would.
func (c *rawClient) dropped() { c.conn.Close() }

// TestSMResumeRefused: a wrong id, and another account's session's id,
// get <failed><item-not-found/>, and the stream can still bind.
func TestSMResumeRefused(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "mallory", "pw")
	a := login(t, ts, "alice", "pw", "a")
	id := a.enable(true).attr("id")
	a.dropped()

	for _, tc := range []struct{ user, previd string }{
		{"alice", "no-such-id"},
		{"mallory", id},
	} {
		c, _ := authOnly(t, ts, tc.user, "pw")
		c.send("<resume xmlns='urn:xmpp:sm:3' previd='" + tc.previd + "' h='0'/>")
		if e := c.next(); e.XMLName.Local != "failed" || !strings.Contains(e.Inner, "item-not-found") {
			t.Fatalf("%s resuming %s: want failed/item-not-found, got %s", tc.user, tc.previd, e)
		}
		c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
		if e := c.next(); e.attr("type") != "result" {
			t.Fatalf("bind after a refused resumption: %s", e)
		}
	}
	// Alice herself can still resume it: mallory's try did not spend it.
	c, _ := authOnly(t, ts, "alice", "pw")
	c.send("<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='0'/>")
	if e := c.next(); e.XMLName.Local != "resumed" {
		t.Fatalf("alice's resumption: %s", e)
	}
}

// TestSMResumeRetransmits: after the link is lost, a resumption gets
// exactly the stanzas the client's h did not cover, in order, once,
// including those sent while the session was detached; an old
// connection still open is closed.
func TestSMResumeRetransmits(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "a")
	b := login(t, ts, "bob", "pw", "b")
	id := a.enable(true).attr("id")
	for i := 1; i <= 3; i++ {
		b.send(fmt.Sprintf("<message to='alice@localhost/a' type='chat' id='m%d'><body>%d</body></message>", i, i))
		a.expect("m"+strconv.Itoa(i), isMsg("m"+strconv.Itoa(i)))
	}
	a.send("<a xmlns='urn:xmpp:sm:3' h='2'/>") // m3 is received but not acknowledged
	a.dropped()
	// The session is still routable: these are kept for the resumption
	// (or, if the server has not noticed the loss yet, written to the
	// dead socket and kept unacknowledged: the same for the client).
	for i := 4; i <= 5; i++ {
		b.send(fmt.Sprintf("<message to='alice@localhost/a' type='chat' id='m%d'><body>%d</body></message>", i, i))
	}
	b.drain()
	if b2 := b; b2 == nil {
		t.Fatal()
	}
	// A bare-JID message reaches the detached session too: it is the
	// only (available?) resource. Alice never sent presence, so it goes
	// offline instead; only full-JID traffic is checked here.

	c, _ := authOnly(t, ts, "alice", "pw")
	c.send("<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='2'/>")
	e := c.next()
	if e.XMLName.Local != "resumed" || e.attr("previd") != id || e.attr("h") != "0" {
		t.Fatalf("want <resumed previd='%s' h='0'/>, got %s", id, e)
	}
	for _, want := range []string{"m3", "m4", "m5"} {
		e := c.expect(want, func(e *element) bool { return e.XMLName.Local == "message" || e.XMLName.Local == "iq" })
		if e.attr("id") != want {
			t.Fatalf("retransmission out of order: want %s, got %s", want, e)
		}
	}
	// Nothing else (no duplicate): the next stanza is the answer to a
	// ping, possibly after the server's <r/>.
	c.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		e := c.next()
		if e.XMLName.Local == "r" {
			continue
		}
		if e.XMLName.Local != "iq" || e.attr("id") != "sync" {
			t.Fatalf("after the retransmission want nothing before the pong, got %s", e)
		}
		break
	}
	// The session is alive on the new connection: h counts on.
	b.send("<message to='alice@localhost/a' type='chat' id='m6'><body>6</body></message>")
	c.expect("m6", isMsg("m6"))
	c.send("<a xmlns='urn:xmpp:sm:3' h='6'/>") // m3, m4, m5, pong, m6 = 2 + 5... h counts from 2
	// 2 + m3 m4 m5 + pong + m6 = 7; 6 is fine (not an over-ack).
	c.expectNothing()

	// Resuming while the previous connection is still open closes it.
	d, _ := authOnly(t, ts, "alice", "pw")
	d.send("<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='6'/>")
	if e := d.next(); e.XMLName.Local != "resumed" {
		t.Fatalf("second resumption: %s", e)
	}
	c.expectStreamError("conflict")
}

// TestCSIHoldsPresence: while the client is inactive, a contact's 100
// presence changes reach it as one (the latest), and a chat message comes
// through at once (XEP-0352).
func TestCSIHoldsPresence(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "a")
	b := login(t, ts, "bob", "pw", "b")
	a.send("<inactive xmlns='urn:xmpp:csi:0'/>")
	a.expectNothing() // the stream goes on (it used to end here)
	for i := 0; i < 100; i++ {
		b.send(fmt.Sprintf("<presence to='alice@localhost/a'><status>s%d</status></presence>", i))
	}
	b.drain()
	b.send("<message to='alice@localhost/a' type='chat' id='now'><body>wake up</body></message>")
	e := a.next()
	if e.XMLName.Local != "presence" || !strings.Contains(e.Inner, "s99") {
		t.Fatalf("want the latest presence (s99) first, got %s", e)
	}
	if e := a.next(); e.XMLName.Local != "message" || e.attr("id") != "now" {
		t.Fatalf("want the chat message right after the one presence, got %s", e)
	}
	a.expectNothing()
	// <active/> flushes what is held.
	for i := 0; i < 3; i++ {
		b.send(fmt.Sprintf("<presence to='alice@localhost/a'><status>t%d</status></presence>", i))
	}
	b.drain()
	a.send("<active xmlns='urn:xmpp:csi:0'/>")
	if e := a.next(); e.XMLName.Local != "presence" || !strings.Contains(e.Inner, "t2") {
		t.Fatalf("after <active/> want the held presence t2, got %s", e)
	}
	a.expectNothing()
}

// waitSessions waits until the server has n bound sessions.
func waitSessions(t *testing.T, ts *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ts.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, want %d", ts.Sessions(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// offlineIDs logs user in, sends initial presence and collects the ids
// of messages with a delay stamp until the pong that follows.
func offlineIDs(t *testing.T, ts *testServer, user, resource string) []string {
	t.Helper()
	c := login(t, ts, user, "pw", resource)
	c.send("<presence/>")
	c.send("<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>")
	var ids []string
	c.expect("the pong", func(e *element) bool {
		if e.XMLName.Local == "message" {
			if !strings.Contains(e.Inner, "urn:xmpp:delay") {
				t.Errorf("offline message without a delay stamp: %s", e)
			}
			ids = append(ids, e.attr("id"))
		}
		return e.XMLName.Local == "iq" && e.attr("id") == "end"
	})
	return ids
}

// storedIDs are the ids of the messages in user's offline store, read
// without delivering them.
func storedIDs(t *testing.T, ts *testServer, user string) []string {
	t.Helper()
	var msgs []storage.OfflineMessage
	if err := ts.Store().View(func(tx *storage.Tx) (err error) { msgs, err = tx.Offline(user); return err }); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range msgs {
		if i := strings.Index(string(m.Stanza), "id='"); i >= 0 {
			rest := string(m.Stanza)[i+4:]
			ids = append(ids, rest[:strings.IndexByte(rest, '\'')])
		}
	}
	return ids
}

// TestResumeTimeoutUndelivered: when the resume window passes, what the
// session had not delivered (unacknowledged, and sent while detached) is
// handed on: chat messages end up in offline storage, in order.
func TestResumeTimeoutUndelivered(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits.ResumeTimeout = server.Duration(300 * time.Millisecond) })
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	a := login(t, ts, "alice", "pw", "a")
	b := login(t, ts, "bob", "pw", "b")
	a.enable(true)
	b.send("<message to='alice@localhost/a' type='chat' id='u1'><body>1</body></message>")
	a.expect("u1", isMsg("u1"))
	a.dropped() // never acknowledged
	b.send("<message to='alice@localhost/a' type='chat' id='u2'><body>2</body></message>")
	b.drain()
	waitSessions(t, ts, 1) // the window passed: only bob is left
	got := offlineIDs(t, ts, "alice", "a2")
	if strings.Join(got, ",") != "u1,u2" {
		t.Fatalf("offline after the resume timeout: %v, want [u1 u2]", got)
	}
}

// TestSlowReaderUndelivered: stanzas queued for a client dropped as a
// slow reader are not lost: each message bob sent either reached the
// client's socket (it reads them afterwards), went offline, or came back
// to bob as an error. Counted, not sampled.
func TestSlowReaderUndelivered(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits.StanzaBytes = 10000
		c.Limits.OutboundQueueBytes = 64 << 10
		c.Limits.OfflineMessages = 1000
	})
	ts.addUser(t, "fast", "pw")
	ts.addUser(t, "slow", "pw")
	fast := login(t, ts, "fast", "pw", "f")
	slow := login(t, ts, "slow", "pw", "s")
	body := strings.Repeat("x", 1000)
	// Paced (a round trip every 50) so that the writer keeps up until the
	// socket buffers are full; then the queue fills and overflows with
	// stanzas in it. Bounded: 20,000 messages are many times the buffers.
	bounced := map[string]bool{}
	collect := func(e *element) {
		if e.XMLName.Local == "message" && e.attr("type") == "error" {
			bounced[e.attr("id")] = true
		}
	}
	n := 0
	for ; n < 20000; n++ {
		fast.send(fmt.Sprintf("<message to='slow@localhost/s' type='chat' id='q%d'><body>%s</body></message>", n, body))
		if n%50 == 49 {
			fast.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
			fast.expect("the pong", func(e *element) bool { collect(e); return e.XMLName.Local == "iq" && e.attr("id") == "sync" })
			if ts.Sessions() == 1 {
				n++
				break
			}
		}
	}
	fast.send("<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>")
	fast.expect("the pong", func(e *element) bool { collect(e); return e.XMLName.Local == "iq" && e.attr("id") == "end" })
	// The slow client now reads what reached its socket, up to the
	// stream error.
	got := map[string]bool{}
	for {
		e, err := slow.tryNext()
		if err != nil {
			t.Logf("the slow client's stream ended: %v", err)
			break
		}
		if e.XMLName.Local == "message" {
			got[e.attr("id")] = true
		}
		if e.XMLName.Local == "error" {
			if !strings.Contains(e.Inner, "policy-violation") {
				t.Fatalf("want policy-violation, got %s", e.Inner)
			}
			break
		}
	}
	waitSessions(t, ts, 1)
	// What was still queued at the drop is handed on (Undelivered) once
	// the slow session's writer has stopped, after the reads above; with
	// the offline quota full by then it is bounced to the sender: collect
	// those bounces until every message is accounted for (deadline 10 s).
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		offline := storedIDs(t, ts, "slow")
		missing := 0
		for j := 0; j < n; j++ {
			id := fmt.Sprintf("q%d", j)
			if !got[id] && !bounced[id] && !contains(offline, id) {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		ping := fmt.Sprintf("late%d", i)
		fast.send("<iq type='get' id='" + ping + "'><ping xmlns='urn:xmpp:ping'/></iq>")
		fast.expect("the pong", func(e *element) bool { collect(e); return e.XMLName.Local == "iq" && e.attr("id") == ping })
	}
	offline := offlineIDs(t, ts, "slow", "s2")
	seen := map[string]int{}
	for id := range got {
		seen[id]++
	}
	for _, id := range offline {
		seen[id]++
	}
	for id := range bounced {
		seen[id]++
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("q%d", i)
		if seen[id] != 1 {
			t.Errorf("message %s accounted for %d times (read %v, offline %v, bounced %v)", id, seen[id], got[id], contains(offline, id), bounced[id])
		}
	}
	t.Logf("read before the drop: %d, offline: %d, bounced: %d", len(got), len(offline), len(bounced))
	if len(got)+len(bounced) >= n {
		t.Fatalf("nothing went offline: the test did not drop the slow reader with stanzas queued")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
