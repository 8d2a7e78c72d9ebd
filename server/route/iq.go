package route

import (
	"encoding/xml"
	"roost/server/session"
	"runtime"

	"roost/server/adhoc"
	"roost/server/blocking"
	"roost/server/caps"
	"roost/server/carbons"
	"roost/server/im"
	"roost/server/lastactivity"
	"roost/server/pep"
	"roost/server/private"
	"roost/server/vcard"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// Namespaces the server answers iqs for (each a feature in disco#info).
const (
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"
	nsDiscoItems = "http://jabber.org/protocol/disco#items"
	nsPing       = "urn:xmpp:ping"
	nsVersion    = "jabber:iq:version"
	nsSession    = "urn:ietf:params:xml:ns:xmpp-session"
)

// iqHandler answers one iq get or set addressed to the server (or, for
// the account's own namespaces, to the user's own bare JID).
type iqHandler func(s *Service, sess session.Peer, st *stanza.Stanza)

// iqHandlers is the feature list: every namespace the server answers,
// keyed by the namespace of the iq's child element. Anything else gets
// service-unavailable (RFC 6120 §8.4). disco#info advertises exactly
// these (features).
var iqHandlers = map[string]iqHandler{
	nsDiscoInfo:  (*Service).discoInfo,
	nsDiscoItems: (*Service).discoItems,
	nsPing:       (*Service).ping,
	nsVersion:    (*Service).version,
	nsSession:    (*Service).session,
	im.NSRoster:  (*Service).roster,
	carbons.NS:   func(s *Service, sess session.Peer, st *stanza.Stanza) { s.Carbons.IQ(sess, st, s.Domain) },
	adhoc.NS:     (*Service).commands,
	pep.NS:       (*Service).ownPubsub,
	pep.NSOwner:  (*Service).ownPubsub,
	blocking.NS: func(s *Service, sess session.Peer, st *stanza.Stanza) {
		if s.Blocking == nil {
			s.bounce(sess, st, stanza.ServiceUnavailable, "")
			return
		}
		s.Blocking.IQ(sess, st)
	},
	private.NS: func(s *Service, sess session.Peer, st *stanza.Stanza) {
		if s.Private == nil {
			s.bounce(sess, st, stanza.ServiceUnavailable, "")
			return
		}
		s.Private.IQ(sess, st)
	},
	vcard.NS: func(s *Service, sess session.Peer, st *stanza.Stanza) {
		if s.VCard == nil {
			s.bounce(sess, st, stanza.ServiceUnavailable, "")
			return
		}
		s.VCard.IQ(sess, st, sess.JID().Bare())
	},
	lastactivity.NS: func(s *Service, sess session.Peer, st *stanza.Stanza) {
		if s.Last == nil {
			s.bounce(sess, st, stanza.ServiceUnavailable, "")
			return
		}
		s.Last.IQ(sess, st, jid.JID{})
	},
}

// Features is what the server's disco#info lists, in a fixed order: the
// namespaces of iqHandlers whose service is on.
func (s *Service) Features() []string {
	// msgoffline: XEP-0160 §5, offline messages are stored (im).
	f := []string{nsDiscoInfo, nsDiscoItems, nsPing, nsVersion, im.NSRoster, carbons.NS, adhoc.NS, "msgoffline"}
	if s.Blocking != nil {
		f = append(f, blocking.NS)
	}
	if s.Private != nil {
		f = append(f, private.NS)
	}
	if s.VCard != nil {
		f = append(f, vcard.NS)
	}
	if s.Last != nil {
		f = append(f, lastactivity.NS)
	}
	return f
}

// serverIdentity is the server's disco#info identity (XEP-0030 §3.1).
const serverIdentity = "<identity category='server' type='im' name='Roost'/>"

// CapsElement is the server's XEP-0115 caps element for the stream
// features (§6.3).
func (s *Service) CapsElement() []byte { return caps.ServerElement(serverIdentity, s.Features()) }

// ownPubsub passes a pubsub iq with no 'to' (or to the server) to the
// sender's own PEP service (XEP-0163 §3).
func (s *Service) ownPubsub(sess session.Peer, st *stanza.Stanza) {
	if s.PEP == nil {
		s.bounce(sess, st, stanza.ServiceUnavailable, "")
		return
	}
	if st.To != nil && len(sess.JID().Local()) > 0 {
		// A pubsub iq to the server's own domain: Roost has no
		// domain-wide pubsub service, only PEP.
		if t, ok := resolveTo(st.To); ok && len(t.local) == 0 {
			s.bounce(sess, st, stanza.FeatureNotImplemented, "this server has no pubsub service of its own; publish to your own bare JID (PEP, XEP-0163)")
			return
		}
	}
	s.PEP.IQ(sess, st, sess.JID().Bare())
}

// serverIQ dispatches an iq for the server itself.
func (s *Service) serverIQ(sess session.Peer, st *stanza.Stanza) {
	if t := string(st.Type); t == "result" || t == "error" {
		s.Caps.ResultFrom(sess.JID(), st) // a caps query's answer (XEP-0115 §5.4); else a roster push's: nothing to do
		return
	}
	h := iqHandlers[string(st.Tok.ChildSpace)]
	if h == nil {
		s.bounce(sess, st, stanza.ServiceUnavailable, "")
		return
	}
	h(s, sess, st)
}

// result answers st with an iq result carrying payload (nil for none).
func (s *Service) result(sess session.Peer, st *stanza.Stanza, payload []byte) {
	session.Result(sess, st, s.Domain, payload)
}

type discoQuery struct {
	Node string `xml:"node,attr"`
}

// rootDisco checks a XEP-0030 query (a get) for an entity without nodes:
// it answers bad-request or item-not-found itself and reports whether
// the caller answers the query.
func (s *Service) rootDisco(sess session.Peer, st *stanza.Stanza) bool {
	if string(st.Type) != "get" {
		s.bounce(sess, st, stanza.BadRequest, "disco queries are type='get'")
		return false
	}
	var q struct {
		Query discoQuery `xml:"query"`
	}
	if err := xml.Unmarshal(st.Tok.Raw, &q); err != nil {
		s.bounce(sess, st, stanza.BadRequest, "")
		return false
	}
	if q.Query.Node != "" {
		s.bounce(sess, st, stanza.ItemNotFound, "no such node")
		return false
	}
	return true
}

// serverCapsNode reports whether a disco#info get asks for the server's
// caps node (XEP-0115 §6.2: node#ver is answered like the root).
func (s *Service) serverCapsNode(st *stanza.Stanza) bool {
	var q struct {
		Query discoQuery `xml:"query"`
	}
	return string(st.Type) == "get" && xml.Unmarshal(st.Tok.Raw, &q) == nil &&
		q.Query.Node == caps.Node+"#"+caps.ServerVer(serverIdentity, s.Features())
}

// discoInfo answers XEP-0030 disco#info for the server: its identity and
// the namespaces in iqHandlers.
func (s *Service) discoInfo(sess session.Peer, st *stanza.Stanza) {
	b := append([]byte(nil), "<query xmlns='http://jabber.org/protocol/disco#info'>"...)
	if s.serverCapsNode(st) {
		b = append(b[:len(b)-1], " node='"...)
		b = stanza.AppendEscaped(b, caps.Node+"#"+caps.ServerVer(serverIdentity, s.Features()))
		b = append(b, "'>"...)
	} else if !s.rootDisco(sess, st) {
		return
	}
	b = append(b, serverIdentity...)
	for _, f := range s.Features() {
		b = append(b, "<feature var='"...)
		b = append(b, f...)
		b = append(b, "'/>"...)
	}
	b = append(b, "</query>"...)
	s.result(sess, st, b)
}

// discoItems answers XEP-0030 disco#items: the server has no items but
// the ad-hoc commands under node http://jabber.org/protocol/commands
// (XEP-0050 §2.2).
func (s *Service) discoItems(sess session.Peer, st *stanza.Stanza) {
	if s.Commands != nil && string(st.Type) == "get" {
		var q struct {
			Query discoQuery `xml:"query"`
		}
		if xml.Unmarshal(st.Tok.Raw, &q) == nil && q.Query.Node == adhoc.NS {
			b := append([]byte(nil), "<query xmlns='http://jabber.org/protocol/disco#items' node='"+adhoc.NS+"'>"...)
			b = s.Commands.Items(b, sess)
			s.result(sess, st, append(b, "</query>"...))
			return
		}
	}
	if !s.rootDisco(sess, st) {
		return
	}
	s.result(sess, st, []byte("<query xmlns='http://jabber.org/protocol/disco#items'/>"))
}

// commands passes XEP-0050 ad-hoc commands to the server on to adhoc.
func (s *Service) commands(sess session.Peer, st *stanza.Stanza) {
	if s.Commands == nil {
		s.bounce(sess, st, stanza.ServiceUnavailable, "")
		return
	}
	s.Commands.IQ(sess, st)
}

// ping answers XEP-0199.
func (s *Service) ping(sess session.Peer, st *stanza.Stanza) {
	if string(st.Type) != "get" {
		s.bounce(sess, st, stanza.BadRequest, "")
		return
	}
	s.result(sess, st, nil)
}

// version answers XEP-0092 with the software name and version; the
// operating system is left out (XEP-0092 §5: it helps attackers).
func (s *Service) version(sess session.Peer, st *stanza.Stanza) {
	if string(st.Type) != "get" {
		s.bounce(sess, st, stanza.BadRequest, "")
		return
	}
	b := append([]byte(nil), "<query xmlns='jabber:iq:version'><name>Roost</name><version>"...)
	b = stanza.AppendEscaped(b, s.Version+" ("+runtime.Version()+")")
	b = append(b, "</version></query>"...)
	s.result(sess, st, b)
}

// session answers the RFC 3921 session establishment iq that old clients
// still send; RFC 6121 made it a no-op.
func (s *Service) session(sess session.Peer, st *stanza.Stanza) {
	s.result(sess, st, nil)
}

// roster passes roster queries on the user's own account to im; a roster
// query to anyone else's JID is forbidden (RFC 6121 §2.1.5).
func (s *Service) roster(sess session.Peer, st *stanza.Stanza) {
	if st.To != nil {
		t, ok := resolveTo(st.To)
		if !ok || string(t.bare) != sess.JID().Bare().String() {
			s.bounce(sess, st, stanza.Forbidden, "only your own roster can be read or changed")
			return
		}
	}
	s.IM.RosterIQ(sess, st)
}

// accountDisco answers XEP-0030 queries to a user's bare JID on the
// account's behalf: to the user and to contacts subscribed to the user's
// presence, and, for an account with open PEP nodes (XEP-0060 §4.5), to
// anyone about those nodes; anyone else learns nothing
// (service-unavailable, as for a JID that does not exist).
func (s *Service) accountDisco(sess session.Peer, st *stanza.Stanza, bare []byte, own bool) {
	if string(st.Type) != "get" {
		s.bounce(sess, st, stanza.BadRequest, "")
		return
	}
	var q struct {
		Query discoQuery `xml:"query"`
	}
	if err := xml.Unmarshal(st.Tok.Raw, &q); err != nil {
		s.bounce(sess, st, stanza.BadRequest, "")
		return
	}
	owner, err := jid.ParseBytes(bare)
	if err != nil {
		s.bounce(sess, st, stanza.JIDMalformed, "")
		return
	}
	asker := sess.JID()
	if !own {
		local, _, _, _ := jid.Split(bare)
		it, found, err := s.Store.RosterItem(string(local), asker.Bare().String())
		contact := err == nil && found && (it.Subscription == "from" || it.Subscription == "both")
		if !contact && (s.PEP == nil || !s.PEP.MayDisco(asker, owner, q.Query.Node)) {
			s.bounce(sess, st, stanza.ServiceUnavailable, "")
			return
		}
	}
	if string(st.Tok.ChildSpace) == nsDiscoItems {
		if q.Query.Node != "" {
			s.bounce(sess, st, stanza.ItemNotFound, "no such node")
			return
		}
		b := append([]byte(nil), "<query xmlns='http://jabber.org/protocol/disco#items'>"...)
		if s.PEP != nil {
			b = s.PEP.DiscoItems(b, asker, owner) // XEP-0163 §5: the account's nodes
		}
		s.result(sess, st, append(b, "</query>"...))
		return
	}
	b := append([]byte(nil), "<query xmlns='http://jabber.org/protocol/disco#info'"...)
	if q.Query.Node != "" {
		b = append(b, " node='"...)
		b = stanza.AppendEscaped(b, q.Query.Node)
		b = append(b, '\'')
	}
	b = append(b, '>')
	if q.Query.Node == "" {
		b = append(b, "<identity category='account' type='registered'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/>"...)
	}
	ok := q.Query.Node == ""
	if s.PEP != nil {
		b, ok = s.PEP.DiscoInfo(b, asker, owner, q.Query.Node)
	}
	if !ok {
		s.bounce(sess, st, stanza.ItemNotFound, "no such node")
		return
	}
	s.result(sess, st, append(b, "</query>"...))
}
