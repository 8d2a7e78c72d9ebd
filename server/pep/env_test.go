package pep

import (
	"errors"
	"path/filepath"
	"roost/server/session/sessiontest"
	"strings"
	"sync"
	"testing"
	"time"

	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
)

// env is a PEP service over a real store in t.TempDir() and a real
// routing table with real bound sessions.
type env struct {
	t     *testing.T
	path  string
	store *storage.Store
	r     *router.Router
	p     *Service
	mu    sync.Mutex
	caps  map[string][]string // full JID -> the nodes it wants (+notify)
}

const domain = "d.example"

func newEnv(t *testing.T, mod func(p *Service)) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "roost.db"), r: router.New(), caps: map[string][]string{}}
	e.open(mod)
	t.Cleanup(func() {
		if e.p != nil {
			e.p.Close()
			e.store.Close()
		}
	})
	return e
}

func (e *env) open(mod func(p *Service)) {
	e.t.Helper()
	st, err := storage.Open(e.path, storage.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	e.p = &Service{Domain: domain, Store: st, Router: e.r, MaxNodes: 8, MaxItems: 16, MaxItemBytes: 1024, MaxSubscribers: 4}
	e.p.wants = func(full jid.JID, feature string) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, n := range e.caps[full.String()] {
			if n+"+notify" == feature {
				return true
			}
		}
		return false
	}
	e.p.notifyOf = func(full jid.JID) []string {
		e.mu.Lock()
		defer e.mu.Unlock()
		return append([]string(nil), e.caps[full.String()]...)
	}
	if mod != nil {
		mod(e.p)
	}
	if err := e.p.Start(); err != nil {
		e.t.Fatal(err)
	}
}

// reopen closes the service and the store and opens both again.
func (e *env) reopen(mod func(p *Service)) {
	e.t.Helper()
	if err := e.p.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.store.Close()
	e.open(mod)
}

func mustJID(t testing.TB, s string) jid.JID {
	j, err := jid.Parse(s)
	if err != nil {
		panic(err)
	}
	return j
}

// bind binds full, available or not, wanting notifications for nodes.
func (e *env) bind(full string, available bool, nodes ...string) (*session.Bound, *sessiontest.Recorder) {
	e.t.Helper()
	out := &sessiontest.Recorder{}
	j := mustJID(e.t, full)
	if j.Domain() == domain {
		// A local session's account exists (PEP writes only for
		// accounts that do).
		if err := e.store.AddUser(j.Local(), "pw"); err != nil && !errors.Is(err, storage.ErrExists) {
			e.t.Fatal(err)
		}
	}
	s := session.New(j, out, session.Options{})
	e.r.Bind(s)
	e.mu.Lock()
	e.caps[full] = nodes
	e.mu.Unlock()
	if available {
		s.SetPresence(true, 0, []byte("<presence/>"))
	}
	return s, out
}

// roster gives user's roster contact with sub.
func (e *env) roster(user, contact, sub string) {
	e.t.Helper()
	if _, err := e.store.PutRosterItem(user, storage.RosterItem{JID: contact, Subscription: sub}); err != nil {
		e.t.Fatal(err)
	}
}

// mutual makes a and b contacts with a 'both' subscription.
func (e *env) mutual(a, b string) {
	e.roster(a, b+"@"+domain, "both")
	e.roster(b, a+"@"+domain, "both")
}

// iq sends an iq of typ from sess to owner's PEP service (owner "" : its
// own, as an iq without 'to') and returns the answer.
func (e *env) iq(sess *session.Bound, out *sessiontest.Recorder, typ, owner, body string) string {
	e.t.Helper()
	out.TakeAll()
	to := ""
	o := sess.JID().Bare()
	if owner != "" {
		to = " to='" + owner + "'"
		o = mustJID(e.t, owner)
	}
	st := sessiontest.Parse(e.t, "<iq type='"+typ+"' id='q1'"+to+">"+body+"</iq>")
	e.p.IQ(sess, st, o)
	got := out.TakeAll()
	for _, g := range got {
		if strings.HasPrefix(g, "<iq") {
			return g
		}
	}
	e.t.Fatalf("no answer to %s; got %q", body, got)
	return ""
}

// ok fails unless answer is a result.
func ok(t *testing.T, answer string) string {
	t.Helper()
	if !strings.Contains(answer, "type='result'") {
		t.Fatalf("want a result, got %s", answer)
	}
	return answer
}

// fails checks that answer is an error with cond and app (app "" : any).
func fails(t *testing.T, answer, cond, app string) {
	t.Helper()
	if !strings.Contains(answer, "type='error'") || !strings.Contains(answer, "<"+cond+" ") {
		t.Fatalf("want %s, got %s", cond, answer)
	}
	if app != "" && !strings.Contains(answer, "<"+app+" xmlns='"+NSError+"'") {
		t.Fatalf("want app condition %s, got %s", app, answer)
	}
}

func pub(node, id, payload string) string {
	idAttr := ""
	if id != "" {
		idAttr = " id='" + id + "'"
	}
	return "<pubsub xmlns='" + NS + "'><publish node='" + node + "'><item" + idAttr + ">" + payload + "</item></publish></pubsub>"
}

func reading(v string) string {
	return "<reading xmlns='urn:roost:sensor:0' sensor='temperature' value='" + v + "' unit='Cel'/>"
}

const sensor = "urn:roost:sensor:0"

// events returns the notifications among got.
func events(got []string) []string {
	var ev []string
	for _, g := range got {
		if strings.HasPrefix(g, "<message") && strings.Contains(g, NSEvent) {
			ev = append(ev, g)
		}
	}
	return ev
}

var _ = time.Second
