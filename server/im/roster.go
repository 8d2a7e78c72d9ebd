package im

import (
	"encoding/xml"
	"errors"
	"roost/server/session"
	"strconv"

	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// NSRoster is the roster namespace (RFC 6121 §2).
const NSRoster = "jabber:iq:roster"

// maxNameBytes bounds an item's name and each group name; RFC 6121
// §2.1.2.4 lets a server refuse longer ones with not-acceptable.
const maxNameBytes = 1023

type rosterQuery struct {
	XMLName xml.Name     `xml:"jabber:iq:roster query"`
	Ver     *string      `xml:"ver,attr"`
	Items   []rosterItem `xml:"item"`
}

type rosterItem struct {
	JID          string   `xml:"jid,attr"`
	Name         string   `xml:"name,attr,omitempty"`
	Subscription string   `xml:"subscription,attr,omitempty"`
	Ask          string   `xml:"ask,attr,omitempty"`
	Approved     string   `xml:"approved,attr,omitempty"`
	Groups       []string `xml:"group"`
}

type rosterIQ struct {
	Query rosterQuery `xml:"jabber:iq:roster query"`
}

// RosterIQ handles a roster get or set from the account's own session
// (RFC 6121 §2.1.3, §2.1.5, §2.5). The caller has checked that the iq is
// addressed to the account's own bare JID or to no one.
func (m *Service) RosterIQ(sess session.Peer, st *stanza.Stanza) {
	var req rosterIQ
	if err := xml.Unmarshal(st.Tok.Raw, &req); err != nil {
		m.reply(sess, st, stanza.BadRequest, "the roster query could not be read")
		return
	}
	user := sess.JID().Local()
	switch string(st.Type) {
	case "get":
		m.rosterGet(sess, st, user, req.Query.Ver)
	case "set":
		m.rosterSet(sess, st, user, req.Query.Items)
	}
}

func (m *Service) rosterGet(sess session.Peer, st *stanza.Stanza, user string, clientVer *string) {
	sess.RequestedRoster()
	items, ver, err := m.Store.Roster(user)
	if err != nil {
		m.Log.Error("im: roster get", "user", user, "err", err)
		m.reply(sess, st, stanza.InternalServerError, "")
		return
	}
	verStr := strconv.FormatUint(ver, 10)
	to := sess.JID().String()
	if clientVer != nil && *clientVer == verStr {
		// XEP-0237 §2.3: the client's copy is current; changes since
		// arrive as pushes.
		sess.Deliver(stanza.AppendIQResult(nil, st.ID, to, "", nil))
		return
	}
	payload := append([]byte(nil), "<query xmlns='jabber:iq:roster' ver='"...)
	payload = append(payload, verStr...)
	payload = append(payload, "'>"...)
	for _, it := range items {
		payload = appendItem(payload, it)
	}
	payload = append(payload, "</query>"...)
	deliverRequested(sess, stanza.AppendIQResult(nil, st.ID, to, "", payload))
}

func (m *Service) rosterSet(sess session.Peer, st *stanza.Stanza, user string, items []rosterItem) {
	if len(items) != 1 {
		m.reply(sess, st, stanza.BadRequest, "a roster set carries exactly one item (RFC 6121 §2.3.3)")
		return
	}
	in := items[0]
	contact, err := jid.Parse(in.JID)
	if err != nil {
		m.reply(sess, st, stanza.JIDMalformed, "the item's jid is not a valid JID")
		return
	}
	contact = contact.Bare()
	if in.Subscription == "remove" {
		m.rosterRemove(sess, st, user, contact)
		return
	}
	if in.Subscription != "" && in.Subscription != "none" && in.Subscription != "both" && in.Subscription != "to" && in.Subscription != "from" {
		m.reply(sess, st, stanza.BadRequest, "subscription may only be 'remove' in a roster set")
		return
	}
	if contact.Equal(sess.JID().Bare()) {
		m.reply(sess, st, stanza.NotAllowed, "your own JID cannot be a roster item")
		return
	}
	if len(in.Name) > maxNameBytes {
		m.reply(sess, st, stanza.NotAcceptable, "the item name is too long")
		return
	}
	seen := make(map[string]bool, len(in.Groups))
	for _, g := range in.Groups {
		switch {
		case g == "":
			m.reply(sess, st, stanza.NotAcceptable, "a group name may not be empty")
			return
		case len(g) > maxNameBytes:
			m.reply(sess, st, stanza.NotAcceptable, "a group name is too long")
			return
		case seen[g]:
			m.reply(sess, st, stanza.BadRequest, "the same group is listed twice")
			return
		}
		seen[g] = true
	}
	var item storage.RosterItem
	var ver uint64
	err = m.Store.Update(func(tx *storage.Tx) error {
		old, found, err := tx.RosterItem(user, contact.String())
		if err != nil {
			return err
		}
		if !found {
			n, err := tx.RosterSize(user)
			if err != nil {
				return err
			}
			if n >= m.RosterLimit {
				return errRosterFull
			}
			old = storage.RosterItem{JID: contact.String(), Subscription: "none"}
		}
		old.Name = in.Name
		old.Groups = in.Groups
		item = old
		ver, err = tx.PutRosterItem(user, old)
		return err
	})
	switch {
	case errors.Is(err, errRosterFull):
		m.reply(sess, st, stanza.ResourceConstraint, "the roster is full")
		return
	case err != nil:
		m.Log.Error("im: roster set", "user", user, "err", err)
		m.reply(sess, st, stanza.InternalServerError, "")
		return
	}
	sess.Deliver(stanza.AppendIQResult(nil, st.ID, sess.JID().String(), "", nil))
	m.push(sess.JID(), item, ver)
}

var errRosterFull = errors.New("roster full")

// rosterRemove deletes an item and, as RFC 6121 §2.5.2 asks, cancels the
// subscriptions both ways: unsubscribe if the user was subscribed to the
// contact (or asking), unsubscribed if the contact was subscribed to the
// user (or asking).
func (m *Service) rosterRemove(sess session.Peer, st *stanza.Stanza, user string, contact jid.JID) {
	me := sess.JID().Bare()
	var fx effects
	err := m.Store.Update(func(tx *storage.Tx) error {
		fx = effects{}
		item, found, err := tx.RosterItem(user, contact.String())
		if err != nil {
			return err
		}
		if !found {
			return errNoItem
		}
		if hasTo(item.Subscription) || item.Ask {
			b := subscriptionStanza("unsubscribe", me.String(), contact.String())
			if err := m.inbound(tx, contact, me, "unsubscribe", b, &fx); err != nil {
				return err
			}
		}
		pending, err := tx.ClearPendingIn(user, contact.String())
		if err != nil {
			return err
		}
		if hasFrom(item.Subscription) || pending {
			if hasFrom(item.Subscription) {
				fx.presence = append(fx.presence, presenceCopy{from: me.String(), to: contact.String(), available: false})
			}
			b := subscriptionStanza("unsubscribed", me.String(), contact.String())
			if err := m.inbound(tx, contact, me, "unsubscribed", b, &fx); err != nil {
				return err
			}
		}
		ver, _, err := tx.DeleteRosterItem(user, contact.String())
		if err != nil {
			return err
		}
		fx.push(user, storage.RosterItem{JID: contact.String(), Subscription: "remove"}, ver)
		return nil
	})
	switch {
	case errors.Is(err, errNoItem):
		m.reply(sess, st, stanza.ItemNotFound, "no such roster item")
		return
	case err != nil:
		m.Log.Error("im: roster remove", "user", user, "err", err)
		m.reply(sess, st, stanza.InternalServerError, "")
		return
	}
	sess.Deliver(stanza.AppendIQResult(nil, st.ID, sess.JID().String(), "", nil))
	m.apply(&fx)
}

var errNoItem = errors.New("no such roster item")

// push sends a roster push for item to every interested resource of the
// user (RFC 6121 §2.1.6), the one that made the change included.
func (m *Service) push(user jid.JID, item storage.RosterItem, ver uint64) {
	for _, r := range m.Router.Sessions([]byte(user.Bare().String())) {
		s := r
		if !s.Interested() {
			continue
		}
		b := append([]byte(nil), "<iq type='set' id='push"...)
		b = strconv.AppendUint(b, ver, 10)
		b = append(b, "' to='"...)
		b = stanza.AppendEscaped(b, r.JID().String())
		b = append(b, "'><query xmlns='jabber:iq:roster' ver='"...)
		b = strconv.AppendUint(b, ver, 10)
		b = append(b, "'>"...)
		b = appendItem(b, item)
		b = append(b, "</query></iq>"...)
		r.Deliver(b)
	}
}

func appendItem(b []byte, it storage.RosterItem) []byte {
	b = append(b, "<item jid='"...)
	b = stanza.AppendEscaped(b, it.JID)
	b = append(b, '\'')
	if it.Name != "" {
		b = append(b, " name='"...)
		b = stanza.AppendEscaped(b, it.Name)
		b = append(b, '\'')
	}
	sub := it.Subscription
	if sub == "" {
		sub = "none"
	}
	b = append(b, " subscription='"...)
	b = append(b, sub...)
	b = append(b, '\'')
	if it.Ask {
		b = append(b, " ask='subscribe'"...)
	}
	if it.Approved {
		b = append(b, " approved='true'"...)
	}
	if len(it.Groups) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	for _, g := range it.Groups {
		b = append(b, "<group>"...)
		b = stanza.AppendEscaped(b, g)
		b = append(b, "</group>"...)
	}
	return append(b, "</item>"...)
}
