package im

import (
	"encoding/xml"
	"roost/server/session"

	"roost/server/router"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// presencePayload is what the server reads of a client's own presence.
type presencePayload struct {
	Priority int `xml:"priority"`
}

// Blocker reports whether the local account ownerBare blocks other
// (XEP-0191 §3.6); nil blocks nothing. route passes blocking.Service's
// Blocked while any account blocks anyone.
type Blocker func(ownerBare []byte, other jid.JID) bool

// either reports whether presence between the account me and the contact
// c must not flow: me blocks c, or c (a local account) blocks me
// (XEP-0191 §3.5).
func (m *Service) either(blocked Blocker, me jid.JID, c jid.JID) bool {
	if blocked == nil || c.IsZero() {
		return false
	}
	if blocked([]byte(me.Bare().String()), c) {
		return true
	}
	return c.Domain() == m.Domain && blocked([]byte(c.Bare().String()), me)
}

// OwnPresence handles presence with no 'to': the session's broadcast
// presence (RFC 6121 §4.2, §4.4, §4.5). stamped carries the session's
// full JID as from. Presence does not flow between the account and a JID
// either side blocks (blocked, XEP-0191 §3.5).
func (m *Service) OwnPresence(sess session.Peer, st *stanza.Stanza, stamped []byte, blocked Blocker) {
	switch string(st.Type) {
	case "":
		var p presencePayload
		if err := xml.Unmarshal(st.Tok.Raw, &p); err != nil {
			m.reply(sess, st, stanza.BadRequest, "the presence payload could not be read")
			return
		}
		if p.Priority < -128 || p.Priority > 127 {
			m.reply(sess, st, stanza.BadRequest, "priority must be from -128 to 127")
			return
		}
		unlock := accounts.lock(sess.JID().Local())
		initial := sess.SetPresence(true, p.Priority, stamped)
		unlock()
		m.broadcast(sess, stamped, false, blocked)
		if initial {
			m.probeContacts(sess, blocked)
			m.redeliverPending(sess)
			if p.Priority >= 0 {
				m.deliverOffline(sess, blocked) // XEP-0160 §3: at available presence with non-negative priority
			}
		}
	case "unavailable":
		sess.SetPresence(false, 0, nil)
		m.broadcast(sess, stamped, true, blocked)
	default:
		// Subscription management and probes need a 'to'
		// (RFC 6121 §3); errors to nobody are dropped.
		if string(st.Type) != "error" {
			m.reply(sess, st, stanza.BadRequest, "this presence type needs a 'to' address")
		}
	}
}

// broadcast sends b to the user's own available resources and to every
// contact subscribed to the user's presence; for unavailable presence also
// to every JID that got directed presence from this session (RFC 6121 §4.6).
// Contacts either side blocks are skipped (XEP-0191 §3.5).
func (m *Service) broadcast(sess session.Peer, b []byte, unavailable bool, blocked Blocker) {
	var buf [8]*session.Bound
	me := sess.JID()
	bare := me.Bare().String()
	for _, r := range router.AvailableOnly(buf[:0], m.Router.Sessions([]byte(bare))) {
		if session.Peer(r) != sess || !unavailable {
			r.Deliver(b)
		}
	}
	items, _, err := m.Store.Roster(me.Local())
	if err != nil {
		m.Log.Error("im: read roster for broadcast", "user", me.Local(), "err", err)
	}
	sent := make(map[string]bool, len(items))
	for _, it := range items {
		if it.Subscription != "from" && it.Subscription != "both" {
			continue
		}
		sent[it.JID] = true
		if blocked != nil {
			if c, err := jid.Parse(it.JID); err != nil || m.either(blocked, me, c) {
				continue
			}
		}
		m.toContact(it.JID, b)
	}
	if unavailable {
		for _, j := range sess.TakeDirected() {
			if !sent[j.Bare().String()] && !m.either(blocked, me, j) {
				m.deliverTo(j, b)
			}
		}
	}
}

// toContact delivers b to every available session of a local contact,
// or sends it to a remote one.
func (m *Service) toContact(bareJID string, b []byte) {
	if m.isRemote(bareJID) {
		m.Remote(bareJID, b)
		return
	}
	var buf [8]*session.Bound
	for _, r := range router.AvailableOnly(buf[:0], m.Router.Sessions([]byte(bareJID))) {
		r.Deliver(b)
	}
}

// deliverTo delivers b to a full JID's session, or to every available
// session of a bare JID.
func (m *Service) deliverTo(j jid.JID, b []byte) {
	if m.isRemote(j.String()) {
		m.Remote(j.String(), b)
		return
	}
	if j.Resource() == "" {
		m.toContact(j.String(), b)
		return
	}
	if r := m.Router.Session([]byte(j.Bare().String()), []byte(j.Resource())); r != nil {
		r.Deliver(b)
	}
}

// probeContacts answers the probes the server sends on a user's behalf
// at initial presence (RFC 6121 §4.3): the last presence of every
// available resource of each contact the user is subscribed to, and of
// the user's own other resources. Contacts either side blocks are skipped
// (XEP-0191 §3.5).
func (m *Service) probeContacts(sess session.Peer, blocked Blocker) {
	me := sess.JID()
	for _, r := range m.Router.Sessions([]byte(me.Bare().String())) {
		if session.Peer(r) == sess {
			continue
		}
		if r.Available() {
			if p := r.Presence(); p != nil {
				sess.Deliver(p)
			}
		}
	}
	items, _, err := m.Store.Roster(me.Local())
	if err != nil {
		m.Log.Error("im: read roster for probes", "user", me.Local(), "err", err)
		return
	}
	for _, it := range items {
		if it.Subscription != "to" && it.Subscription != "both" {
			continue
		}
		if blocked != nil {
			if c, err := jid.Parse(it.JID); err != nil || m.either(blocked, me, c) {
				continue
			}
		}
		if m.isRemote(it.JID) {
			// The contact's server answers the probe (RFC 6121 §4.3.1).
			m.Remote(it.JID, subscriptionStanza("probe", me.Bare().String(), it.JID))
			continue
		}
		for _, r := range m.Router.Sessions([]byte(it.JID)) {
			if r.Available() {
				if p := r.Presence(); p != nil {
					sess.Deliver(p)
				}
			}
		}
	}
}

// Closed sends unavailable presence for a session that ended while
// available, whatever the reason (RFC 6121 §4.5.2).
func (m *Service) Closed(sess session.Peer) { m.ClosedBlocking(sess, nil) }

// ClosedBlocking is Closed skipping the contacts either side blocks
// (XEP-0191 §3.5).
func (m *Service) ClosedBlocking(sess session.Peer, blocked Blocker) {
	if !sess.Available() {
		return
	}
	sess.SetPresence(false, 0, nil)
	b := append([]byte(nil), "<presence type='unavailable' from='"...)
	b = stanza.AppendEscaped(b, sess.JID().String())
	b = append(b, "'/>"...)
	m.broadcast(sess, b, true, blocked)
}

// Resend sends every available local session's presence to its remote
// contacts, and probes theirs: after the link to other domains came
// (back) up, as presence was not queued while it was down.
func (m *Service) Resend(blocked Blocker) { m.resend("", blocked) }

// ResendTo is Resend for the contacts at one domain (an external
// component that just connected).
func (m *Service) ResendTo(domain string, blocked Blocker) { m.resend(domain, blocked) }

// resend sends presence and probes to the remote contacts at domain ("":
// every remote domain).
func (m *Service) resend(domain string, blocked Blocker) {
	var avail []*session.Bound
	m.Router.Each(func(r *session.Bound) {
		if r.Available() {
			avail = append(avail, r)
		}
	})
	for _, s := range avail {
		me := s.JID()
		items, _, err := m.Store.Roster(me.Local())
		if err != nil {
			m.Log.Error("im: read roster to resend presence", "user", me.Local(), "err", err)
			continue
		}
		for _, it := range items {
			if !m.isRemote(it.JID) || (domain != "" && jid.DomainOf(it.JID) != domain) {
				continue
			}
			if c, err := jid.Parse(it.JID); err == nil && m.either(blocked, me, c) {
				continue // XEP-0191 §3.5: no presence either way
			}
			if p := s.Presence(); p != nil && hasFrom(it.Subscription) {
				m.Remote(it.JID, p)
			}
			if hasTo(it.Subscription) {
				m.Remote(it.JID, subscriptionStanza("probe", me.Bare().String(), it.JID))
			}
		}
	}
}
