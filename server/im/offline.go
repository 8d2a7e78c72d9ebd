package im

import (
	"bytes"
	"roost/server/router"
	"roost/server/session"
	"time"

	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// StoreOffline keeps a chat or normal message for a local account that
// has no available resource (XEP-0160), stamped with the time it arrived
// (XEP-0203). Over the account's quota the sender gets
// service-unavailable. The write commits before this returns.
//
// It runs under the account's lock and looks once more for an available
// resource first: one that became available since the message was routed
// (and flushed the store before this message was in it) gets the message
// now.
func (m *Service) StoreOffline(sess session.Peer, st *stanza.Stanza, stamped []byte, local string) {
	unlock := accounts.lock(local)
	defer unlock()
	var buf [8]*session.Bound
	delivered := false
	for _, r := range router.Best(buf[:0], m.Router.Sessions([]byte(local+"@"+m.Domain))) {
		delivered = r.Deliver(stamped) || delivered
	}
	if delivered {
		return
	}
	b := withDelay(stamped, m.Domain, time.Now())
	var stored bool
	err := m.Store.Update(func(tx *storage.Tx) error {
		var err error
		stored, err = tx.AddOffline(local, b, m.OfflineQuota)
		return err
	})
	switch {
	case err != nil:
		m.Log.Error("im: store offline message", "user", local, "err", err)
		m.reply(sess, st, stanza.InternalServerError, "")
	case !stored:
		m.reply(sess, st, stanza.ServiceUnavailable, "the recipient is offline and can take no more messages")
	}
}

// withDelay inserts a XEP-0203 <delay/> as the last child of a stanza.
//
// A message stored again (its first recipient's session ended before it
// was delivered) keeps the stamp of when it first arrived.
func withDelay(stanzaBytes []byte, domain string, at time.Time) []byte {
	delay := append([]byte(nil), "<delay xmlns='urn:xmpp:delay' from='"...)
	delay = stanza.AppendEscaped(delay, domain)
	if bytes.Contains(stanzaBytes, delay) {
		return stanzaBytes
	}
	delay = append(delay, "' stamp='"...)
	delay = at.UTC().AppendFormat(delay, "2006-01-02T15:04:05.000Z")
	delay = append(delay, "'>Offline storage</delay>"...)
	out := make([]byte, 0, len(stanzaBytes)+len(delay)+16)
	if bytes.HasSuffix(stanzaBytes, []byte("/>")) {
		// <message .../> becomes <message ...><delay/></message>
		out = append(out, stanzaBytes[:len(stanzaBytes)-2]...)
		out = append(out, '>')
		out = append(out, delay...)
		return append(out, "</message>"...)
	}
	i := bytes.LastIndex(stanzaBytes, []byte("</"))
	out = append(out, stanzaBytes[:i]...)
	out = append(out, delay...)
	return append(out, stanzaBytes[i:]...)
}

// deliverOffline hands the account's stored messages to sess, oldest
// first, and deletes each one only once the session has taken it.
//
// A message from a JID the account has blocked since it was stored is
// dropped, not delivered (XEP-0191 §3.5: nothing from a blocked entity).
func (m *Service) deliverOffline(sess session.Peer, blocked Blocker) {
	local := sess.JID().Local()
	me := sess.JID()
	var msgs []storage.OfflineMessage
	if err := m.Store.View(func(tx *storage.Tx) error {
		var err error
		msgs, err = tx.Offline(local)
		return err
	}); err != nil || len(msgs) == 0 {
		if err != nil {
			m.Log.Error("im: read offline messages", "user", local, "err", err)
		}
		return
	}
	done := make([]uint64, 0, len(msgs))
	for _, msg := range msgs {
		if blocked != nil {
			if from, ok := stanza.AttrValue(msg.Stanza, "from"); ok {
				if j, err := jid.Parse(from); err == nil && blocked([]byte(me.Bare().String()), j) {
					done = append(done, msg.Seq)
					continue
				}
			}
		}
		if !deliverRequested(sess, msg.Stanza) {
			break
		}
		done = append(done, msg.Seq)
	}
	if err := m.Store.Update(func(tx *storage.Tx) error { return tx.DeleteOffline(local, done) }); err != nil {
		m.Log.Error("im: delete delivered offline messages", "user", local, "err", err)
	}
}

// redeliverPending gives a newly available session the subscription
// requests still waiting for an answer (RFC 6121 §3.1.3).
func (m *Service) redeliverPending(sess session.Peer) {
	var pending []storage.Pending
	m.Store.View(func(tx *storage.Tx) error {
		var err error
		pending, err = tx.PendingIn(sess.JID().Local())
		return err
	})
	for _, p := range pending {
		sess.Deliver(p.Stanza)
	}
}

// requested is a session that takes bytes its client asked for (the
// offline flush, a roster) paced by its queue's free space instead of
// counting them as slow reading (session.Bound.DeliverRequested).
type requested interface{ DeliverRequested(b []byte) bool }

// deliverRequested queues b, which sess's client asked for: the server
// never drops a client for what that client requested (issue 14).
func deliverRequested(sess session.Peer, b []byte) bool {
	if r, ok := sess.(requested); ok {
		return r.DeliverRequested(b)
	}
	return sess.Deliver(b)
}
