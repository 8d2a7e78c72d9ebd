// Package blocking is XEP-0191, the blocking command: each account's list
// of blocked JIDs, kept in the store (one commit per block or unblock) and
// in memory (loaded on first use); routing asks Blocked for every stanza
// between a local account and another JID.
package blocking

import (
	"encoding/xml"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/outq"
	"roost/wire/stanza"
)

// NS is the blocking command's namespace.
const NS = "urn:xmpp:blocking"

// NSErrors is the namespace of the application error that tells a user
// the addressee is one it blocks (XEP-0191 §3.5).
const NSErrors = "urn:xmpp:blocking:errors"

// Service holds the block lists of one domain.
type Service struct {
	Domain string
	Store  *storage.Store
	Router *router.Router
	Max    int // limits.block_list_items
	Log    *slog.Logger
	// Remote sends b to a JID of another domain; nil without federation.
	Remote func(to string, b []byte)

	once     sync.Once
	nonEmpty atomic.Int64 // accounts whose list is not empty: 0 makes Blocked one load
	pushID   atomic.Uint64
	// wmu serialises block and unblock (the store write happens outside
	// mu, so that routing never waits for an fsync).
	wmu sync.Mutex
	// mu guards the writers of accounts and each list's requested set.
	// Routing takes no lock: it reads accounts and the lists' item sets,
	// which are replaced, never changed, once published.
	mu sync.Mutex
	// accounts maps an account's bare JID to its list; a nil value is a
	// non-empty list in the store not loaded yet. Copied on write.
	accounts atomic.Pointer[map[string]*list]
}

// list is one account's block list in memory.
type list struct {
	set atomic.Pointer[itemSet]
	// requested holds the resources that asked for the list and so get
	// pushes (XEP-0191 §3.2); resources no longer bound are pruned.
	// Guarded by Service.mu.
	requested map[string]struct{}
}

// itemSet is a list's blocked JIDs as routing reads them: never changed
// once published (a block or unblock publishes a new one).
type itemSet struct {
	items  map[string]struct{} // prepared JIDs
	domRes int                 // how many items are domain/resource
}

// items is the list's current set (never nil once the list exists).
func (l *list) items() *itemSet { return l.set.Load() }

// change publishes a copy of the list's set with add added and remove
// removed; the caller serialises changes (Service.wmu or mu).
func (l *list) change(add, remove []string) *itemSet {
	old := l.items()
	next := &itemSet{items: make(map[string]struct{}, len(old.items)+len(add)), domRes: old.domRes}
	for k := range old.items {
		next.items[k] = struct{}{}
	}
	for _, it := range add {
		if _, ok := next.items[it]; !ok {
			next.items[it] = struct{}{}
			if isDomRes(it) {
				next.domRes++
			}
		}
	}
	for _, it := range remove {
		if _, ok := next.items[it]; ok {
			delete(next.items, it)
			if isDomRes(it) {
				next.domRes--
			}
		}
	}
	l.set.Store(next)
	return next
}

// lookup is bare's list without a lock (present: the account has a list
// in the store, loaded or not).
func (b *Service) lookup(bare string) (l *list, present bool) {
	m := b.accounts.Load()
	if m == nil {
		return nil, false
	}
	l, present = (*m)[bare]
	return l, present
}

// setAccount publishes accounts with bare's list set to l; the caller
// holds mu.
func (b *Service) setAccount(bare string, l *list) {
	old := b.accounts.Load()
	next := make(map[string]*list, len(*old)+1)
	for k, v := range *old {
		next[k] = v
	}
	next[bare] = l
	b.accounts.Store(&next)
}

// init notes which accounts have a non-empty list in the store, so that
// Blocked is right before any list is loaded.
func (b *Service) init() {
	b.once.Do(func() {
		m := make(map[string]*list)
		owners, err := b.Store.BlockOwners()
		if err != nil {
			b.logger().Error("blocking: cannot read the block lists; nothing is blocked until a list changes", "err", err)
		}
		for _, o := range owners {
			m[o+"@"+b.Domain] = nil
		}
		b.accounts.Store(&m)
		b.nonEmpty.Store(int64(len(owners)))
	})
}

func (b *Service) logger() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.Default()
}

// Active reports whether any account blocks anyone: when false, Blocked
// is false for every pair (one atomic load: the routing hot path).
func (b *Service) Active() bool {
	if b == nil {
		return false
	}
	b.init()
	return b.nonEmpty.Load() != 0
}

// Blocked reports whether the local account ownerBare blocks other (a
// full or bare JID, or a domain: XEP-0191 §3.6 matching). It allocates
// nothing when the account blocks nobody.
func (b *Service) Blocked(ownerBare []byte, other jid.JID) bool {
	if !b.Active() || other.IsZero() {
		return false
	}
	m := b.accounts.Load()
	if m == nil {
		return false
	}
	l, present := (*m)[string(ownerBare)] // no copy of the key: routing allocates nothing here
	if !present {
		return false
	}
	if l == nil {
		l = b.load(string(ownerBare))
	}
	return l.items().matches(other)
}

// Blocks reports whether the local account ownerBare blocks anyone (its
// list is not empty), without allocating: routing asks it before it
// prepares the address of a stanza the account sends.
func (b *Service) Blocks(ownerBare string) bool {
	if !b.Active() {
		return false
	}
	l, present := b.lookup(ownerBare)
	if !present {
		return false
	}
	if l == nil {
		l = b.load(ownerBare)
	}
	return len(l.items().items) > 0
}

// matches is XEP-0191 §3.6 (the XEP-0016 §2.1 order): an item
// user@domain/resource matches that full JID only, user@domain any of its
// resources, domain/resource that resource of the domain, domain every
// JID of the domain.
func (l *itemSet) matches(o jid.JID) bool {
	if len(l.items) == 0 {
		return false
	}
	if _, ok := l.items[o.String()]; ok {
		return true
	}
	if _, ok := l.items[o.Bare().String()]; ok {
		return true
	}
	d := o.Domain()
	if _, ok := l.items[d]; ok {
		return true
	}
	if r := o.Resource(); l.domRes > 0 && r != "" {
		for k := range l.items {
			if len(k) == len(d)+1+len(r) && k[:len(d)] == d && k[len(d)] == '/' && k[len(d)+1:] == r {
				return true
			}
		}
	}
	return false
}

// load reads bare's list from the store into memory (or returns it if
// another goroutine did).
func (b *Service) load(bare string) *list {
	j, err := jid.Parse(bare)
	var items []string
	if err == nil {
		items, err = b.Store.BlockList(j.Local())
	}
	if err != nil {
		b.logger().Error("blocking: cannot read a block list", "account", bare, "err", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, _ := b.lookup(bare); l != nil {
		return l
	}
	l := &list{}
	l.set.Store(&itemSet{})
	l.change(items, nil)
	b.setAccount(bare, l)
	return l
}

// isDomRes reports whether a prepared JID is domain/resource.
func isDomRes(s string) bool {
	j, err := jid.Parse(s)
	return err == nil && j.Local() == "" && j.Resource() != ""
}

// account returns bare's list, loading it; the caller holds no lock.
func (b *Service) account(bare string) *list {
	b.init()
	if l, _ := b.lookup(bare); l != nil {
		return l
	}
	return b.load(bare)
}

// payload is the blocking element of an iq.
type payload struct {
	Child struct {
		XMLName xml.Name
		Items   []struct {
			JID string `xml:"jid,attr"`
		} `xml:"item"`
	} `xml:",any"`
}

// IQ answers a blocking iq on the sender's own account (XEP-0191 §3).
func (b *Service) IQ(sess session.Peer, st *stanza.Stanza) {
	me := sess.JID()
	if _, local := sess.(*session.Bound); !local || me.Domain() != b.Domain || me.Local() == "" {
		session.Bounce(sess, st, b.Domain, stanza.Forbidden, "only a local account's own block list can be used")
		return
	}
	var p payload
	if err := xml.Unmarshal(st.Tok.Raw, &p); err != nil || p.Child.XMLName.Space != NS {
		session.Bounce(sess, st, b.Domain, stanza.BadRequest, "the blocking payload could not be read")
		return
	}
	bare := me.Bare().String()
	switch op := p.Child.XMLName.Local; {
	case string(st.Type) == "get" && op == "blocklist":
		b.get(sess, st, bare)
	case string(st.Type) == "set" && (op == "block" || op == "unblock"):
		items := make([]string, 0, len(p.Child.Items))
		for _, it := range p.Child.Items {
			j, err := jid.Parse(it.JID)
			if err != nil {
				session.Bounce(sess, st, b.Domain, stanza.JIDMalformed, "not a valid JID: "+it.JID)
				return
			}
			items = append(items, j.String())
		}
		if op == "block" {
			b.block(sess, st, me, items)
		} else {
			b.unblock(sess, st, me, items)
		}
	default:
		session.Bounce(sess, st, b.Domain, stanza.BadRequest, "expected a blocklist get, or a block or unblock set")
	}
}

// get answers the block list and notes that this resource wants pushes
// (XEP-0191 §3.2).
func (b *Service) get(sess session.Peer, st *stanza.Stanza, bare string) {
	l := b.account(bare)
	res := sess.JID().Resource()
	out := []byte("<blocklist xmlns='urn:xmpp:blocking'>")
	b.mu.Lock()
	for r := range l.requested {
		if b.Router.Session([]byte(bare), []byte(r)) == nil {
			delete(l.requested, r)
		}
	}
	if l.requested == nil {
		l.requested = make(map[string]struct{})
	}
	l.requested[res] = struct{}{}
	b.mu.Unlock()
	for it := range l.items().items {
		out = appendItem(out, it)
	}
	out = append(out, "</blocklist>"...)
	session.Result(sess, st, b.Domain, out)
}

func appendItem(b []byte, j string) []byte {
	b = append(b, "<item jid='"...)
	b = stanza.AppendEscaped(b, j)
	return append(b, "'/>"...)
}

// block adds items (XEP-0191 §3.3): stored in one commit, then pushed to
// the interested resources, and the account's available resources send
// unavailable presence to each newly blocked JID.
func (b *Service) block(sess session.Peer, st *stanza.Stanza, me jid.JID, items []string) {
	if len(items) == 0 {
		session.Bounce(sess, st, b.Domain, stanza.BadRequest, "a block needs at least one item")
		return
	}
	bare := me.Bare().String()
	l := b.account(bare)
	b.wmu.Lock()
	cur := l.items().items
	var added []string
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if _, ok := cur[it]; !ok && !seen[it] {
			seen[it] = true
			added = append(added, it)
		}
	}
	size := len(cur)
	if b.Max > 0 && size+len(added) > b.Max {
		b.wmu.Unlock()
		session.Bounce(sess, st, b.Domain, stanza.ResourceConstraint,
			"the block list would hold more than "+strconv.Itoa(b.Max)+" items (limits.block_list_items)")
		return
	}
	if len(added) > 0 {
		if err := b.Store.Update(func(tx *storage.Tx) error { return tx.Block(me.Local(), added) }); err != nil {
			b.wmu.Unlock()
			b.logger().Error("blocking: cannot store the block list", "account", bare, "err", err)
			session.Bounce(sess, st, b.Domain, stanza.InternalServerError, "the block list could not be stored")
			return
		}
		wasEmpty := size == 0
		l.change(added, nil)
		if wasEmpty {
			b.nonEmpty.Add(1)
		}
	}
	b.wmu.Unlock()
	session.Result(sess, st, b.Domain, nil)
	b.push(bare, "block", items)
	for _, it := range added {
		b.presenceTo(me, it, false)
	}
}

// unblock removes items, or every item when none is given (XEP-0191
// §3.4, unblocking one, several or all), then pushes, and sends the
// account's current presence to each unblocked JID entitled to it.
func (b *Service) unblock(sess session.Peer, st *stanza.Stanza, me jid.JID, items []string) {
	bare := me.Bare().String()
	l := b.account(bare)
	b.wmu.Lock()
	cur := l.items().items
	var removed []string
	if len(items) == 0 {
		for it := range cur {
			removed = append(removed, it)
		}
	} else {
		for _, it := range items {
			if _, ok := cur[it]; ok {
				removed = append(removed, it)
			}
		}
	}
	if len(removed) > 0 {
		var arg []string // nil: the whole list
		if len(items) > 0 {
			arg = removed
		}
		if err := b.Store.Update(func(tx *storage.Tx) error { return tx.Unblock(me.Local(), arg) }); err != nil {
			b.wmu.Unlock()
			b.logger().Error("blocking: cannot store the block list", "account", bare, "err", err)
			session.Bounce(sess, st, b.Domain, stanza.InternalServerError, "the block list could not be stored")
			return
		}
		if len(l.change(nil, removed).items) == 0 {
			b.nonEmpty.Add(-1)
		}
	}
	b.wmu.Unlock()
	session.Result(sess, st, b.Domain, nil)
	b.push(bare, "unblock", items)
	for _, it := range removed {
		b.presenceTo(me, it, true)
	}
}

// push sends the change to every resource of bare that asked for the
// list (XEP-0191 §3.3, §3.4), from the account's bare JID.
func (b *Service) push(bare, op string, items []string) {
	l := b.account(bare)
	b.mu.Lock()
	targets := make([]string, 0, len(l.requested))
	for r := range l.requested {
		targets = append(targets, r)
	}
	b.mu.Unlock()
	for _, r := range targets {
		s := b.Router.Session([]byte(bare), []byte(r))
		if s == nil {
			continue
		}
		buf := outq.GetBuf()
		out := append((*buf)[:0], "<iq type='set' id='block-push-"...)
		out = strconv.AppendUint(out, b.pushID.Add(1), 10)
		out = append(out, "' from='"...)
		out = stanza.AppendEscaped(out, bare)
		out = append(out, "' to='"...)
		out = stanza.AppendEscaped(out, s.JID().String())
		out = append(out, "'><"...)
		out = append(out, op...)
		out = append(out, " xmlns='urn:xmpp:blocking'"...)
		if len(items) == 0 {
			out = append(out, "/></iq>"...)
		} else {
			out = append(out, '>')
			for _, it := range items {
				out = appendItem(out, it)
			}
			out = append(out, "</"...)
			out = append(out, op...)
			out = append(out, "></iq>"...)
		}
		s.Deliver(out)
		*buf = out
		outq.PutBuf(buf)
	}
}

// presenceTo is the presence side of a block (unblocked=false: each
// available resource of me sends unavailable presence to item, and the
// account's resources see item's local sessions go unavailable) or an
// unblock (each available resource sends its current presence, and the
// contact's current presence comes back, or a probe goes out). Only
// JIDs with a local part are told, and only as far as the roster entitles
// them (XEP-0191 §3.3, §3.4; RFC 6121 §4).
func (b *Service) presenceTo(me jid.JID, item string, unblocked bool) {
	j, err := jid.Parse(item)
	if err != nil || j.Local() == "" {
		return
	}
	contact := j.Bare().String()
	ri, found, err := b.Store.RosterItem(me.Local(), contact)
	if err != nil || !found {
		return
	}
	bare := me.Bare().String()
	remote := j.Domain() != b.Domain
	mine := b.Router.Sessions([]byte(bare))
	if ri.Subscription == "from" || ri.Subscription == "both" {
		for _, r := range mine {
			if !r.Available() {
				continue
			}
			var p []byte
			if unblocked {
				if p = r.Presence(); p == nil {
					continue
				}
				p = stanza.InsertTo(append([]byte(nil), p...), j.String())
			} else {
				p = unavailable(r.JID().String(), j.String())
			}
			b.send(j, p, remote)
		}
	}
	if ri.Subscription != "to" && ri.Subscription != "both" {
		return
	}
	if remote {
		if unblocked && b.Remote != nil {
			probe := []byte("<presence type='probe' from='" + string(stanza.AppendEscaped(nil, bare)) +
				"' to='" + string(stanza.AppendEscaped(nil, contact)) + "'/>")
			b.Remote(contact, probe)
		}
		return
	}
	for _, c := range b.Router.Sessions([]byte(contact)) {
		if !c.Available() || (j.Resource() != "" && c.JID().Resource() != j.Resource()) {
			continue
		}
		var p []byte
		if unblocked {
			p = c.Presence()
		} else {
			p = unavailable(c.JID().String(), bare)
		}
		if p == nil {
			continue
		}
		for _, r := range mine {
			if r.Available() {
				r.Deliver(p)
			}
		}
	}
}

func unavailable(from, to string) []byte {
	p := append([]byte(nil), "<presence type='unavailable' from='"...)
	p = stanza.AppendEscaped(p, from)
	p = append(p, "' to='"...)
	p = stanza.AppendEscaped(p, to)
	return append(p, "'/>"...)
}

// send delivers a presence to a local JID (a full JID's session, or every
// available session of a bare JID) or out to another domain.
func (b *Service) send(j jid.JID, p []byte, remote bool) {
	if remote {
		if b.Remote != nil {
			b.Remote(j.String(), p)
		}
		return
	}
	for _, s := range b.Router.Sessions([]byte(j.Bare().String())) {
		if s.Available() && (j.Resource() == "" || s.JID().Resource() == j.Resource()) {
			s.Deliver(p)
		}
	}
}

// BounceBlocked answers a message or iq request that a user sent to a JID
// it blocks: not-acceptable with <blocked xmlns='urn:xmpp:blocking:errors'/>
// (XEP-0191 §3.5).
func BounceBlocked(sess session.Peer, st *stanza.Stanza, domain string) {
	if string(st.Type) == "error" || (st.Kind == stanza.IQ && string(st.Type) == "result") {
		return
	}
	buf := outq.GetBuf()
	out := stanza.AppendError((*buf)[:0], st, sess.JID().String(), stanza.ReplyFrom(st, domain), stanza.NotAcceptable,
		"you block this address; unblock it first (XEP-0191)")
	tail := len("</error></") + len(st.Kind.String()) + 1
	cut := len(out) - tail
	out = append(out[:cut], append([]byte("<blocked xmlns='"+NSErrors+"'/>"), out[cut:]...)...)
	sess.Deliver(out)
	*buf = out
	outq.PutBuf(buf)
}
