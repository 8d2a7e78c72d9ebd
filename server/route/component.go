package route

import (
	"roost/wire/jid"
	"roost/wire/stanza"
)

// ComponentUp is told that a component's session began
// (component.Linked): local users' presence goes to their contacts at its
// domain, and their presence is probed (RFC 6121 §4.2.2, §4.3), as for a
// link that came back up.
func (s *Service) ComponentUp(domain string) { s.IM.ResendTo(domain, s.blocker()) }

// FromComponent routes a stanza an external component sent (XEP-0114,
// server/component). Its stream already checked that from is a JID at
// the component's own domain (invalid-from otherwise) and that to is a
// JID (improper-addressing). To the local domain it is routed as from a
// sender on another domain (fromRemote): rosters, subscriptions and
// presence treat a component's JIDs as remote contacts, and answers go
// back out through Remote to the component. To another component or a
// remote domain it leaves through Remote, with from in prepared form;
// refused there, a message or iq is answered to the component.
//
// As in fromRemote, a from at our own domain in any spelling is dropped
// and logged: a component never speaks for local accounts.
func (s *Service) FromComponent(st *stanza.Stanza) {
	from, to, ok := remoteAddrs(st)
	if !ok || from.Domain() == s.Domain {
		s.Log.Warn("component: dropped a stanza with a malformed or spoofed address", "from", string(st.From), "to", string(st.To))
		return
	}
	raw := forwardFromRemote(st, from)
	sender := &remoteSession{jid: from, link: s}
	if to.Domain() == s.Domain {
		s.Route(sender, st, raw)
		return
	}
	if s.Remote == nil {
		if st.Kind != stanza.Presence {
			s.bounce(sender, st, stanza.RemoteServerNotFound, "this server is not connected to other domains")
		}
		return
	}
	if err := s.Remote.Send(to.Domain(), st.Kind, raw); err != nil && st.Kind != stanza.Presence {
		s.bounce(sender, st, stanza.RemoteServerTimeout, err.Error())
	}
}

// Refused answers the sender of b, a stanza that a way out (a component
// that is not connected, no route to other domains) could not take: a
// local sender's session gets the error (Undeliverable), a sender on a
// component or another domain gets it through Remote. An error, an iq
// result and presence are never answered (RFC 6120 §8.3.1), which also
// ends any loop between two ways out that both refuse.
func (s *Service) Refused(b []byte, cond stanza.Condition, text string) {
	kind := stanza.KindOf(b)
	typ, _ := stanza.AttrValue(b, "type")
	if typ == "error" || (kind == stanza.IQ && typ == "result") || kind == stanza.Presence {
		return
	}
	from, _ := stanza.AttrValue(b, "from")
	j, err := jid.Parse(from)
	if err != nil {
		return
	}
	if j.Domain() == s.Domain {
		s.Undeliverable(b, cond, text)
		return
	}
	to, _ := stanza.AttrValue(b, "to")
	var id []byte // AppendErrorFor takes the id as scanned: escape it again
	if v, ok := stanza.AttrValue(b, "id"); ok {
		id = stanza.AppendEscaped([]byte{}, v)
	}
	s.SendRemote(from, stanza.AppendErrorFor(nil, kind, id, from, to, cond, cond.DefaultType(), text))
}
