package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"roost/server/c2s"
	"roost/server/im"
	"roost/wire/jid"
	"roost/wire/xmlscan"
)

// feed hands one stanza to a bound session as its stream would.
func feed(t *testing.T, sess *c2s.Session, s string) {
	t.Helper()
	sc := xmlscan.New(strings.NewReader(emitHeader+s), xmlscan.Limits{})
	if _, err := sc.Next(); err != nil {
		t.Fatal(err)
	}
	tok, err := sc.Next()
	if err != nil {
		t.Fatalf("scan %s: %v", s, err)
	}
	sess.Receive(&tok)
}

// sync returns what was written to a session up to a marker queued now.
func syncOut(t *testing.T, sess *c2s.Session, out *recConn) string {
	t.Helper()
	marker := []byte(fmt.Sprintf("<message id='sync-%p-%d'/>", sess, time.Now().UnixNano()))
	if !sess.Deliver(marker) {
		t.Fatal("session closed")
	}
	got, found := out.waitFor(marker, 10*time.Second)
	if !found {
		t.Fatalf("no sync marker within 10s; got %q", got)
	}
	return string(got)
}

// A session's directed-presence set is bounded (limits.directed_presences,
// 1000 by default): directed presence to one more target is not delivered
// and is answered with resource-constraint; re-sending to a known target
// still works.
func TestDirectedPresenceBounded(t *testing.T) {
	ts := startServer(t, nil)
	if err := ts.Store().AddUser("bob", "pw"); err != nil {
		t.Fatal(err)
	}
	limit := ts.cfg.Limits.DirectedPresences
	if limit <= 0 {
		limit = im.DefaultDirectedPresences
	}
	aliceOut := newRecConn()
	alice := ts.BindLocal(mustJID(t, "alice@localhost/a"), aliceOut)
	outs := make([]*recConn, limit+1)
	sessions := make([]*c2s.Session, limit+1)
	for i := range outs {
		outs[i] = newRecConn()
		sessions[i] = ts.BindLocal(mustJID(t, fmt.Sprintf("bob@localhost/r%d", i)), outs[i])
	}
	for i := 0; i < limit; i++ {
		feed(t, alice, fmt.Sprintf("<presence to='bob@localhost/r%d'/>", i))
	}
	if got := syncOut(t, alice, aliceOut); strings.Contains(got, "type='error'") {
		t.Fatalf("error below the bound: %s", got)
	}
	if got := syncOut(t, sessions[limit-1], outs[limit-1]); !strings.Contains(got, "<presence from='alice@localhost/a'") {
		t.Fatalf("the last target within the bound got %q", got)
	}
	feed(t, alice, fmt.Sprintf("<presence id='over' to='bob@localhost/r%d'/>", limit))
	if got := syncOut(t, alice, aliceOut); !strings.Contains(got, "<presence type='error' id='over'") || !strings.Contains(got, "<resource-constraint ") {
		t.Fatalf("directed presence beyond the bound: got %q, want resource-constraint", got)
	}
	if got := syncOut(t, sessions[limit], outs[limit]); strings.Contains(got, "<presence") {
		t.Fatalf("presence beyond the bound was delivered: %s", got)
	}
	feed(t, alice, "<presence id='again' to='bob@localhost/r0'/>")
	if got := syncOut(t, sessions[0], outs[0]); !strings.Contains(got, "id='again'") {
		t.Fatalf("presence to a known target: got %q", got)
	}
}

func mustJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
