package route

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"roost/server/im"
	"roost/server/router"
	"roost/storage"

	"roost/tests/xmlcheck"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// remoteStanza scans one stanza as a peer's jabber:server stream would
// carry it.
func remoteStanza(t *testing.T, el string) *stanza.Stanza {
	t.Helper()
	sc := xmlscan.New(strings.NewReader("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:example:x'>"+el), xmlscan.Limits{})
	if tok, err := sc.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		t.Fatalf("header: %v", err)
	}
	tok, err := sc.Next()
	if err != nil {
		t.Fatal(err)
	}
	st, ok := stanza.Parse(&tok, stanza.NSServer)
	if !ok {
		t.Fatalf("not a stanza: %s", el)
	}
	return &st
}

// newService is a routing service over a real store in a temporary
// directory, for domain localhost.
func newService(t *testing.T) *Service {
	t.Helper()
	st, err := storage.Open(filepath.Join(t.TempDir(), "roost.db"), storage.Options{ScramIterations: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt := router.New()
	return &Service{Domain: "localhost", AcceptFrom: "owners", Store: st, Router: rt, Log: log,
		IM: &im.Service{Domain: "localhost", Store: st, Router: rt, Log: log, RosterLimit: 1000, OfflineQuota: 100}}
}

// fromRemote is the second line behind the uplink and s2s checks: a
// stanza whose prepared from is our own domain, or whose to is not ours
// or not a JID, is never routed (issue 12, item 1).
func TestFromRemoteRefusesOwnDomain(t *testing.T) {
	s := newService(t)
	if err := s.Store.AddUser("alice", "secret"); err != nil {
		t.Fatal(err)
	}
	set := func(from, to, item string) {
		s.FromRemote(remoteStanza(t, "<iq type='set' id='r1' from='"+from+"' to='"+to+"'><query xmlns='jabber:iq:roster'><item jid='"+item+"'/></query></iq>"))
	}
	for _, from := range []string{"alice@localhost/x", "alice@LOCALHOST/x", "alice@localhost./x", "alice@ｌｏｃａｌｈｏｓｔ/x", "localhost"} {
		set(from, "alice@localhost", "mallory@evil.test")
	}
	set("alice@localhost/x", "alice@LOCALHOST.", "mallory2@evil.test")
	set("a@b@c", "alice@localhost", "mallory3@evil.test")
	if items, _, err := s.Store.Roster("alice"); err != nil || len(items) != 0 {
		t.Fatalf("a stanza from our own domain reached the roster: %+v %v", items, err)
	}
}

// A stanza from a jabber:server stream that uses a prefix declared only
// on the peer's stream header is written for a client with the prefix
// declared on it and the server namespace dropped, and re-parses with a
// namespace-aware checker (issue 12, item 2).
func TestForwardFromRemoteRedeclaresPrefixes(t *testing.T) {
	for _, el := range []string{
		"<message from='bob@remote.test/r' to='alice@localhost/r' id='m1'><body>hi</body><x:data>1</x:data></message>",
		"<message xmlns='jabber:server' from='bob@remote.test/r' to='alice@localhost/r' id='m1' x:a='1'><x:data/></message>",
		"<message from='bob@REMOTE.test/r' to='alice@localhost/r' id='m1'><x:data/></message>",
	} {
		st := remoteStanza(t, el)
		from, _, ok := remoteAddrs(st)
		if !ok {
			t.Fatalf("addresses of %s", el)
		}
		out := string(forwardFromRemote(st, from))
		if err := xmlcheck.Element([]byte(out), map[string]string{"": "jabber:client"}); err != nil {
			t.Errorf("%s\n -> %s\n: %v", el, out, err)
		}
		if !strings.Contains(out, "xmlns:x='urn:example:x'") || strings.Contains(out, "jabber:server") || !strings.Contains(out, "from='bob@remote.test/r'") {
			t.Errorf("%s\n -> %s", el, out)
		}
	}
}

// Inbound subscription requests waiting for one account's answer are
// bounded (limits.pending_subscriptions, 100 by default): a peer on
// another domain cannot grow the store without end; requests beyond the
// bound are dropped.
func TestPendingSubscriptionsBounded(t *testing.T) {
	ts := newService(t)
	if err := ts.Store.AddUser("bob", "pw"); err != nil {
		t.Fatal(err)
	}
	limit := ts.IM.PendingSubscriptions
	if limit <= 0 {
		limit = im.DefaultPendingSubscriptions
	}
	header := "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"
	var in strings.Builder
	in.WriteString(header)
	for i := 0; i < limit+20; i++ {
		fmt.Fprintf(&in, "<presence type='subscribe' from='u%d@remote.example' to='bob@localhost'/>", i)
	}
	sc := xmlscan.New(strings.NewReader(in.String()), xmlscan.Limits{})
	if _, err := sc.Next(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < limit+20; i++ {
		tok, err := sc.Next()
		if err != nil {
			t.Fatal(err)
		}
		st, ok := stanza.Parse(&tok, "jabber:server")
		if !ok {
			t.Fatal("not a stanza")
		}
		ts.FromRemote(&st) // synchronous: the store is written on return
	}
	var n int
	err := ts.Store.View(func(tx *storage.Tx) (err error) {
		n, err = tx.PendingInCount("bob")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != limit {
		t.Fatalf("%d pending requests stored, want the bound %d", n, limit)
	}
}
