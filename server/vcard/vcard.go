// Package vcard is XEP-0054 vcard-temp: an account sets its own vCard;
// anyone may read it (as with Prosody and ejabberd), within
// limits.vcard_bytes.
package vcard

import (
	"strconv"

	"roost/server/private"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// NS is the vcard-temp namespace.
const NS = "vcard-temp"

// DefaultMaxBytes is used when MaxBytes is 0 (config.json's default).
const DefaultMaxBytes = 65536

// empty is the answer for an account that set no vCard: an empty vCard
// rather than an error, as ejabberd does, so that clients fetching every
// contact's vCard at login see no error (XEP-0054 §3.1 allows either).
const empty = "<vCard xmlns='vcard-temp'/>"

// Service answers vcard-temp iqs.
type Service struct {
	Domain   string
	Store    *storage.Store
	MaxBytes int // limits.vcard_bytes
}

// IQ answers a vcard-temp get or set for owner's bare JID (the sender's
// own account when it sent no 'to'); only the owner may set.
func (v *Service) IQ(sess session.Peer, st *stanza.Stanza, owner jid.JID) {
	if string(st.To) == v.Domain {
		// The server's own vCard (XEP-0054 §3.1 allows asking one): it
		// has none to tell, and none can be set.
		if string(st.Type) == "get" {
			session.Result(sess, st, v.Domain, []byte(empty))
		} else {
			session.Bounce(sess, st, v.Domain, stanza.Forbidden, "the server's vCard cannot be set")
		}
		return
	}
	if owner.Domain() != v.Domain || owner.Local() == "" {
		session.Bounce(sess, st, v.Domain, stanza.ServiceUnavailable, "")
		return
	}
	switch string(st.Type) {
	case "get":
		elem, found, err := v.Store.VCard(owner.Local())
		if err != nil {
			session.Bounce(sess, st, v.Domain, stanza.InternalServerError, "the vCard could not be read")
			return
		}
		if !found {
			ok, err := v.Store.UserExists(owner.Local())
			if err != nil || !ok {
				// XEP-0054 §3.1: no such account.
				session.Bounce(sess, st, v.Domain, stanza.ServiceUnavailable, "")
				return
			}
			elem = []byte(empty)
		}
		session.Result(sess, st, v.Domain, elem)
	case "set":
		// §3.2: a user may set only its own vCard.
		if _, local := sess.(*session.Bound); !local || sess.JID().Bare() != owner.Bare() {
			session.Bounce(sess, st, v.Domain, stanza.Forbidden, "only your own vCard can be set")
			return
		}
		name, elem, err := private.Element(st.Tok.Raw, 1)
		if err != nil || name.Space != NS || name.Local != "vCard" {
			session.Bounce(sess, st, v.Domain, stanza.BadRequest, "expected one <vCard xmlns='vcard-temp'/>")
			return
		}
		max := v.MaxBytes
		if max <= 0 {
			max = DefaultMaxBytes
		}
		if len(elem) > max {
			session.Bounce(sess, st, v.Domain, stanza.NotAcceptable,
				"a vCard is limited to "+strconv.Itoa(max)+" bytes (limits.vcard_bytes)")
			return
		}
		if err := v.Store.SetVCard(owner.Local(), elem); err != nil {
			session.Bounce(sess, st, v.Domain, stanza.InternalServerError, "the vCard could not be stored")
			return
		}
		session.Result(sess, st, v.Domain, nil)
	}
}
