package router

import (
	"fmt"
	"sync"
	"testing"

	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// nopTransport takes every stanza and forgets it: the router tests look
// at the table, not at delivery.
type nopTransport struct{}

func (nopTransport) Push([]byte) bool                     { return true }
func (nopTransport) Close(stanza.StreamCondition, string) {}

func sess(t testing.TB, s string, available bool, prio int) *session.Bound {
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	b := session.New(j, nopTransport{}, session.Options{})
	b.SetPresence(available, prio, nil)
	return b
}

func TestBindReplaceUnbind(t *testing.T) {
	r := New()
	a1 := sess(t, "alice@x/one", true, 0)
	a2 := sess(t, "alice@x/two", true, 0)
	if old := r.Bind(a1); old != nil {
		t.Fatal("nothing to replace")
	}
	r.Bind(a2)
	if n := len(r.Sessions([]byte("alice@x"))); n != 2 || r.Count() != 2 {
		t.Fatalf("sessions %d count %d", n, r.Count())
	}
	again := sess(t, "alice@x/one", true, 0)
	if old := r.Bind(again); old != a1 {
		t.Fatalf("binding the same full JID should replace the first, got %v", old)
	}
	if r.Count() != 2 || r.Session([]byte("alice@x"), []byte("one")) != again {
		t.Fatal("replacement not in the table")
	}
	r.Unbind(a1) // already replaced: no effect
	if r.Count() != 2 {
		t.Fatal("unbinding a replaced session removed something")
	}
	r.Unbind(again)
	r.Unbind(a2)
	if r.Count() != 0 || r.Sessions([]byte("alice@x")) != nil {
		t.Fatal("table not empty")
	}
}

func TestDeliveryChoice(t *testing.T) {
	all := []*session.Bound{
		sess(t, "b@x/low", true, 1),
		sess(t, "b@x/high1", true, 10),
		sess(t, "b@x/high2", true, 10),
		sess(t, "b@x/neg", true, -1),
		sess(t, "b@x/quiet", false, 50),
	}
	names := func(ss []*session.Bound) string {
		out := ""
		for _, s := range ss {
			out += s.JID().Resource() + " "
		}
		return out
	}
	for _, tc := range []struct {
		name string
		got  []*session.Bound
		want string
	}{
		{"message to bare: highest non-negative priority", Best(nil, all), "high1 high2 "},
		{"headline: every non-negative", NonNegative(nil, all), "low high1 high2 "},
		{"presence: every available", AvailableOnly(nil, all), "low high1 high2 neg "},
		{"only negative: nobody", Best(nil, all[3:]), ""},
	} {
		if got := names(tc.got); got != tc.want {
			t.Errorf("%s: got %q want %q", tc.name, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		var buf [8]*session.Bound
		Best(buf[:0], all)
	}); n != 0 {
		t.Errorf("Best allocates %v", n)
	}
}

func TestConcurrentBindAndLookup(t *testing.T) {
	r := New()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				s := sess(t, fmt.Sprintf("u%d@x/r%d", i%10, w), true, 0)
				r.Bind(s)
				_ = r.Sessions([]byte(fmt.Sprintf("u%d@x", i%10)))
				r.Unbind(s)
			}
		}()
	}
	wg.Wait()
	if r.Count() != 0 {
		t.Fatalf("count %d after all unbinds", r.Count())
	}
}

func BenchmarkLookup(b *testing.B) {
	r := New()
	for i := 0; i < 10000; i++ {
		r.Bind(sess(b, fmt.Sprintf("user%d@x/r", i), true, 0))
	}
	key := []byte("user4242@x")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if r.Session(key, []byte("r")) == nil {
			b.Fatal("not found")
		}
	}
}
