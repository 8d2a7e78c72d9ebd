package route

import (
	"bytes"
	"roost/server/router"
	"roost/server/session"

	"roost/wire/jid"
	"roost/wire/stanza"
)

// Remote is the way out to other domains: the component uplink or s2s
// federation (the server wires one of them).
type Remote interface {
	// Send queues b, a stanza of kind, for domain. An error means it was
	// refused now (the link is down, its queue is full); its text goes
	// to the sender with remote-server-timeout.
	Send(domain string, kind stanza.Kind, b []byte) error
}

// toRemote sends a local session's stanza to another domain (RFC 6120
// §10.4) over the uplink or s2s; without either it is refused.
func (s *Service) toRemote(sess session.Peer, st *stanza.Stanza, stamped []byte, t target) {
	if s.Remote == nil {
		s.bounce(sess, st, stanza.RemoteServerNotFound, "this server is not connected to other domains (see uplink and listen.s2s in the configuration)")
		return
	}
	if st.Kind == stanza.Presence {
		switch string(st.Type) {
		case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
			if len(t.resource) == 0 {
				s.IM.Subscription(sess, st, t.bare)
			}
			return
		case "probe":
			return // the server probes on its users' behalf
		case "", "unavailable":
			addr := string(t.bare)
			if len(t.resource) > 0 {
				addr += "/" + string(t.resource)
			}
			if j, err := jid.Parse(addr); err == nil && !s.IM.AddDirected(sess, j, len(st.Type) == 0) {
				s.bounce(sess, st, stanza.ResourceConstraint, directedFullText)
				return
			}
		}
	}
	if err := s.Remote.Send(string(t.domain), st.Kind, stamped); err != nil {
		s.bounce(sess, st, stanza.RemoteServerTimeout, err.Error())
		return
	}
	s.Carbons.ToRemote(sess, st, stamped) // XEP-0280 §8
}

// remoteSession stands for a sender on another domain while Route
// handles its stanza: whatever Route answers it (errors, iq results,
// presence) goes back out over the uplink.
type remoteSession struct {
	jid  jid.JID
	link *Service
}

func (r *remoteSession) JID() jid.JID                           { return r.jid }
func (r *remoteSession) Available() bool                        { return false }
func (r *remoteSession) Priority() int                          { return 0 }
func (r *remoteSession) Deliver(b []byte) bool                  { r.link.SendRemote(r.jid.String(), b); return true }
func (r *remoteSession) SetPresence(bool, int, []byte) bool     { return false }
func (r *remoteSession) Presence() []byte                       { return nil }
func (r *remoteSession) AddDirectedMax(jid.JID, bool, int) bool { return true }
func (r *remoteSession) TakeDirected() []jid.JID                { return nil }
func (r *remoteSession) RequestedRoster()                       {}
func (r *remoteSession) Interested() bool                       { return false }

// SendRemote is im's way out: b for the remote JID to, given a to
// attribute when it has none (a broadcast copy).
func (s *Service) SendRemote(to string, b []byte) {
	if s.Remote == nil {
		return
	}
	if _, _, ok := stanza.FindAttr(b, "to"); !ok {
		b = stanza.InsertTo(b, to)
	}
	s.Remote.Send(jid.DomainOf(to), stanza.KindOf(b), b)
}

// FromUplink routes a stanza the upstream sent us (uplink.Inbound).
func (s *Service) FromUplink(st *stanza.Stanza) { s.fromRemote(st) }

// FromRemote routes a stanza a federated server sent us (s2s.Inbound).
func (s *Service) FromRemote(st *stanza.Stanza) { s.fromRemote(st) }

// Undeliverable answers the local sender of a stanza that could not be
// sent to its domain (s2s.Inbound).
func (s *Service) Undeliverable(b []byte, cond stanza.Condition, text string) {
	get := func(name string) string {
		v, _ := stanza.AttrValue(b, name)
		return v
	}
	kind := stanza.KindOf(b)
	typ := get("type")
	if typ == "error" || (kind == stanza.IQ && typ == "result") || kind == stanza.Presence {
		return // never answer an error or result; presence to a lost domain just goes
	}
	from, to := get("from"), get("to")
	j, err := jid.Parse(from)
	if err != nil || j.Domain() != s.Domain {
		return
	}
	var id []byte // AppendErrorFor takes the id as scanned: escape it again
	if _, _, ok := stanza.FindAttr(b, "id"); ok {
		id = stanza.AppendEscaped([]byte{}, get("id"))
	}
	reply := stanza.AppendErrorFor(nil, kind, id, from, to, cond, cond.DefaultType(), text)
	if r := s.Router.Session([]byte(j.Bare().String()), []byte(j.Resource())); r != nil {
		r.Deliver(reply)
	}
}

// fromRemote routes a stanza from another domain. The remote sender is
// represented by a session whose Deliver goes back out.
//
// The uplink and s2s streams already end a stream that sends a malformed
// address (improper-addressing), speaks for our domain or one it did not
// authenticate (invalid-from) or writes to another domain (host-unknown),
// RFC 6120 §4.9.3. This is the second line of that rule, on the prepared
// addresses the router acts on (RFC 7622 §3.2): a stanza whose from is our
// own domain in any spelling (alice@LOCALHOST/x, alice@localhost.) would
// otherwise be taken for alice's own, and one whose to is not ours would
// be relayed. Such a stanza is dropped and logged, never routed.
func (s *Service) fromRemote(st *stanza.Stanza) {
	from, to, ok := remoteAddrs(st)
	if !ok || to.Domain() != s.Domain || from.Domain() == s.Domain {
		s.Log.Warn("remote: dropped a stanza with a malformed or spoofed address", "from", string(st.From), "to", string(st.To))
		return
	}
	raw := forwardFromRemote(st, from)
	s.Route(&remoteSession{jid: from, link: s}, st, raw)
}

// remoteAddrs prepares a remote stanza's from and to; ok is false when
// either is missing or not a JID.
func remoteAddrs(st *stanza.Stanza) (from, to jid.JID, ok bool) {
	from, err := stanza.ParseAddr(st.From)
	if err != nil {
		return from, to, false
	}
	to, err = stanza.ParseAddr(st.To)
	return from, to, err == nil
}

// forwardFromRemote is a remote stanza as a client stream may carry it
// (RFC 6120 §8.1.2.1): from in prepared form, the namespace prefixes it
// uses from the peer's stream header re-declared (stanza.AppendForward),
// and an explicit server or component namespace declaration dropped, so
// that the stanza inherits jabber:client from the client's stream.
func forwardFromRemote(st *stanza.Stanza, from jid.JID) []byte {
	out := stanza.AppendForward(make([]byte, 0, len(st.Tok.Raw)+64), st, from.String(), "")
	if a, e, ok := stanza.FindAttr(out, "xmlns"); ok {
		switch v := out[a:e]; {
		case isNSAttr(v, stanza.NSComponent), isNSAttr(v, stanza.NSServer), isNSAttr(v, stanza.NSClient):
			for a > 0 && (out[a-1] == ' ' || out[a-1] == '\t' || out[a-1] == '\n' || out[a-1] == '\r') {
				a--
			}
			out = append(out[:a], out[e:]...)
		}
	}
	return out
}

// isNSAttr reports whether attr, a whole xmlns='…' text, declares ns.
func isNSAttr(attr []byte, ns string) bool {
	i := bytes.IndexAny(attr, "'\"")
	return i >= 0 && len(attr) >= i+2 && string(attr[i+1:len(attr)-1]) == ns
}

// LinkUp re-sends presence to remote contacts (uplink.Inbound) after the
// link came (back) up.
func (s *Service) LinkUp() { s.IM.Resend(s.blocker()) }

// SendTo delivers b, a stanza the server itself sends (a caps query, a
// PEP notification), to j: a local full JID's session, every available
// session of a local bare JID, or out to another domain.
func (s *Service) SendTo(j jid.JID, b []byte) {
	if j.Domain() != s.Domain {
		s.SendRemote(j.String(), b)
		return
	}
	bare := []byte(j.Bare().String())
	if j.Resource() != "" {
		if r := s.Router.Session(bare, []byte(j.Resource())); r != nil {
			r.Deliver(b)
		}
		return
	}
	var buf [8]*session.Bound
	for _, r := range router.AvailableOnly(buf[:0], s.Router.Sessions(bare)) {
		r.Deliver(b)
	}
}
