package route

import (
	"bytes"
	"roost/server/session"

	"roost/server/blocking"
	"roost/server/im"
	"roost/server/lastactivity"
	"roost/server/metrics"
	"roost/server/pep"
	"roost/server/private"
	"roost/server/router"
	"roost/server/vcard"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// target is a stanza's 'to' resolved to canonical parts. The slices view
// either the stanza's own bytes (fast path) or a prepared JID's string.
type target struct {
	bare     []byte // local@domain, or domain
	local    []byte
	domain   []byte
	resource []byte
}

// resolveTo turns a raw 'to' attribute into canonical parts. When the
// bytes are already canonical (the common case: lower-case ASCII) they are
// used in place and nothing is allocated; otherwise the JID is prepared
// with PRECIS. ok=false means the address is not a valid JID.
func resolveTo(raw []byte) (t target, ok bool) {
	if bytes.IndexByte(raw, '&') < 0 && jid.Canonical(raw) {
		local, domain, resource, _ := jid.Split(raw)
		t.local, t.domain, t.resource = local, domain, resource
		t.bare = raw[:len(raw)-len(resource)]
		if len(resource) > 0 {
			t.bare = t.bare[:len(t.bare)-1]
		}
		return t, true
	}
	s, err := stanza.Unescape(raw)
	if err != nil {
		return t, false
	}
	j, err := jid.Parse(s)
	if err != nil {
		return t, false
	}
	t.bare = []byte(j.Bare().String())
	t.local = []byte(j.Local())
	t.domain = []byte(j.Domain())
	t.resource = []byte(j.Resource())
	return t, true
}

// Stanza implements session.Host: a stanza from a bound session of any
// transport.
func (s *Service) Stanza(sess *session.Bound, st *stanza.Stanza, stamped []byte) {
	s.Route(sess, st, stamped)
}

// Closed implements session.Host: presence goes unavailable for a
// session that ended for any reason.
func (s *Service) Closed(sess *session.Bound) {
	s.Carbons.Closed(sess)
	s.IM.ClosedBlocking(sess, s.blocker())
	s.presenceGone(sess)
}

// ownPresence is what the server does besides RFC 6121 with a session's
// own broadcast presence: entity capabilities (XEP-0115) and the last PEP
// items (XEP-0163 §6.2) on available presence, last activity (XEP-0012)
// on unavailable.
func (s *Service) ownPresence(sess session.Peer, st *stanza.Stanza, stamped []byte) {
	b, ok := sess.(*session.Bound)
	if !ok {
		return
	}
	switch string(st.Type) {
	case "":
		s.Caps.Presence(b.JID(), stamped)
		if s.PEP != nil {
			s.PEP.Available(b)
		}
	case "unavailable":
		s.presenceGone(b)
	}
}

// presenceGone forgets what the hooks of ownPresence know of a session
// that went unavailable or ended.
func (s *Service) presenceGone(sess *session.Bound) {
	s.Caps.Forget(sess.JID())
	if s.PEP != nil {
		s.PEP.Unavailable(sess.JID())
	}
	if s.Last != nil {
		s.Last.Gone(sess)
	}
}

// remotePresence notes available or unavailable presence that a contact
// on another domain sent to a local account: its caps, and PEP's last
// items for it (XEP-0163 §6.2).
func (s *Service) remotePresence(from jid.JID, owner []byte, st *stanza.Stanza, stamped []byte) {
	if len(st.Type) != 0 {
		s.Caps.Forget(from)
		if s.PEP != nil {
			s.PEP.Unavailable(from)
		}
		return
	}
	s.Caps.Presence(from, stamped)
	if s.PEP != nil {
		if o, err := jid.ParseBytes(owner); err == nil {
			s.PEP.RemoteAvailable(from, o)
		}
	}
}

// Route applies RFC 6120 §8 and RFC 6121 §8 to one stanza from a bound
// session of any transport. stamped is the stanza with from set to the
// session's full JID.
func (s *Service) Route(sess session.Peer, st *stanza.Stanza, stamped []byte) {
	metrics.Stanza(st.Kind)
	if st.Kind == stanza.IQ && !s.validIQ(sess, st) {
		return
	}
	if st.To == nil {
		switch st.Kind {
		case stanza.Presence:
			s.IM.OwnPresence(sess, st, stamped, s.blocker())
			s.ownPresence(sess, st, stamped)
		case stanza.IQ:
			s.serverIQ(sess, st)
		case stanza.Message:
			// RFC 6121 §8.1.1.1: a message with no 'to' is for the
			// sender's own bare JID.
			bare := []byte(sess.JID().Bare().String())
			s.toBare(sess, st, stamped, bare, true)
		}
		return
	}
	t, ok := resolveTo(st.To)
	if !ok {
		s.bounce(sess, st, stanza.JIDMalformed, "the 'to' address is not a valid JID")
		return
	}
	if s.Blocking.Active() && s.blockedOut(sess, st, t) {
		return
	}
	if string(t.domain) != s.Domain {
		s.toRemote(sess, st, stamped, t)
		return
	}
	if len(t.local) == 0 {
		// The server itself (RFC 6120 §10.3).
		switch st.Kind {
		case stanza.IQ:
			s.serverIQ(sess, st)
		case stanza.Message:
			s.bounce(sess, st, stanza.ServiceUnavailable, "")
		}
		return
	}
	sessions := s.Router.Sessions(t.bare)
	if len(sessions) == 0 && !s.userExists(t.local) {
		// RFC 6121 §8.5.1: no such account. A subscription request
		// is answered with unsubscribed (§3.1.3), other presence dropped.
		switch {
		case st.Kind != stanza.Presence:
			s.bounce(sess, st, stanza.ServiceUnavailable, "")
		case string(st.Type) == "subscribe" && len(t.resource) == 0:
			s.IM.Subscription(sess, st, t.bare)
		}
		return
	}
	if s.Blocking.Active() && s.blockedIn(sess, st, t) {
		return
	}
	if st.Kind == stanza.Presence && isDirected(st.Type) {
		if r, ok := sess.(*remoteSession); ok {
			s.remotePresence(r.jid, t.bare, st, stamped)
		}
	}
	if len(t.resource) > 0 {
		s.toFull(sess, st, stamped, t, sessions)
		return
	}
	own := string(t.bare) == sess.JID().Bare().String() // compared without a copy
	s.toBare(sess, st, stamped, t.bare, own)
}

// blocker is what im needs to keep presence from flowing between an
// account and a JID either side blocks; nil while nobody blocks anyone.
func (s *Service) blocker() im.Blocker {
	if !s.Blocking.Active() {
		return nil
	}
	return s.Blocking.Blocked
}

// blockedOut applies XEP-0191 §3.5 to a stanza a local account sends to
// a JID it blocks: a message or iq request is answered not-acceptable
// with <blocked xmlns='urn:xmpp:blocking:errors'/>, presence is not sent.
// It reports whether the stanza was stopped. Called only while some
// account blocks someone.
func (s *Service) blockedOut(sess session.Peer, st *stanza.Stanza, t target) bool {
	if _, remote := sess.(*remoteSession); remote {
		return false
	}
	me := sess.JID().Bare().String()
	if string(t.bare) == me || (len(t.local) == 0 && string(t.domain) == s.Domain && len(t.resource) == 0) {
		return false // one's own account, the server itself
	}
	if !s.Blocking.Blocks(me) {
		return false // the sender blocks nobody: nothing to prepare
	}
	addr := string(t.bare)
	if len(t.resource) > 0 {
		addr += "/" + string(t.resource)
	}
	to, err := jid.Parse(addr)
	if err != nil || !s.Blocking.Blocked([]byte(me), to) {
		return false
	}
	switch st.Kind {
	case stanza.Presence:
		return true
	case stanza.IQ:
		if t := string(st.Type); t == "result" || t == "error" {
			return false
		}
	}
	blocking.BounceBlocked(sess, st, s.Domain)
	return true
}

// blockedIn applies XEP-0191 §3.5 to a stanza for the local account
// t.bare from a JID that account blocks: presence is dropped, a message
// or an iq request is answered service-unavailable (as if the account
// did not exist: the block is never revealed), iq answers are dropped.
// So nothing of it reaches offline storage or carbons. Called only while
// some account blocks someone; it allocates nothing.
func (s *Service) blockedIn(sess session.Peer, st *stanza.Stanza, t target) bool {
	from := sess.JID()
	if string(t.bare) == from.Bare().String() || !s.Blocking.Blocked(t.bare, from) {
		return false
	}
	if st.Kind != stanza.Presence {
		s.bounce(sess, st, stanza.ServiceUnavailable, "")
	}
	return true
}

// toFull delivers to a full JID of a local account (RFC 6121 §8.5.3).
func (s *Service) toFull(sess session.Peer, st *stanza.Stanza, stamped []byte, t target, sessions []*session.Bound) {
	for _, r := range sessions {
		if r.JID().Resource() == string(t.resource) {
			if st.Kind == stanza.IQ && !s.mayRequest(sess, st, r) {
				s.bounce(sess, st, stanza.Forbidden, "this device takes requests only from the accounts devices.accept_from allows")
				return
			}
			if st.Kind == stanza.Presence && isDirected(st.Type) && !s.IM.AddDirected(sess, r.JID(), len(st.Type) == 0) {
				s.bounce(sess, st, stanza.ResourceConstraint, directedFullText)
				return
			}
			if s.deliver(sess, st, r, stamped) || st.Kind == stanza.Presence {
				s.Carbons.ToFull(sess, st, stamped, t.bare, r) // XEP-0280
				return
			}
			// The resource is closing (its stream ended, or it is being
			// dropped as a slow reader): treat it as gone at once, so a
			// message goes to other resources or offline and an iq is
			// answered now rather than never (issue 14).
			break
		}
	}
	// No such resource.
	switch st.Kind {
	case stanza.Message:
		switch string(st.Type) {
		case "groupchat":
			s.bounce(sess, st, stanza.ServiceUnavailable, "")
		case "headline", "error":
		default:
			s.toBare(sess, st, stamped, t.bare, false)
		}
	case stanza.IQ:
		s.bounce(sess, st, stanza.ServiceUnavailable, "")
	}
}

// toBare delivers to a local account's bare JID (RFC 6121 §8.5.2). own is
// set when the account is the sender's.
func (s *Service) toBare(sess session.Peer, st *stanza.Stanza, stamped []byte, bare []byte, own bool) {
	var buf [8]*session.Bound
	sessions := s.Router.Sessions(bare)
	switch st.Kind {
	case stanza.Message:
		s.messageToBare(sess, st, stamped, bare, sessions, true)
	case stanza.Presence:
		if !isDirected(st.Type) {
			s.IM.Subscription(sess, st, bare)
			return
		}
		if !own {
			if j, err := jid.ParseBytes(bare); err == nil && !s.IM.AddDirected(sess, j, len(st.Type) == 0) {
				s.bounce(sess, st, stanza.ResourceConstraint, directedFullText)
				return
			}
		}
		for _, r := range router.AvailableOnly(buf[:0], sessions) {
			r.Deliver(stamped)
		}
	case stanza.IQ:
		// RFC 6121 §8.5.2.1.2: the server answers for the account.
		switch ns := string(st.Tok.ChildSpace); {
		case ns == nsDiscoInfo || ns == nsDiscoItems:
			s.accountDisco(sess, st, bare, own)
			return
		case ns == im.NSRoster && !own:
			// RFC 6121 §2.1.5: nobody reads or changes another's roster.
			s.bounce(sess, st, stanza.Forbidden, "only your own roster can be read or changed")
			return
		case (ns == private.NS || ns == blocking.NS) && !own:
			// XEP-0049 §3, XEP-0191: only one's own private storage
			// and block list.
			s.bounce(sess, st, stanza.Forbidden, "only your own account's private storage and block list can be used")
			return
		case ns == pep.NS || ns == pep.NSOwner:
			// XEP-0163: the account's bare JID is its PEP service.
			if s.PEP == nil {
				s.bounce(sess, st, stanza.ServiceUnavailable, "")
				return
			}
			if owner, err := jid.ParseBytes(bare); err == nil {
				s.PEP.IQ(sess, st, owner)
			}
			return
		case ns == vcard.NS && s.VCard != nil:
			if owner, err := jid.ParseBytes(bare); err == nil {
				s.VCard.IQ(sess, st, owner)
			}
			return
		case ns == lastactivity.NS && s.Last != nil:
			if owner, err := jid.ParseBytes(bare); err == nil {
				s.Last.IQ(sess, st, owner)
			}
			return
		}
		if own {
			s.serverIQ(sess, st)
			return
		}
		s.bounce(sess, st, stanza.ServiceUnavailable, "")
	}
}

// messageToBare delivers a message to a local account's bare JID (RFC
// 6121 §8.5.2.1): to the resources of highest non-negative priority (a
// headline to every non-negative one), or, with none, to offline storage.
// copies makes the XEP-0280 carbons; a message routed again after its
// first recipient's session ended (Undelivered) had its copies already.
func (s *Service) messageToBare(sess session.Peer, st *stanza.Stanza, stamped []byte, bare []byte, sessions []*session.Bound, copies bool) {
	var buf [8]*session.Bound
	var targets []*session.Bound
	switch string(st.Type) {
	case "error":
		return
	case "groupchat":
		s.bounce(sess, st, stanza.ServiceUnavailable, "")
		return
	case "headline":
		targets = router.NonNegative(buf[:0], sessions)
	default:
		targets = router.Best(buf[:0], sessions)
	}
	delivered := false
	for _, r := range targets {
		delivered = s.deliver(sess, st, r, stamped) || delivered
	}
	if copies {
		s.Carbons.ToBare(sess, st, stamped, bare, targets, delivered) // XEP-0280
	}
	// No resource, or only ones closing under us (their stream ended
	// while the stanza was routed): keep it rather than lose it.
	if !delivered && string(st.Type) != "headline" {
		local, _, _, _ := jid.Split(bare)
		s.IM.StoreOffline(sess, st, stamped, string(local))
	}
}

// directedFullText explains the resource-constraint answer to directed
// presence beyond limits.directed_presences.
const directedFullText = "too many directed presences from this session (limits.directed_presences)"

// isDirected reports whether a presence type is available or unavailable
// presence (as opposed to subscription management, probes and errors).
func isDirected(typ []byte) bool {
	return len(typ) == 0 || string(typ) == "unavailable"
}

// validIQ checks the iq rules of RFC 6120 §8.2.3: an id, a known type,
// and exactly one child for get and set. It answers bad-request otherwise.
func (s *Service) validIQ(sess session.Peer, st *stanza.Stanza) bool {
	switch string(st.Type) {
	case "get", "set":
		if len(st.ID) == 0 || st.Tok.Children != 1 {
			s.bounce(sess, st, stanza.BadRequest, "an iq of type get or set needs an id and exactly one child element")
			return false
		}
	case "result", "error":
		if len(st.ID) == 0 {
			return false
		}
	default:
		s.bounce(sess, st, stanza.BadRequest, "iq type must be get, set, result or error")
		return false
	}
	return true
}

// bounce answers a stanza with an error (RFC 6120 §8.3), except that an
// error is never answered with an error, nor an iq result.
func (s *Service) bounce(sess session.Peer, st *stanza.Stanza, cond stanza.Condition, text string) {
	session.Bounce(sess, st, s.Domain, cond, text)
}

func (s *Service) userExists(local []byte) bool {
	ok, err := s.Store.UserExists(string(local))
	if err != nil {
		s.Log.Error("store: user lookup failed", "err", err)
		return false
	}
	return ok
}

// mayRequest applies devices.accept_from (issue 12 item 4): an iq
// request (get or set, such as an XEP-0050 command) reaches a device only
// from its owners ("owners", the default), from its owners and the
// contacts its roster gives a subscription from ("contacts"), or from
// anyone ("anyone"). Responses (result, error) always pass, as do requests
// between the device's own resources and from the gateway's administrators
// (admins). Only a device session is checked;
// any other target costs one field read.
// A store failure refuses the request (fail closed).
func (s *Service) mayRequest(sess session.Peer, st *stanza.Stanza, r *session.Bound) bool {
	if t := string(st.Type); t != "get" && t != "set" {
		return true
	}
	if !r.Device() {
		return true
	}
	mode := s.AcceptFrom
	if mode == "anyone" {
		return true
	}
	device := r.JID()
	sender := sess.JID().Bare()
	if sender == device.Bare() {
		return true
	}
	if s.Commands != nil && s.Commands.IsAdmin(sess) {
		return true // the gateway's administrators (admins) command every device
	}
	d, err := s.Store.Device(device.Local())
	if err != nil {
		s.Log.Warn("devices: cannot read the device record; refusing the request", "device", device.Bare().String(), "err", err)
		return false
	}
	from := sender.String()
	for _, o := range d.Owners {
		if o == from {
			return true
		}
	}
	if mode != "contacts" {
		return false
	}
	it, found, err := s.Store.RosterItem(device.Local(), from)
	if err != nil {
		s.Log.Warn("devices: cannot read the device's roster; refusing the request", "device", device.Bare().String(), "err", err)
		return false
	}
	return found && (it.Subscription == "from" || it.Subscription == "both")
}

// deliver hands stamped to r, or answers resource-constraint when r
// cannot take a stanza that large (issue 5: no IP fragmentation).
// It reports whether the stanza was taken (or answered with an error),
// false only when the recipient is closing.
func (s *Service) deliver(sess session.Peer, st *stanza.Stanza, r *session.Bound, stamped []byte) bool {
	if max := r.MaxStanzaBytes(); max > 0 && len(stamped) > max {
		s.bounce(sess, st, stanza.ResourceConstraint, "too large for the recipient's datagram size")
		return true
	}
	return r.Deliver(stamped)
}
