package route

import (
	"roost/server/session/sessiontest"
	"strings"
	"testing"

	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

func bind(t *testing.T, s *Service, full string, available bool) (*session.Bound, *sessiontest.Recorder) {
	t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	rec := &sessiontest.Recorder{}
	b := session.New(j, rec, session.Options{})
	if available {
		b.SetPresence(true, 0, []byte("<presence/>"))
	}
	s.Router.BindReplace(b, 0)
	return b, rec
}

// What a session that ended for good still held is not lost: a chat
// message goes to the account's other resource, or offline with none; an
// iq request is answered to its sender with service-unavailable;
// presence is dropped (issue 14).
func TestUndelivered(t *testing.T) {
	s := newService(t)
	for _, u := range []string{"alice", "bob"} {
		if err := s.Store.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	gone, _ := bind(t, s, "alice@localhost/one", true)
	_, two := bind(t, s, "alice@localhost/two", true)
	_, bob := bind(t, s, "bob@localhost/r", true)
	s.Router.Unbind(gone)
	held := [][]byte{
		[]byte("<message from='bob@localhost/r' to='alice@localhost/one' type='chat' id='m1'><body>one</body></message>"),
		[]byte("<iq from='bob@localhost/r' to='alice@localhost/one' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>"),
		[]byte("<presence from='bob@localhost/r' to='alice@localhost/one'/>"),
		[]byte("<message from='bob@localhost/r' to='alice@localhost/one' type='headline' id='h1'><body>h</body></message>"),
		[]byte("<iq from='bob@localhost/r' to='alice@localhost/one' type='result' id='r1'/>"),
	}
	s.Undelivered(gone, held)
	if got := two.All(); !strings.Contains(got, "id='m1'") || strings.Contains(got, "presence") || strings.Contains(got, "h1") {
		t.Fatalf("alice's other resource got %q, want the chat message only", got)
	}
	if got := bob.All(); !strings.Contains(got, "id='q1'") || !strings.Contains(got, "service-unavailable") || strings.Contains(got, "r1") {
		t.Fatalf("bob got %q, want service-unavailable for q1 only", got)
	}

	// With no other resource the message is stored offline, with a delay.
	gone2, _ := bind(t, s, "alice@localhost/three", true)
	s.Router.Unbind(gone2)
	two2 := s.Router.Session([]byte("alice@localhost"), []byte("two"))
	s.Router.Unbind(two2)
	s.Undelivered(gone2, [][]byte{[]byte("<message from='bob@localhost/r' to='alice@localhost/three' type='chat' id='m2'><body>two</body></message>")})
	var msgs []storage.OfflineMessage
	if err := s.Store.View(func(tx *storage.Tx) (err error) { msgs, err = tx.Offline("alice"); return err }); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Stanza), "id='m2'") || !strings.Contains(string(msgs[0].Stanza), "urn:xmpp:delay") {
		t.Fatalf("offline store holds %d messages: %+v", len(msgs), msgs)
	}
}

// An iq to a resource whose session is closing (its stream ended, or it
// is being dropped as a slow reader) is answered at once with
// service-unavailable, not left to time out (issue 14).
func TestIQToClosingSessionAnswered(t *testing.T) {
	s := newService(t)
	for _, u := range []string{"alice", "bob"} {
		if err := s.Store.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	closing, got := bind(t, s, "alice@localhost/one", true)
	bob, bobGot := bind(t, s, "bob@localhost/r", true)
	closing.Close(stanza.StreamPolicyViolation, "slow")
	b := []byte("<iq from='bob@localhost/r' to='alice@localhost/one' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>")
	st, ok := parseWritten(xmlscanFor(b), b)
	if !ok {
		t.Fatal("parse")
	}
	s.Route(bob, st, b)
	if g := bobGot.All(); !strings.Contains(g, "id='q1'") || !strings.Contains(g, "service-unavailable") {
		t.Fatalf("bob got %q, want service-unavailable at once", g)
	}
	if g := got.All(); g != "" {
		t.Fatalf("the closing session was given %q", g)
	}
}

func xmlscanFor(b []byte) *xmlscan.Scanner {
	return xmlscan.New(nil, xmlscan.Limits{MaxElementBytes: len(b) + 1})
}

// A message routed while the recipient had no available resource, whose
// initial presence (and offline flush) happened before the message was
// stored, is delivered to that resource instead of waiting in the store
// for the next login (issue 14, the ordering race).
func TestStoreOfflineRechecksAvailability(t *testing.T) {
	s := newService(t)
	for _, u := range []string{"alice", "bob"} {
		if err := s.Store.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	alice, got := bind(t, s, "alice@localhost/one", false)
	bob, _ := bind(t, s, "bob@localhost/r", true)
	b := []byte("<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m1'><body>hi</body></message>")
	st, ok := parseWritten(xmlscanFor(b), b)
	if !ok {
		t.Fatal("parse")
	}
	// Routing found no available resource; then alice's initial presence
	// was processed; then the message reaches the offline store.
	alice.SetPresence(true, 0, []byte("<presence/>"))
	s.IM.StoreOffline(bob, st, b, "alice")
	if g := got.All(); !strings.Contains(g, "id='m1'") {
		t.Fatalf("alice got %q, want the message", g)
	}
	var msgs []storage.OfflineMessage
	if err := s.Store.View(func(tx *storage.Tx) (err error) { msgs, err = tx.Offline("alice"); return err }); err != nil || len(msgs) != 0 {
		t.Fatalf("stored offline as well: %d %v", len(msgs), err)
	}
}

// An offline message handed on again (its session ended before it was
// delivered) is stored once more with the stamp of when it first
// arrived, not a second one.
func TestRestoredOfflineKeepsItsStamp(t *testing.T) {
	s := newService(t)
	for _, u := range []string{"alice", "bob"} {
		if err := s.Store.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	gone, _ := bind(t, s, "alice@localhost/one", true)
	s.Router.Unbind(gone)
	s.Undelivered(gone, [][]byte{[]byte("<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m1'><body>x</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='2026-01-01T00:00:00.000Z'>Offline storage</delay></message>")})
	var msgs []storage.OfflineMessage
	if err := s.Store.View(func(tx *storage.Tx) (err error) { msgs, err = tx.Offline("alice"); return err }); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || strings.Count(string(msgs[0].Stanza), "urn:xmpp:delay") != 1 || !strings.Contains(string(msgs[0].Stanza), "2026-01-01") {
		t.Fatalf("stored: %+v", msgs)
	}
}
