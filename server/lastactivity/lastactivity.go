// Package lastactivity is XEP-0012 last activity: for the server, its
// uptime; for an account, how long ago its last resource went offline
// (kept in memory: no write per logout), answered only to the account
// and to contacts subscribed to its presence.
package lastactivity

import (
	"strconv"
	"sync"
	"time"

	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// NS is the last activity namespace.
const NS = "jabber:iq:last"

// processStart stands for the server's start when Started is not set.
var processStart = time.Now()

// Service answers jabber:iq:last.
type Service struct {
	Domain string
	Store  *storage.Store
	Router *router.Router
	// Started is when the server started (zero: when this process did):
	// the uptime, and the last activity of an account not seen since.
	Started time.Time

	mu   sync.Mutex
	gone map[string]time.Time // bare JID -> when a resource last went unavailable
}

func (l *Service) started() time.Time {
	if l.Started.IsZero() {
		return processStart
	}
	return l.Started
}

// IQ answers a last-activity query to owner's bare JID, or to the server
// when owner is the zero JID.
func (l *Service) IQ(sess session.Peer, st *stanza.Stanza, owner jid.JID) {
	if string(st.Type) != "get" {
		session.Bounce(sess, st, l.Domain, stanza.BadRequest, "last activity can only be read")
		return
	}
	if owner.IsZero() {
		// §4: the server's uptime.
		l.answer(sess, st, time.Since(l.started()))
		return
	}
	if owner.Domain() != l.Domain || owner.Local() == "" {
		session.Bounce(sess, st, l.Domain, stanza.ServiceUnavailable, "")
		return
	}
	if ok, err := l.Store.UserExists(owner.Local()); err != nil || !ok {
		session.Bounce(sess, st, l.Domain, stanza.ServiceUnavailable, "")
		return
	}
	// §5: only the account itself and contacts with a subscription to
	// its presence may know.
	asker := sess.JID().Bare()
	if asker != owner.Bare() {
		it, found, err := l.Store.RosterItem(owner.Local(), asker.String())
		if err != nil || !found || (it.Subscription != "from" && it.Subscription != "both") {
			session.Bounce(sess, st, l.Domain, stanza.Forbidden, "only contacts subscribed to this account's presence may ask")
			return
		}
	}
	bare := owner.Bare().String()
	for _, r := range l.Router.Sessions([]byte(bare)) {
		if r.Available() {
			l.answer(sess, st, 0)
			return
		}
	}
	l.mu.Lock()
	t, ok := l.gone[bare]
	l.mu.Unlock()
	if !ok {
		t = l.started()
	}
	l.answer(sess, st, time.Since(t))
}

func (l *Service) answer(sess session.Peer, st *stanza.Stanza, d time.Duration) {
	out := append([]byte(nil), "<query xmlns='"+NS+"' seconds='"...)
	out = strconv.AppendInt(out, int64(d/time.Second), 10)
	out = append(out, "'/>"...)
	session.Result(sess, st, l.Domain, out)
}

// Gone records that sess went unavailable or ended now. One entry per
// local account (bounded by the accounts), in memory only.
func (l *Service) Gone(sess session.Peer) {
	j := sess.JID()
	if j.Domain() != l.Domain || j.Local() == "" {
		return
	}
	l.mu.Lock()
	if l.gone == nil {
		l.gone = make(map[string]time.Time)
	}
	l.gone[j.Bare().String()] = time.Now()
	l.mu.Unlock()
}
