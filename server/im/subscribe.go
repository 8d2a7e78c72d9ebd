package im

import (
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// Subscription states are the roster item's subscription (none, to, from,
// both) plus two flags: Ask (pending-out) on the item and a stored request
// in the pending bucket (pending-in). RFC 6121 Appendix A defines how each
// subscription stanza moves them; this file applies it.
//
// Both ends of a subscription live on this server (federation comes
// later), so one stanza is processed twice in one store transaction: as
// outbound on the sender's account (§3.x.2) and as inbound on the
// recipient's (§3.x.3). Everything a change makes visible (roster pushes,
// deliveries, presence) is collected as effects and carried out only
// after the transaction committed, so nobody is told of a state that a
// crash could undo.

// effects are what a subscription change makes visible, in order.
type effects struct {
	pushes   []rosterPush
	delivers []delivery
	presence []presenceCopy
}

type rosterPush struct {
	user string // localpart
	item storage.RosterItem
	ver  uint64
}

// delivery sends stanza to every available resource of the bare JID to.
type delivery struct {
	to     string
	stanza []byte
}

// presenceCopy sends the presence of every available resource of from
// (or unavailable presence for each, when !available) to the bare JID to.
type presenceCopy struct {
	from, to  string
	available bool
}

func (fx *effects) push(user string, it storage.RosterItem, ver uint64) {
	fx.pushes = append(fx.pushes, rosterPush{user: user, item: it, ver: ver})
}

// subscriptionStanza builds a server-generated subscription presence.
func subscriptionStanza(typ, from, to string) []byte {
	b := append([]byte(nil), "<presence type='"...)
	b = append(b, typ...)
	b = append(b, "' from='"...)
	b = stanza.AppendEscaped(b, from)
	b = append(b, "' to='"...)
	b = stanza.AppendEscaped(b, to)
	return append(b, "'/>"...)
}

// Subscription handles subscription management presence (subscribe,
// subscribed, unsubscribe, unsubscribed) and probes from sess to the
// local bare JID to.
func (m *Service) Subscription(sess session.Peer, st *stanza.Stanza, to []byte) {
	typ := string(st.Type)
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
	case "probe":
		m.probe(sess.JID().Bare().String(), string(to))
		return
	default:
		return
	}
	user := sess.JID().Bare()
	contact, err := jid.ParseBytes(to)
	if err != nil || contact.Equal(user) {
		return // subscribing to oneself has no meaning (RFC 6121 §3.1.1)
	}
	// The stanza as the contact sees it: from the user's bare JID
	// (RFC 6121 §3.1.2), payload (such as a status text) kept.
	b := stanza.AppendForward(nil, st, user.String(), "")
	remoteUser := user.Domain() != m.Domain // it came from another domain (uplink or s2s)
	remoteContact := m.isRemote(contact.String())
	var fx effects
	var route bool
	err = m.Store.Update(func(tx *storage.Tx) error {
		fx, route = effects{}, false
		if remoteUser {
			// Only the recipient's side is ours (RFC 6121 §3.1.3).
			return m.inbound(tx, contact, user, typ, b, &fx)
		}
		var err error
		if route, err = m.outbound(tx, user, contact, typ, &fx); err != nil || !route || remoteContact {
			return err
		}
		return m.inbound(tx, contact, user, typ, b, &fx)
	})
	if err != nil {
		m.Log.Error("im: subscription change", "user", user.String(), "contact", contact.String(), "type", typ, "err", err)
		m.reply(sess, st, stanza.InternalServerError, "")
		return
	}
	m.apply(&fx)
	if route && remoteContact {
		m.Remote(contact.String(), b)
	}
}

// outbound applies the sender's side of a subscription stanza (RFC 6121
// §3.1.2, §3.2.2, §3.3.2, §3.4; Appendix A.2). route is whether the
// stanza goes on to the contact.
func (m *Service) outbound(tx *storage.Tx, user, contact jid.JID, typ string, fx *effects) (route bool, err error) {
	u, c := user.Local(), contact.String()
	item, found, err := tx.RosterItem(u, c)
	if err != nil {
		return false, err
	}
	if !found {
		item = storage.RosterItem{JID: c, Subscription: "none"}
	}
	old := item
	switch typ {
	case "subscribe":
		if item.Subscription == "none" || item.Subscription == "from" || item.Subscription == "" {
			item.Ask = true
		}
		route = true
	case "unsubscribe":
		item.Subscription = dropTo(item.Subscription)
		item.Ask = false
		route = true
	case "subscribed":
		pending, err := tx.ClearPendingIn(u, c)
		if err != nil {
			return false, err
		}
		switch {
		case pending:
			item.Subscription = addFrom(item.Subscription)
			item.Approved = false
			route = true
			fx.presence = append(fx.presence, presenceCopy{from: user.String(), to: c, available: true})
		case hasFrom(item.Subscription):
			// Already approved: nothing to do.
		default:
			// Pre-approval (RFC 6121 §3.4): remembered, not routed.
			item.Approved = true
		}
	case "unsubscribed":
		pending, err := tx.ClearPendingIn(u, c)
		if err != nil {
			return false, err
		}
		hadFrom := hasFrom(item.Subscription)
		item.Subscription = dropFrom(item.Subscription)
		item.Approved = false
		route = pending || hadFrom
		if hadFrom {
			fx.presence = append(fx.presence, presenceCopy{from: user.String(), to: c, available: false})
		}
	}
	if !sameState(old, item) || (!found && (item.Ask || item.Approved)) {
		if err := m.putAndPush(tx, u, item, fx); err != nil {
			return false, err
		}
	}
	return route, nil
}

// inbound applies the recipient's side (RFC 6121 §3.1.3, §3.1.6, §3.2.3,
// §3.3.3; Appendix A.3). b is the stanza as routed.
func (m *Service) inbound(tx *storage.Tx, recipient, sender jid.JID, typ string, b []byte, fx *effects) error {
	r, s := recipient.Local(), sender.String()
	if recipient.Domain() != m.Domain {
		if m.Remote != nil {
			// A server-generated answer for a remote sender goes back
			// out; the rest is for the recipient's own server.
			fx.delivers = append(fx.delivers, delivery{to: recipient.String(), stanza: b})
		}
		return nil
	}
	exists, err := m.accountExists(tx, r)
	if err != nil {
		return err
	}
	if !exists {
		if typ == "subscribe" {
			// No such account: the server answers unsubscribed on its
			// behalf (RFC 6121 §3.1.3).
			return m.inbound(tx, sender, recipient, "unsubscribed", subscriptionStanza("unsubscribed", recipient.String(), s), fx)
		}
		return nil
	}
	item, found, err := tx.RosterItem(r, s)
	if err != nil {
		return err
	}
	switch typ {
	case "subscribe":
		switch {
		case found && hasFrom(item.Subscription):
			// Already subscribed: answer for the recipient.
			return m.inbound(tx, sender, recipient, "subscribed", subscriptionStanza("subscribed", recipient.String(), s), fx)
		case found && item.Approved:
			item.Approved = false
			item.Subscription = addFrom(item.Subscription)
			if err := m.putAndPush(tx, r, item, fx); err != nil {
				return err
			}
			fx.presence = append(fx.presence, presenceCopy{from: recipient.String(), to: s, available: true})
			return m.inbound(tx, sender, recipient, "subscribed", subscriptionStanza("subscribed", recipient.String(), s), fx)
		}
		pending, err := tx.HasPendingIn(r, s)
		if err != nil || pending {
			return err // asked before: not delivered twice
		}
		// A peer (another domain above all) could otherwise fill the
		// store with requests nobody answers: beyond the bound they are
		// dropped, as if lost on the way (RFC 6121 §3.1.3 lets the
		// server keep or not).
		n, err := tx.PendingInCount(r)
		if err != nil {
			return err
		}
		if n >= m.pendingLimit() {
			m.Log.Debug("im: subscription request dropped: too many pending", "user", r, "from", s, "pending", n)
			return nil
		}
		if err := tx.SetPendingIn(r, s, b); err != nil {
			return err
		}
		fx.delivers = append(fx.delivers, delivery{to: recipient.String(), stanza: b})
	case "unsubscribe":
		pending, err := tx.ClearPendingIn(r, s)
		if err != nil {
			return err
		}
		if !found && !pending {
			return nil
		}
		hadFrom := found && hasFrom(item.Subscription)
		if found && hadFrom {
			item.Subscription = dropFrom(item.Subscription)
			if err := m.putAndPush(tx, r, item, fx); err != nil {
				return err
			}
			fx.presence = append(fx.presence, presenceCopy{from: recipient.String(), to: s, available: false})
		}
		if hadFrom || pending {
			fx.delivers = append(fx.delivers, delivery{to: recipient.String(), stanza: b})
		}
	case "subscribed":
		if !found || !item.Ask {
			return nil // not asked for: ignored (RFC 6121 §3.1.6)
		}
		item.Ask = false
		item.Subscription = addTo(item.Subscription)
		if err := m.putAndPush(tx, r, item, fx); err != nil {
			return err
		}
		fx.delivers = append(fx.delivers, delivery{to: recipient.String(), stanza: b})
	case "unsubscribed":
		if !found || (!item.Ask && !hasTo(item.Subscription)) {
			return nil
		}
		item.Ask = false
		item.Subscription = dropTo(item.Subscription)
		if err := m.putAndPush(tx, r, item, fx); err != nil {
			return err
		}
		fx.delivers = append(fx.delivers, delivery{to: recipient.String(), stanza: b})
	}
	return nil
}

func (m *Service) accountExists(tx *storage.Tx, local string) (bool, error) {
	return tx.UserExists(local)
}

func (m *Service) putAndPush(tx *storage.Tx, user string, item storage.RosterItem, fx *effects) error {
	ver, err := tx.PutRosterItem(user, item)
	if err != nil {
		return err
	}
	fx.push(user, item, ver)
	return nil
}

// apply carries out the effects of a committed change.
func (m *Service) apply(fx *effects) {
	for _, p := range fx.pushes {
		j, err := jid.New(p.user, m.Domain, "")
		if err == nil {
			m.push(j, p.item, p.ver)
		}
	}
	for _, d := range fx.delivers {
		m.toContact(d.to, d.stanza)
	}
	for _, p := range fx.presence {
		m.copyPresence(p.from, p.to, p.available)
	}
}

// copyPresence sends the presence of each available resource of from to
// the available resources of to, or unavailable presence for each.
func (m *Service) copyPresence(from, to string, available bool) {
	for _, r := range m.Router.Sessions([]byte(from)) {
		s := r
		if !s.Available() {
			continue
		}
		if available {
			if p := s.Presence(); p != nil {
				m.toContact(to, p)
			}
			continue
		}
		b := append([]byte(nil), "<presence type='unavailable' from='"...)
		b = stanza.AppendEscaped(b, r.JID().String())
		b = append(b, "'/>"...)
		m.toContact(to, b)
	}
}

// probe answers a presence probe from user about contact (RFC 6121
// §4.3.2): the contact's current presence if the user is subscribed to it.
func (m *Service) probe(user, contact string) {
	c, err := jid.Parse(contact)
	if err != nil {
		return
	}
	it, found, err := m.Store.RosterItem(c.Local(), user)
	if err != nil || !found || !hasFrom(it.Subscription) {
		return
	}
	m.copyPresence(contact, user, true)
}

func hasFrom(sub string) bool { return sub == "from" || sub == "both" }
func hasTo(sub string) bool   { return sub == "to" || sub == "both" }

func addFrom(sub string) string {
	if hasTo(sub) {
		return "both"
	}
	return "from"
}

func addTo(sub string) string {
	if hasFrom(sub) {
		return "both"
	}
	return "to"
}

func dropFrom(sub string) string {
	if hasTo(sub) {
		return "to"
	}
	return "none"
}

func dropTo(sub string) string {
	if hasFrom(sub) {
		return "from"
	}
	return "none"
}

func sameState(a, b storage.RosterItem) bool {
	return a.Subscription == b.Subscription && a.Ask == b.Ask && a.Approved == b.Approved
}
