package server_test

import (
	"fmt"
	"strings"
	"testing"

	"roost/server"
	"roost/storage"
)

// The server never drops a client for what that client asked for (issue
// 14): carol, offline, was sent 100 chat messages of 200 KB (all
// accepted: the default offline quota is 100); at her login they are
// flushed paced by her queue's free space (here 300 KB, a stanza and a
// half), not counted as slow reading, while alice sends her two more
// 100 KB messages. She stays connected and gets every message once. (That
// the flush's bytes do not count toward the slow-reader bound is proved
// deterministically in wire/outq's TestRequestedBytesDoNotCountTowardOverflow.)
func TestOfflineFlushPaced(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits.OutboundQueueBytes = 300 << 10 })
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "carol", "pw")
	alice := login(t, ts, "alice", "pw", "a")
	body := strings.Repeat("x", 200<<10)
	for i := 0; i < 100; i++ {
		alice.send(fmt.Sprintf("<message to='carol@localhost' type='chat' id='big%d'><body>%s</body></message>", i, body))
	}
	alice.expectNothing() // every message handled (stored) before carol logs in
	if n := len(storedIDs(t, ts, "carol")); n != 100 {
		t.Fatalf("%d messages stored offline, want 100", n)
	}
	carol := login(t, ts, "carol", "pw", "c")
	carol.send("<presence/>")
	carol.expect("carol's own presence", func(e *element) bool { return e.XMLName.Local == "presence" })
	unsolicited := strings.Repeat("y", 100<<10)
	for i := 0; i < 2; i++ {
		alice.send(fmt.Sprintf("<message to='carol@localhost/c' type='chat' id='mid%d'><body>%s</body></message>", i, unsolicited))
	}
	alice.send("<message to='carol@localhost/c' type='chat' id='last'><body>end</body></message>")
	alice.expectNothing() // routed before carol reads on
	got := map[string]int{}
	carol.expect("the last message", func(e *element) bool {
		if e.XMLName.Local == "error" {
			t.Fatalf("carol's stream ended: %s", e.Inner)
		}
		if e.XMLName.Local == "message" {
			got[e.attr("id")]++
		}
		return e.XMLName.Local == "message" && e.attr("id") == "last"
	})
	for len(got) < 103 {
		e := carol.next()
		if e.XMLName.Local == "message" {
			got[e.attr("id")]++
		}
	}
	for i := 0; i < 100; i++ {
		if id := fmt.Sprintf("big%d", i); got[id] != 1 {
			t.Errorf("%s received %d times", id, got[id])
		}
	}
	if n := len(storedIDs(t, ts, "carol")); n != 0 {
		t.Errorf("%d messages left in the offline store", n)
	}
}

// A roster result larger than the whole out-queue (1,000 items with long
// names, within the default limits) is delivered: it was asked for.
func TestBigRosterFetched(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	name := strings.Repeat("n", 1000)
	if err := ts.Store().Update(func(tx *storage.Tx) error {
		for i := 0; i < 1000; i++ {
			if _, err := tx.PutRosterItem("alice", storage.RosterItem{JID: fmt.Sprintf("contact%d@example.org", i), Name: name, Subscription: "none"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	alice := login(t, ts, "alice", "pw", "a")
	alice.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
	e := alice.expect("the roster", func(e *element) bool { return e.attr("id") == "r1" || e.XMLName.Local == "error" })
	if e.XMLName.Local != "iq" || e.attr("type") != "result" || strings.Count(e.Inner, "<item") != 1000 {
		t.Fatalf("roster: %s %s, %d items", e.XMLName.Local, e.attr("type"), strings.Count(e.Inner, "<item"))
	}
}
