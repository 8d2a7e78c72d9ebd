// Package carbons is XEP-0280 Message Carbons (urn:xmpp:carbons:2): a
// session enables or disables carbons with an iq (§4, §5), and routing
// then copies a user's chat messages to the user's other carbons-enabled
// resources, wrapped in <received/> (§7, a message to the user) or
// <sent/> (§8, a message from the user) around a XEP-0297 <forwarded/>.
//
// The state is per bound session, in memory, forgotten when the session
// ends (Closed). Routing calls the hooks (ToFull, ToBare, ToRemote) on
// every routed stanza; while no session of any user has carbons enabled
// they cost one atomic load, and otherwise a read-locked map lookup per
// account involved: nothing is allocated unless a copy is made.
package carbons

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"roost/server/session"
	"roost/wire/outq"
	"roost/wire/stanza"
)

// Namespaces of XEP-0280 and of what it builds on.
const (
	NS        = "urn:xmpp:carbons:2"                  // XEP-0280
	NSForward = "urn:xmpp:forward:0"                  // XEP-0297, the wrapping
	NSHints   = "urn:xmpp:hints"                      // XEP-0334, <no-copy/>
	nsMUCUser = "http://jabber.org/protocol/muc#user" // XEP-0045, marks messages from rooms
)

const shardCount = 16

// State is which bound sessions have carbons enabled, by bare JID. The
// zero value is not usable; use New. Its methods are safe for concurrent
// use, and a nil *State is a server without carbons (every hook does
// nothing).
type State struct {
	seed   maphash.Seed
	total  atomic.Int64 // enabled sessions of all users: 0 lets every hook return at once
	shards [shardCount]shard
}

type shard struct {
	mu sync.RWMutex
	// users maps a bare JID to its enabled sessions. The slice is
	// immutable, replaced whole on enable and disable, so a reader can
	// range over it after dropping the lock.
	users map[string][]*session.Bound
}

// New returns a state with no session enabled.
func New() *State {
	c := &State{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].users = make(map[string][]*session.Bound)
	}
	return c
}

func (c *State) shardOf(bare string) *shard {
	return &c.shards[maphash.String(c.seed, bare)%shardCount]
}

// enabledOf is the sessions of bare with carbons enabled; the slice is
// shared and must not be changed. It allocates nothing.
func (c *State) enabledOf(bare string) []*session.Bound {
	sh := c.shardOf(bare)
	sh.mu.RLock()
	l := sh.users[bare]
	sh.mu.RUnlock()
	return l
}

// Enable turns carbons on for s (XEP-0280 §4). Enabling twice is not an
// error (§10.1). A session already closing is not recorded: its Closed
// (which runs after the close) may have come and gone.
func (c *State) Enable(s *session.Bound) {
	bare := s.JID().Bare().String()
	sh := c.shardOf(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.users[bare]
	for _, o := range old {
		if o == s {
			return
		}
	}
	if s.Closing() {
		return
	}
	l := make([]*session.Bound, len(old), len(old)+1)
	copy(l, old)
	sh.users[bare] = append(l, s)
	c.total.Add(1)
}

// Disable turns carbons off for s (XEP-0280 §5); disabling a session
// that has not enabled them is not an error (§10.1).
func (c *State) Disable(s *session.Bound) {
	bare := s.JID().Bare().String()
	sh := c.shardOf(bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old := sh.users[bare]
	for i, o := range old {
		if o != s {
			continue
		}
		if len(old) == 1 {
			delete(sh.users, bare)
		} else {
			l := make([]*session.Bound, 0, len(old)-1)
			l = append(l, old[:i]...)
			sh.users[bare] = append(l, old[i+1:]...)
		}
		c.total.Add(-1)
		return
	}
}

// Closed forgets s: carbons are a property of one session (XEP-0280 §4),
// never carried to the next login. route.Service.Closed calls it for
// every session that ends.
func (c *State) Closed(s *session.Bound) {
	if c == nil || c.total.Load() == 0 {
		return
	}
	c.Disable(s)
}

// Enabled reports whether s has carbons enabled.
func (c *State) Enabled(s *session.Bound) bool {
	if c == nil || c.total.Load() == 0 {
		return false
	}
	for _, o := range c.enabledOf(s.JID().Bare().String()) {
		if o == s {
			return true
		}
	}
	return false
}

// IQ answers <enable/> and <disable/> (XEP-0280 §4, §5), an iq set to
// the server or to the user's own bare JID; routing sends nothing else
// here. Only this server's own sessions can enable carbons: anyone else
// gets not-allowed (§4.1).
func (c *State) IQ(p session.Peer, st *stanza.Stanza, domain string) {
	s, ok := p.(*session.Bound)
	if !ok || c == nil {
		session.Bounce(p, st, domain, stanza.NotAllowed, "carbons are for clients of this server")
		return
	}
	if string(st.Type) != "set" {
		session.Bounce(p, st, domain, stanza.BadRequest, "carbons are enabled and disabled with an iq of type set")
		return
	}
	switch string(st.Tok.ChildLocal) {
	case "enable":
		c.Enable(s)
	case "disable":
		c.Disable(s)
	default:
		session.Bounce(p, st, domain, stanza.BadRequest, "expected <enable/> or <disable/>")
		return
	}
	session.Result(p, st, domain, nil)
}

// ToFull is routing's hook after a message to a local full JID was
// delivered to to (RFC 6121 §8.5.3.1): the recipient's other enabled
// resources get it as <received/> (XEP-0280 §7), the sender's other
// enabled resources as <sent/> (§8). bare is the recipient's bare JID.
func (c *State) ToFull(from session.Peer, st *stanza.Stanza, stamped, bare []byte, to *session.Bound) {
	if c == nil || c.total.Load() == 0 || st.Kind != stanza.Message {
		return
	}
	var got [1]*session.Bound
	got[0] = to
	c.copies(from, st, stamped, bare, got[:], true, false)
}

// ToBare is routing's hook after a message to a local bare JID went to
// targets (RFC 6121 §8.5.2.1.1); delivered is false when none took it and
// it was stored offline. The recipient's enabled resources that did not
// get the message get it as <received/> (XEP-0280 §7), except when it was
// stored offline: it reaches the account's resources from storage at
// their next initial presence, and a copy now would deliver it twice. The
// sender's other enabled resources get it as <sent/> (§8).
func (c *State) ToBare(from session.Peer, st *stanza.Stanza, stamped, bare []byte, targets []*session.Bound, delivered bool) {
	if c == nil || c.total.Load() == 0 || st.Kind != stanza.Message {
		return
	}
	c.copies(from, st, stamped, bare, targets, delivered, true)
}

// ToRemote is routing's hook after a local session's message left for
// another domain: the sender's other enabled resources get it as <sent/>
// (XEP-0280 §8).
func (c *State) ToRemote(from session.Peer, st *stanza.Stanza, stamped []byte) {
	if c == nil || c.total.Load() == 0 || st.Kind != stanza.Message {
		return
	}
	c.copies(from, st, stamped, nil, nil, false, false)
}

// copies sends the carbons of one routed message. rcpt is the local
// recipient's bare JID (nil: remote), got the sessions the message went
// to (never copied to), received whether the recipient's other resources
// get <received/> copies. toBare marks a message addressed to a bare JID.
//
// A message between two resources of one account is copied as <sent/>
// only, to the resources that neither sent nor got it.
func (c *State) copies(from session.Peer, st *stanza.Stanza, stamped, rcpt []byte, got []*session.Bound, received, toBare bool) {
	sender, local := from.(*session.Bound)
	var senderBare string
	var sent []*session.Bound
	if local {
		senderBare = sender.JID().Bare().String()
		sent = c.enabledOf(senderBare)
	}
	var recv []*session.Bound
	if received && rcpt != nil && !(local && senderBare == string(rcpt)) {
		recv = c.enabledOf(string(rcpt))
	}
	if len(sent) == 0 && len(recv) == 0 {
		return
	}
	in := payload(st.Tok)
	if !in.eligible(st.Type) {
		return
	}
	buf := outq.GetBuf()
	defer outq.PutBuf(buf)
	for _, r := range sent {
		if r != sender && !contains(got, r) {
			deliver(buf, r, "sent", senderBare, st.Type, stamped)
		}
	}
	if len(recv) == 0 || (in.mucUser && !toBare) {
		// XEP-0280 §6: not eligible when sent by a MUC room (a private
		// message from a participant comes to a full JID).
		return
	}
	bare := recv[0].JID().Bare().String()
	for _, r := range recv {
		if !contains(got, r) {
			deliver(buf, r, "received", bare, st.Type, stamped)
		}
	}
}

// deliver wraps msg for r and queues it. A copy that does not fit a
// device's datagram, or meets a closing session, is not sent: it is a
// copy, and the message itself went its way.
func deliver(buf *[]byte, r *session.Bound, dir, bare string, typ, msg []byte) {
	*buf = appendCopy((*buf)[:0], dir, bare, r.Full(), typ, msg)
	if max := r.MaxStanzaBytes(); max > 0 && len(*buf) > max {
		return
	}
	r.Deliver(*buf)
}

func contains(l []*session.Bound, s *session.Bound) bool {
	for _, o := range l {
		if o == s {
			return true
		}
	}
	return false
}
