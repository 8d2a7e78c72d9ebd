package vcard

import (
	"path/filepath"
	"roost/server/session/sessiontest"
	"strings"
	"testing"

	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
)

// XEP-0054: set one's own, read anyone's on this server (an empty vCard
// for an account without one, service-unavailable for no account), set
// of another's forbidden, the size bound.
func TestVCard(t *testing.T) {
	st, err := storage.Open(filepath.Join(t.TempDir(), "roost.db"), storage.Options{ScramIterations: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range []string{"alice", "bob"} {
		if err := st.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	v := &Service{Domain: "localhost", Store: st, MaxBytes: 300}
	rec := &sessiontest.Recorder{}
	aj, _ := jid.Parse("alice@localhost/one")
	bj, _ := jid.Parse("bob@localhost/r")
	alice := session.New(aj, rec, session.Options{})
	bob := session.New(bj, rec, session.Options{})
	do := func(sess *session.Bound, owner, el string, want ...string) {
		t.Helper()
		o, _ := jid.Parse(owner)
		v.IQ(sess, sessiontest.Parse(t, el), o)
		got := rec.Take()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Fatalf("%s: got %q, want %q", el, got, w)
			}
		}
	}
	do(alice, "alice@localhost", "<iq type='get' id='g0'><vCard xmlns='vcard-temp'/></iq>", "type='result'", "<vCard xmlns='vcard-temp'/>")
	card := "<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME></vCard>"
	do(alice, "alice@localhost", "<iq type='set' id='s1'>"+card+"</iq>", "type='result'")
	do(bob, "alice@localhost", "<iq type='get' id='g1' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>", "type='result'", card, "from='alice@localhost'")
	do(bob, "alice@localhost", "<iq type='set' id='s2' to='alice@localhost'>"+card+"</iq>", "forbidden")
	do(bob, "nobody@localhost", "<iq type='get' id='g2' to='nobody@localhost'><vCard xmlns='vcard-temp'/></iq>", "service-unavailable")
	do(bob, "bob@localhost", "<iq type='set' id='s3'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>"+strings.Repeat("A", 400)+"</BINVAL></PHOTO></vCard></iq>",
		"not-acceptable", "limits.vcard_bytes")
	do(bob, "bob@localhost", "<iq type='get' id='g3'><vCard xmlns='vcard-temp'/></iq>", "<vCard xmlns='vcard-temp'/>")
	// The server's own: an empty vCard, never set.
	do(bob, "bob@localhost", "<iq type='get' id='g4' to='localhost'><vCard xmlns='vcard-temp'/></iq>", "type='result'", "<vCard xmlns='vcard-temp'/>", "from='localhost'")
	do(bob, "bob@localhost", "<iq type='set' id='s4' to='localhost'>"+card+"</iq>", "forbidden")
	if _, found, _ := st.VCard("bob"); found {
		t.Fatal("a set to the server stored a vCard for the sender")
	}
}
