// Package sessiontest holds what tests of the packages above the session
// core need to drive them without a network: a Transport that records
// what it is given, a bound session over it, and a stanza parsed from
// text as a client stream would deliver it. One copy instead of one per
// test package.
package sessiontest

import (
	"strings"
	"sync"
	"testing"

	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Recorder is a session.Transport that keeps every stanza pushed to it.
type Recorder struct {
	mu  sync.Mutex
	got []string
}

// Push keeps a copy of b.
func (r *Recorder) Push(b []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, string(b))
	return true
}

// Close does nothing: the recorder has no connection.
func (r *Recorder) Close(stanza.StreamCondition, string) {}

// All is everything pushed so far, one stanza per line.
func (r *Recorder) All() string { return strings.Join(r.Stanzas(), "\n") }

// Stanzas is everything pushed so far.
func (r *Recorder) Stanzas() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// Take returns what was pushed since the last Take, one stanza per line,
// and forgets it.
func (r *Recorder) Take() string { return strings.Join(r.TakeAll(), "\n") }

// TakeAll returns the stanzas pushed since the last take and forgets them.
func (r *Recorder) TakeAll() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// Bind makes a session for full over a new Recorder (not in any routing
// table: the caller binds it where it needs to).
func Bind(t testing.TB, full string) (*session.Bound, *Recorder) {
	t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		t.Fatalf("jid %q: %v", full, err)
	}
	rec := &Recorder{}
	return session.New(j, rec, session.Options{}), rec
}

// Parse reads one stanza as a jabber:client stream would deliver it.
func Parse(t testing.TB, el string) *stanza.Stanza {
	t.Helper()
	sc := xmlscan.New(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+el), xmlscan.Limits{})
	if _, err := sc.Next(); err != nil {
		t.Fatal(err)
	}
	tok, err := sc.Next()
	if err != nil {
		t.Fatalf("scan %s: %v", el, err)
	}
	st, ok := stanza.Parse(&tok, stanza.NSClient)
	if !ok {
		t.Fatalf("not a stanza: %s", el)
	}
	return &st
}
