package blocking_test

import (
	"io"
	"log/slog"
	"path/filepath"
	"roost/server/session/sessiontest"
	"strings"
	"sync"
	"testing"

	"roost/server/blocking"
	"roost/server/carbons"
	"roost/server/im"
	"roost/server/route"
	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

type env struct {
	t     *testing.T
	route *route.Service
	block *blocking.Service
	store *storage.Store
}

func newEnv(t *testing.T, max int) *env {
	t.Helper()
	st, err := storage.Open(filepath.Join(t.TempDir(), "roost.db"), storage.Options{ScramIterations: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt := router.New()
	b := &blocking.Service{Domain: "localhost", Store: st, Router: rt, Max: max, Log: log}
	r := &route.Service{Domain: "localhost", AcceptFrom: "owners", Store: st, Router: rt, Log: log, Carbons: carbons.New(),
		IM:       &im.Service{Domain: "localhost", Store: st, Router: rt, Log: log, RosterLimit: 1000, OfflineQuota: 100},
		Blocking: b}
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	// alice and bob are mutual contacts.
	for _, p := range [][2]string{{"alice", "bob@localhost"}, {"bob", "alice@localhost"}} {
		if _, err := st.PutRosterItem(p[0], storage.RosterItem{JID: p[1], Subscription: "both"}); err != nil {
			t.Fatal(err)
		}
	}
	return &env{t: t, route: r, block: b, store: st}
}

func (e *env) bind(full string) (*session.Bound, *sessiontest.Recorder) {
	e.t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		e.t.Fatal(err)
	}
	rec := &sessiontest.Recorder{}
	b := session.New(j, rec, session.Options{})
	e.route.Router.BindReplace(b, 0)
	return b, rec
}

// send routes el as sess's client stream would hand it over.
func (e *env) send(sess *session.Bound, el string) {
	e.t.Helper()
	st := *sessiontest.Parse(e.t, el)
	stamped := stanza.AppendForward(nil, &st, sess.JID().String(), "")
	e.route.Route(sess, &st, stamped)
}

func expect(t *testing.T, who, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("%s got %q, want %q in it", who, got, w)
		}
	}
}

func refuse(t *testing.T, who, got string, not ...string) {
	t.Helper()
	for _, w := range not {
		if strings.Contains(got, w) {
			t.Fatalf("%s got %q, want no %q", who, got, w)
		}
	}
}

// XEP-0191 through the routing rules: the list, pushes to the resources
// that asked for it, stanzas and presence stopped both ways, unblock.
func TestBlockingRoutes(t *testing.T) {
	e := newEnv(t, 10)
	a1, ra1 := e.bind("alice@localhost/one")
	_, ra2 := e.bind("alice@localhost/two")
	a3, ra3 := e.bind("alice@localhost/three")
	b1, rb1 := e.bind("bob@localhost/r")
	for _, s := range []*session.Bound{a1, a3, b1} {
		e.send(s, "<presence/>")
	}
	ra1.Take()
	ra2.Take()
	ra3.Take()
	rb1.Take()
	e.send(a1, "<iq type='get' id='l1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	expect(t, "alice", ra1.Take(), "type='result'", "id='l1'", "<blocklist xmlns='urn:xmpp:blocking'></blocklist>")
	e.send(a3, "<iq type='get' id='l3'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	ra3.Take()

	commits := e.store.Commits()
	e.send(a1, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='Bob@LocalHost'/></block></iq>")
	expect(t, "alice/one", ra1.Take(), "type='result'", "id='b1'")
	if n := e.store.Commits() - commits; n != 1 {
		t.Fatalf("block: %d commits, want 1", n)
	}
	// §3.3: the push goes to the resources that asked for the list only.
	expect(t, "alice/three", ra3.Take(), "type='set'", "from='alice@localhost'", "<block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block>")
	refuse(t, "alice/two", ra2.Take(), "block")
	// §3.3: bob sees alice's available resources go unavailable.
	expect(t, "bob", rb1.Take(), "<presence type='unavailable' from='alice@localhost/one' to='bob@localhost'/>",
		"from='alice@localhost/three'")

	// §3.5: bob's message is refused as if alice did not exist; nothing
	// reaches alice nor offline storage.
	e.send(b1, "<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>")
	expect(t, "bob", rb1.Take(), "type='error'", "id='m1'", "service-unavailable")
	refuse(t, "alice", ra1.Take()+ra3.Take(), "m1")
	e.send(b1, "<iq to='alice@localhost/one' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	expect(t, "bob", rb1.Take(), "id='p1'", "service-unavailable")
	refuse(t, "alice", ra1.Take(), "p1")
	e.send(b1, "<presence to='alice@localhost'/>")
	e.send(b1, "<presence><show>away</show></presence>")
	refuse(t, "alice", ra1.Take()+ra3.Take(), "bob@localhost")
	// Alice's own messages to bob: not-acceptable with the blocked error.
	e.send(a1, "<message to='bob@localhost/r' type='chat' id='m2'><body>hi</body></message>")
	expect(t, "alice", ra1.Take(), "id='m2'", "not-acceptable", "<blocked xmlns='urn:xmpp:blocking:errors'/></error>")
	refuse(t, "bob", rb1.Take(), "m2")
	// Alice's broadcast presence does not reach bob.
	e.send(a1, "<presence><show>dnd</show></presence>")
	refuse(t, "bob", rb1.Take(), "dnd")

	e.send(a1, "<iq type='get' id='l2'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	expect(t, "alice", ra1.Take(), "<item jid='bob@localhost'/>")

	// §3.4: unblock all; presence flows again both ways.
	e.send(a1, "<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>")
	got := ra1.Take()
	expect(t, "alice/one", got, "id='u1'", "<unblock xmlns='urn:xmpp:blocking'/>", "<show>away</show>")
	expect(t, "bob", rb1.Take(), "dnd")
	e.send(b1, "<message to='alice@localhost/one' type='chat' id='m3'><body>hi</body></message>")
	expect(t, "alice", ra1.Take(), "id='m3'")
	refuse(t, "bob", rb1.Take(), "error")
	if e.block.Active() {
		t.Fatal("still active after unblock all")
	}
}

// Bad input: malformed JIDs, an empty block, more than Max items; another
// account's list is refused.
func TestBlockingBounds(t *testing.T) {
	e := newEnv(t, 2)
	a1, ra1 := e.bind("alice@localhost/one")
	b1, rb1 := e.bind("bob@localhost/r")
	e.send(a1, "<iq type='set' id='x1'><block xmlns='urn:xmpp:blocking'><item jid='@bad'/></block></iq>")
	expect(t, "alice", ra1.Take(), "id='x1'", "jid-malformed")
	e.send(a1, "<iq type='set' id='x2'><block xmlns='urn:xmpp:blocking'/></iq>")
	expect(t, "alice", ra1.Take(), "id='x2'", "bad-request")
	e.send(a1, "<iq type='set' id='x3'><block xmlns='urn:xmpp:blocking'><item jid='a@x'/><item jid='b@x'/><item jid='c@x'/></block></iq>")
	expect(t, "alice", ra1.Take(), "id='x3'", "resource-constraint", "limits.block_list_items")
	e.send(b1, "<iq to='alice@localhost' type='get' id='x4'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
	expect(t, "bob", rb1.Take(), "id='x4'", "forbidden")
}

// §3.6 matching of the four item forms, and a list that survives a
// restart of the service (loaded from the store on first use).
func TestBlockedMatching(t *testing.T) {
	e := newEnv(t, 100)
	a1, ra1 := e.bind("alice@localhost/one")
	e.send(a1, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'>"+
		"<item jid='full@ex.org/res'/><item jid='bare@ex.org'/><item jid='dom.example/r1'/><item jid='evil.example'/></block></iq>")
	expect(t, "alice", ra1.Take(), "type='result'")
	fresh := &blocking.Service{Domain: "localhost", Store: e.store, Router: e.route.Router, Max: 100}
	for _, tc := range []struct {
		other string
		want  bool
	}{
		{"full@ex.org/res", true}, {"full@ex.org/other", false}, {"full@ex.org", false},
		{"bare@ex.org", true}, {"bare@ex.org/any", true},
		{"dom.example/r1", true}, {"u@dom.example/r1", true}, {"dom.example/r2", false}, {"dom.example", false},
		{"evil.example", true}, {"x@evil.example/y", true}, {"ex.org", false},
	} {
		j, _ := jid.Parse(tc.other)
		for _, b := range []*blocking.Service{e.block, fresh} {
			if got := b.Blocked([]byte("alice@localhost"), j); got != tc.want {
				t.Errorf("Blocked(alice, %s) = %v, want %v", tc.other, got, tc.want)
			}
		}
		if fresh.Blocked([]byte("bob@localhost"), j) {
			t.Errorf("bob blocks %s", tc.other)
		}
	}
}

// Blocked allocates nothing, with no list at all and for an account with
// no list while another has one.
func TestBlockedAllocs(t *testing.T) {
	e := newEnv(t, 100)
	other, _ := jid.Parse("bob@localhost/r")
	owner := []byte("alice@localhost")
	if n := testing.AllocsPerRun(100, func() { e.block.Blocked(owner, other) }); n != 0 {
		t.Fatalf("no lists: %v allocs", n)
	}
	a1, _ := e.bind("carol@localhost/one")
	e.send(a1, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='x@y'/></block></iq>")
	if n := testing.AllocsPerRun(100, func() { e.block.Blocked(owner, other) }); n != 0 {
		t.Fatalf("another's list: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { e.block.Blocked([]byte("carol@localhost"), other) }); n != 0 {
		t.Fatalf("own list: %v allocs", n)
	}
}

func BenchmarkBlockedNone(b *testing.B) {
	var s blocking.Service
	st, _ := storage.Open(filepath.Join(b.TempDir(), "r.db"), storage.Options{ScramIterations: 4096})
	defer st.Close()
	s.Store = st
	other, _ := jid.Parse("bob@localhost/r")
	owner := []byte("alice@localhost")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Blocked(owner, other)
	}
}

// A blocked sender's message to an account with no resource online is
// refused before offline storage (XEP-0191 §3.5), and after the block is
// lifted it is kept as usual.
func TestBlockedNotStoredOffline(t *testing.T) {
	e := newEnv(t, 10)
	a1, ra1 := e.bind("alice@localhost/one")
	e.send(a1, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>")
	expect(t, "alice", ra1.Take(), "type='result'")
	e.route.Router.Unbind(a1)
	b1, rb1 := e.bind("bob@localhost/r")
	offline := func() int {
		var n int
		if err := e.store.View(func(tx *storage.Tx) error {
			m, err := tx.Offline("alice")
			n = len(m)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	e.send(b1, "<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>")
	expect(t, "bob", rb1.Take(), "id='m1'", "service-unavailable")
	if n := offline(); n != 0 {
		t.Fatalf("%d offline messages from a blocked sender", n)
	}
	c1, rc1 := e.bind("carol@localhost/r")
	e.send(c1, "<message to='alice@localhost' type='chat' id='m2'><body>hi</body></message>")
	refuse(t, "carol", rc1.Take(), "error")
	if n := offline(); n != 1 {
		t.Fatalf("%d offline messages, want carol's", n)
	}
}

// Blocked is safe while lists change (run with -race).
func TestBlockedConcurrent(t *testing.T) {
	e := newEnv(t, 10)
	a1, _ := e.bind("alice@localhost/one")
	bob, _ := jid.Parse("bob@localhost/r")
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
					e.block.Blocked([]byte("alice@localhost"), bob)
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		e.send(a1, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>")
		if !e.block.Blocked([]byte("alice@localhost"), bob) {
			t.Fatal("not blocked after block")
		}
		e.send(a1, "<iq type='set' id='u'><unblock xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></unblock></iq>")
		if e.block.Blocked([]byte("alice@localhost"), bob) {
			t.Fatal("blocked after unblock")
		}
	}
	close(done)
	wg.Wait()
}

// Blocks tells an account with a list from one without, allocating
// nothing.
func TestBlocks(t *testing.T) {
	e := newEnv(t, 10)
	a1, _ := e.bind("alice@localhost/one")
	if e.block.Blocks("alice@localhost") {
		t.Fatal("alice blocks someone before any block")
	}
	e.send(a1, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='x@y'/></block></iq>")
	fresh := &blocking.Service{Domain: "localhost", Store: e.store, Router: e.route.Router}
	for _, b := range []*blocking.Service{e.block, fresh} {
		if !b.Blocks("alice@localhost") || b.Blocks("bob@localhost") {
			t.Fatal("Blocks wrong")
		}
		if n := testing.AllocsPerRun(100, func() { b.Blocks("bob@localhost"); b.Blocks("alice@localhost") }); n != 0 {
			t.Fatalf("Blocks: %v allocs", n)
		}
	}
}

// A link that comes (back) up re-sends presence to remote contacts, but
// not to one the account blocks (XEP-0191 §3.5), and probes nobody
// blocked.
func TestResendSkipsBlocked(t *testing.T) {
	e := newEnv(t, 100)
	var mu sync.Mutex
	var out []string
	e.route.IM.Remote = func(to string, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, to+" "+string(b))
	}
	for _, c := range []string{"friend@remote.example", "pest@remote.example"} {
		if _, err := e.store.PutRosterItem("alice", storage.RosterItem{JID: c, Subscription: "both"}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := e.bind("alice@localhost/r")
	e.send(a, "<presence/>")
	e.send(a, "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='pest@remote.example'/></block></iq>")
	mu.Lock()
	out = nil
	mu.Unlock()
	e.route.LinkUp()
	mu.Lock()
	defer mu.Unlock()
	got := strings.Join(out, "\n")
	if !strings.Contains(got, "friend@remote.example <presence") || strings.Contains(got, "pest@remote.example") {
		t.Fatalf("resent:\n%s", got)
	}
}

// A message stored offline before its sender was blocked is not
// delivered after the block (XEP-0191 §3.5), and is not kept either; one
// from another sender still is delivered.
func TestOfflineFromBlockedNotDelivered(t *testing.T) {
	e := newEnv(t, 10)
	b1, _ := e.bind("bob@localhost/r")
	c1, _ := e.bind("carol@localhost/r")
	e.send(b1, "<message to='alice@localhost' type='chat' id='m1'><body>from bob</body></message>")
	e.send(c1, "<message to='alice@localhost' type='chat' id='m2'><body>from carol</body></message>")
	a1, ra1 := e.bind("alice@localhost/one")
	e.send(a1, "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>")
	ra1.Take()
	e.send(a1, "<presence/>")
	got := ra1.Take()
	if !strings.Contains(got, "from carol") || strings.Contains(got, "from bob") {
		t.Fatalf("alice's offline delivery:\n%s", got)
	}
	var left int
	e.store.View(func(tx *storage.Tx) error {
		m, err := tx.Offline("alice")
		left = len(m)
		return err
	})
	if left != 0 {
		t.Fatalf("%d offline messages left", left)
	}
}
