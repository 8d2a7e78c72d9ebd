package lastactivity

import (
	"path/filepath"
	"roost/server/session/sessiontest"
	"strings"
	"testing"
	"time"

	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
)

// XEP-0012: the server's uptime; an account's idle time since its last
// resource went away (0 while one is available), told to itself and to
// contacts with a presence subscription only (§5).
func TestLastActivity(t *testing.T) {
	st, err := storage.Open(filepath.Join(t.TempDir(), "roost.db"), storage.Options{ScramIterations: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.PutRosterItem("alice", storage.RosterItem{JID: "bob@localhost", Subscription: "from"}); err != nil {
		t.Fatal(err)
	}
	rt := router.New()
	l := &Service{Domain: "localhost", Store: st, Router: rt, Started: time.Now().Add(-100 * time.Second)}
	rec := &sessiontest.Recorder{}
	mk := func(s string) *session.Bound {
		j, _ := jid.Parse(s)
		return session.New(j, rec, session.Options{})
	}
	alice, bob, carol := mk("alice@localhost/one"), mk("bob@localhost/r"), mk("carol@localhost/r")
	do := func(sess *session.Bound, owner, el string, want ...string) {
		t.Helper()
		var o jid.JID
		if owner != "" {
			o, _ = jid.Parse(owner)
		}
		l.IQ(sess, sessiontest.Parse(t, el), o)
		got := rec.Take()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Fatalf("%s: got %q, want %q", el, got, w)
			}
		}
	}
	q := "<iq type='get' id='q'><query xmlns='jabber:iq:last'/></iq>"
	do(bob, "", q, "type='result'", "<query xmlns='jabber:iq:last' seconds='10")
	// Not seen since the start: seconds since the start.
	do(bob, "alice@localhost", q, "type='result'", "seconds='10")
	do(carol, "alice@localhost", q, "forbidden")
	do(bob, "nobody@localhost", q, "service-unavailable")
	alice.SetPresence(true, 0, []byte("<presence/>"))
	rt.BindReplace(alice, 0)
	do(bob, "alice@localhost", q, "seconds='0'")
	alice.SetPresence(false, 0, nil)
	l.Gone(alice)
	rt.Unbind(alice)
	do(alice, "alice@localhost", q, "seconds='0'")
	l.mu.Lock()
	l.gone["alice@localhost"] = time.Now().Add(-42 * time.Second)
	l.mu.Unlock()
	do(bob, "alice@localhost", q, "seconds='42'")
}
