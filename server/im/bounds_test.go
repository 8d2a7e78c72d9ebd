package im

import (
	"fmt"
	"testing"

	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// nopTransport takes every stanza and forgets it.
type nopTransport struct{}

func (nopTransport) Push([]byte) bool                     { return true }
func (nopTransport) Close(stanza.StreamCondition, string) {}

// The directed-presence set is bounded (limits.directed_presences): a new
// target beyond the bound is refused, known targets and removals are not.
func TestDirectedPresenceBound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		want  int
	}{{"configured", 3, 3}, {"default", 0, DefaultDirectedPresences}} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Service{DirectedPresences: tc.limit}
			sess := session.New(mustParse(t, "alice@localhost/r"), nopTransport{}, session.Options{})
			target := func(i int) jid.JID { return mustParse(t, fmt.Sprintf("u%d@localhost/r", i)) }
			for i := 0; i < tc.want; i++ {
				if !m.AddDirected(sess, target(i), true) {
					t.Fatalf("target %d refused below the bound", i)
				}
			}
			if m.AddDirected(sess, target(tc.want), true) {
				t.Fatalf("target %d accepted beyond the bound %d", tc.want, tc.want)
			}
			if !m.AddDirected(sess, target(0), true) {
				t.Fatal("presence again to a known target refused")
			}
			if !m.AddDirected(sess, target(tc.want), false) || !m.AddDirected(sess, target(1), false) {
				t.Fatal("unavailable presence refused")
			}
			if !m.AddDirected(sess, target(tc.want), true) {
				t.Fatal("a freed slot was not reusable")
			}
			if n := len(sess.TakeDirected()); n != tc.want {
				t.Fatalf("%d targets recorded, want %d", n, tc.want)
			}
		})
	}
}

func mustParse(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
