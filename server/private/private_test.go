package private

import (
	"path/filepath"
	"roost/server/session/sessiontest"
	"strings"
	"testing"

	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
)

// XEP-0049: set and get per namespace (bookmarks, XEP-0048), the empty
// element for a namespace never set, refused namespaces, the byte bound,
// and another account's storage refused.
func TestPrivate(t *testing.T) {
	st, err := storage.Open(filepath.Join(t.TempDir(), "roost.db"), storage.Options{ScramIterations: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := &Service{Domain: "localhost", Store: st, MaxBytes: 200}
	j, _ := jid.Parse("alice@localhost/one")
	rec := &sessiontest.Recorder{}
	sess := session.New(j, rec, session.Options{})
	do := func(el string, want ...string) {
		t.Helper()
		p.IQ(sess, sessiontest.Parse(t, el))
		got := rec.Take()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Fatalf("%s: got %q, want %q", el, got, w)
			}
		}
	}
	do("<iq type='get' id='g0'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>",
		"type='result'", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
	bm := "<storage xmlns='storage:bookmarks'><conference jid='room@muc.example' autojoin='true'><nick>al</nick></conference></storage>"
	do("<iq type='set' id='s1'><query xmlns='jabber:iq:private'>"+bm+"</query></iq>", "type='result'", "id='s1'")
	do("<iq type='get' id='g1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>",
		"<query xmlns='jabber:iq:private'>"+bm+"</query>")
	do("<iq type='get' id='g2'><query xmlns='jabber:iq:private'><x xmlns='jabber:client'/></query></iq>", "not-acceptable")
	do("<iq type='set' id='s2'><query xmlns='jabber:iq:private'><x xmlns='jabber:iq:private'/></query></iq>", "not-acceptable")
	do("<iq type='set' id='s3'><query xmlns='jabber:iq:private'><a xmlns='a:b'/><b xmlns='a:c'/></query></iq>", "bad-request")
	do("<iq type='set' id='s4'><query xmlns='jabber:iq:private'><big xmlns='x:big'>"+strings.Repeat("z", 150)+"</big></query></iq>",
		"not-acceptable", "limits.private_bytes")
	do("<iq type='get' id='g3'><query xmlns='jabber:iq:private'><big xmlns='x:big'/></query></iq>", "<big xmlns='x:big'/>")
	other, _ := jid.Parse("bob@elsewhere.example/r")
	sess = session.New(other, rec, session.Options{})
	do("<iq type='get' id='g4'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>", "forbidden")
}
