// Package pep is personal eventing (XEP-0163) over the pubsub subset it
// needs (XEP-0060): every account, devices included, is a pubsub service
// at its bare JID; publishing creates the node; notifications go to the
// owner's resources and to contacts with a from/both subscription whose
// entity capabilities (XEP-0115) include NODE+notify, and to explicit
// subscribers. Items are kept in memory and written to the store in
// batches (pep.flush_interval), at once only for nodes that ask for it.
package pep

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"roost/server/caps"
	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// Namespaces (XEP-0060 §14).
const (
	NS      = "http://jabber.org/protocol/pubsub"
	NSOwner = "http://jabber.org/protocol/pubsub#owner"
	NSEvent = "http://jabber.org/protocol/pubsub#event"
	NSError = "http://jabber.org/protocol/pubsub#errors"
)

// Service is PEP for one domain. Fields are set before Start.
type Service struct {
	Domain string
	Store  *storage.Store
	Router *router.Router
	Caps   *caps.Cache
	// Remote sends b to a JID of another domain; nil without federation.
	Remote func(to string, b []byte)
	Log    *slog.Logger

	FlushInterval  time.Duration // pep.flush_interval
	MaxNodes       int           // pep.max_nodes
	MaxItems       int           // pep.max_items
	MaxItemBytes   int           // pep.max_item_bytes
	MaxSubscribers int           // pep.max_subscribers
	// MaxAccountBytes bounds the item payloads one account keeps in all
	// its nodes together (pep.account_bytes): what max_nodes × max_items ×
	// max_item_bytes alone would let one account make the gateway hold
	// is far more than its memory.
	MaxAccountBytes int

	// wants and notifyOf stand for Caps.Has and Caps.Notify in tests.
	wants    func(full jid.JID, feature string) bool
	notifyOf func(full jid.JID) []string

	once     sync.Once
	mu       sync.Mutex
	accounts map[string]*account   // bare JID -> its PEP service state
	dirty    map[dirtyKey]*node    // the node as marked (a deleted one stays here until flushed)
	lastSent map[string]struct{}   // full JIDs that had their last items this available period
	remoteOf map[string][]*account // remote full JID -> accounts it sent available presence to

	flushMu sync.Mutex // one flush at a time, so writes land in order
	stop    chan struct{}
	done    chan struct{}
	ids     atomic.Uint64
	pool    sync.Pool // *fanout
}

type dirtyKey struct {
	a    *account
	name string
}

// remoteResources bounds the full JIDs of one remote contact remembered
// per account (each is a notification target while available).
const remoteResources = 16

// account is one account's PEP service: its nodes, a cache of its roster
// (reloaded when the roster version changes) and the remote contacts'
// resources that sent it available presence.
// payloadBytes is the size of every item payload a holds (under a.mu):
// a walk, bounded by max_nodes × max_items, made once per publish.
func (a *account) payloadBytes() int {
	total := 0
	for _, n := range a.nodes {
		for i := range n.items {
			total += len(n.items[i].payload)
		}
	}
	return total
}

type account struct {
	mu    sync.Mutex
	bare  jid.JID
	bareB []byte
	local string
	nodes map[string]*node
	order []string // node names in creation order (disco#items)

	rosterOK  bool
	rosterVer uint64
	contacts  []contact
	subOf     map[string]string // contact bare JID -> subscription

	remotes map[string][]jid.JID // remote contact bare JID -> its available full JIDs
}

// contact is one roster item as PEP needs it.
type contact struct {
	bare  jid.JID
	bareB []byte
	sub   string
	local bool
}

func (p *Service) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// init makes the tables and applies the defaults of unset bounds, once
// (Start calls it; so does every entry point, for a Service used
// without Start in tests).
func (p *Service) init() {
	p.once.Do(func() {
		p.accounts = map[string]*account{}
		p.dirty = map[dirtyKey]*node{}
		p.lastSent = map[string]struct{}{}
		p.remoteOf = map[string][]*account{}
		if p.MaxItems <= 0 {
			p.MaxItems = 256
		}
		if p.MaxNodes <= 0 {
			p.MaxNodes = 256
		}
		if p.MaxItemBytes <= 0 {
			p.MaxItemBytes = 65536
		}
		if p.MaxAccountBytes <= 0 {
			p.MaxAccountBytes = 1 << 20
		}
		if p.MaxSubscribers <= 0 {
			p.MaxSubscribers = 1000
		}
	})
}

// accountOf returns bare's state, made when create is set; nil otherwise.
func (p *Service) accountOf(bare jid.JID, create bool) *account {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.accounts[bare.String()]
	if a == nil && create {
		a = &account{bare: bare, bareB: []byte(bare.String()), local: bare.Local(), nodes: map[string]*node{}}
		p.accounts[bare.String()] = a
	}
	return a
}

// DropAccount forgets everything PEP holds of a deleted account (its
// nodes, its pending writes): the store's copy went with the account
// (storage deleteAccountData), and a later flush must not write it back.
func (p *Service) DropAccount(bare jid.JID) {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.accounts[bare.Bare().String()]
	if a == nil {
		return
	}
	delete(p.accounts, bare.Bare().String())
	for k := range p.dirty {
		if k.a == a {
			delete(p.dirty, k)
		}
	}
}

// Start loads the stored nodes and starts the flusher.
func (p *Service) Start() error {
	p.init()
	err := p.Store.PEPNodes(func(local string, sn storage.PEPNode) error {
		bare, err := jid.New(local, p.Domain, "")
		if err != nil {
			return fmt.Errorf("pep: stored account %q: %w", local, err)
		}
		a := p.accountOf(bare, true)
		n := nodeFromStore(sn, p.MaxItems)
		n.stored = true
		a.mu.Lock()
		a.nodes[n.name] = n
		a.order = append(a.order, n.name)
		a.mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("pep: load nodes: %w", err)
	}
	if p.FlushInterval > 0 {
		p.stop = make(chan struct{})
		p.done = make(chan struct{})
		go p.flusher()
	}
	return nil
}

// Close writes what is not yet stored and stops the flusher; the store
// must still be open.
func (p *Service) Close() error {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	return p.flush()
}

func (p *Service) flusher() {
	defer close(p.done)
	t := time.NewTicker(p.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if err := p.flush(); err != nil {
				p.log().Error("pep: writing nodes failed; kept for the next flush", "err", err)
			}
		}
	}
}

// markDirty notes that n (or its deletion) must be written; a.mu is held.
func (p *Service) markDirty(a *account, n *node) {
	k := dirtyKey{a, n.name}
	p.mu.Lock()
	if old := p.dirty[k]; old != nil && old != n && old.stored {
		n.stored = true // a node deleted and made again: the stored one is still there
	}
	p.dirty[k] = n
	p.mu.Unlock()
}

// flush writes every dirty node in one commit (pep.flush_interval): the
// SD-card budget of issue 16. Nodes with persist_items=false are never
// written (a stored copy is removed).
func (p *Service) flush() error {
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.mu.Lock()
	if len(p.dirty) == 0 {
		p.mu.Unlock()
		return nil
	}
	marked := p.dirty
	p.dirty = make(map[dirtyKey]*node, len(marked))
	p.mu.Unlock()
	ws := make([]storage.PEPWrite, 0, len(marked))
	type done struct {
		a      *account
		n      *node
		stored bool
	}
	var after []done
	for k, old := range marked {
		k.a.mu.Lock()
		cur := k.a.nodes[k.name]
		switch {
		case cur != nil && cur.cfg.persist:
			ws = append(ws, storage.PEPWrite{Local: k.a.local, Node: cur.toStore()})
			after = append(after, done{k.a, cur, true})
		case cur != nil && cur.stored, cur == nil && old.stored:
			ws = append(ws, storage.PEPWrite{Local: k.a.local, Node: storage.PEPNode{Name: k.name}, Delete: true})
			if cur == nil {
				cur = old
			}
			after = append(after, done{k.a, cur, false})
		}
		k.a.mu.Unlock()
	}
	if err := p.Store.WritePEP(ws); err != nil {
		p.mu.Lock()
		for k, n := range marked {
			if _, again := p.dirty[k]; !again {
				p.dirty[k] = n
			}
		}
		p.mu.Unlock()
		return fmt.Errorf("pep: flush %d nodes: %w", len(ws), err)
	}
	for _, d := range after {
		d.a.mu.Lock()
		d.n.stored = d.stored
		d.a.mu.Unlock()
	}
	return nil
}

// roster refreshes a's roster cache when the stored roster version
// changed (one read transaction per call, a full read only on change);
// a.mu is held.
func (p *Service) roster(a *account) {
	ver, err := p.Store.RosterVersion(a.local)
	if err != nil {
		p.log().Warn("pep: cannot read the roster version", "account", a.bare.String(), "err", err)
		return
	}
	if a.rosterOK && ver == a.rosterVer {
		return
	}
	items, ver, err := p.Store.Roster(a.local)
	if err != nil {
		p.log().Warn("pep: cannot read the roster", "account", a.bare.String(), "err", err)
		return
	}
	a.contacts = a.contacts[:0]
	a.subOf = make(map[string]string, len(items))
	for _, it := range items {
		j, err := jid.Parse(it.JID)
		if err != nil || !j.IsBare() {
			continue
		}
		a.subOf[j.String()] = it.Subscription
		a.contacts = append(a.contacts, contact{bare: j, bareB: []byte(j.String()), sub: it.Subscription, local: j.Domain() == p.Domain})
	}
	a.rosterOK, a.rosterVer = true, ver
}

// fromOrBoth reports whether the subscription gives the contact the
// account's presence (RFC 6121 §3): PEP's presence access model.
func fromOrBoth(sub string) bool { return sub == "from" || sub == "both" }

// toOrBoth reports whether the account gets the contact's presence.
func toOrBoth(sub string) bool { return sub == "to" || sub == "both" }

// access reports whether asker may see n's items and subscribe (XEP-0060
// §6.1.3, §6.5.9; XEP-0163 §4.1), and otherwise the app-specific error;
// a.mu is held and a's roster refreshed.
func (p *Service) access(a *account, n *node, asker jid.JID) (ok bool, app string) {
	bare := asker.Bare().String()
	if bare == a.bare.String() {
		return true, ""
	}
	aff := n.affs[bare]
	if aff == "outcast" {
		return false, ""
	}
	switch n.cfg.access {
	case accessOpen:
		return true, ""
	case accessWhitelist:
		if aff == "member" || aff == "publisher" {
			return true, ""
		}
		return false, "closed-node"
	default:
		if fromOrBoth(a.subOf[bare]) {
			return true, ""
		}
		return false, "presence-subscription-required"
	}
}

// has reports whether full's caps include feature (XEP-0115).
func (p *Service) has(full jid.JID, feature string) bool {
	if p.wants != nil {
		return p.wants(full, feature)
	}
	return p.Caps.Has(full, feature)
}

// notifyList is the nodes full wants notifications for (+notify).
func (p *Service) notifyList(full jid.JID) []string {
	if p.notifyOf != nil {
		return p.notifyOf(full)
	}
	return p.Caps.Notify(nil, full)
}

// Available is called for each available presence a local session
// sends: the first time (or once its caps become known) it gets the last
// item of every node it wants (+notify) and may see, from its own
// account and its contacts (XEP-0163 §6.2).
func (p *Service) Available(sess *session.Bound) {
	p.init()
	full := sess.JID()
	wants := p.notifyList(full)
	if len(wants) == 0 {
		return // caps unknown yet (Known follows) or nothing wanted
	}
	if !p.markSent(full) {
		return
	}
	to := full.String()
	send := func(b []byte) { sess.Deliver(b) }
	if own := p.accountOf(full.Bare(), false); own != nil {
		p.sendLast(own, full, to, wants, send)
	}
	me := p.accountOf(full.Bare(), true)
	me.mu.Lock()
	p.roster(me)
	var others []jid.JID
	for _, c := range me.contacts {
		if c.local && toOrBoth(c.sub) && c.bare != full.Bare() {
			others = append(others, c.bare)
		}
	}
	me.mu.Unlock()
	for _, o := range others {
		if a := p.accountOf(o, false); a != nil {
			p.sendLast(a, full, to, wants, send)
		}
	}
}

// markSent records that full had its last items in this available
// period; false when it already had them.
func (p *Service) markSent(full jid.JID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.lastSent[full.String()]; ok {
		return false
	}
	p.lastSent[full.String()] = struct{}{}
	return true
}

// sendLast sends to the last item of each of a's nodes in wants that
// full may see and whose send_last_published_item is on presence
// (XEP-0163 §6.2, XEP-0060 §12.6).
func (p *Service) sendLast(a *account, full jid.JID, to string, wants []string, send func([]byte)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p.roster(a)
	for _, name := range wants {
		n := a.nodes[name]
		if n == nil || len(n.items) == 0 || n.cfg.sendLast != sendLastPresence {
			continue
		}
		if ok, _ := p.access(a, n, full); !ok {
			continue
		}
		it := &n.items[len(n.items)-1]
		send(p.eventMessage(a, to, itemsEvent(n.name, it)))
	}
}

// Known is caps.Cache.Known: full's features became known.
func (p *Service) Known(full jid.JID) {
	p.init()
	if full.Domain() == p.Domain {
		if s := p.Router.Session([]byte(full.Bare().String()), []byte(full.Resource())); s != nil && s.Available() {
			p.Available(s)
		}
		return
	}
	p.mu.Lock()
	owners := append([]*account(nil), p.remoteOf[full.String()]...)
	p.mu.Unlock()
	for _, a := range owners {
		p.RemoteAvailable(full, a.bare)
	}
}

// RemoteAvailable is called when available presence from a contact on
// another domain reaches local account owner: it gets owner's last items
// it wants and may see.
func (p *Service) RemoteAvailable(from jid.JID, owner jid.JID) {
	p.init()
	a := p.accountOf(owner.Bare(), true)
	a.mu.Lock()
	p.roster(a)
	if !fromOrBoth(a.subOf[from.Bare().String()]) {
		a.mu.Unlock()
		return // not a contact: nothing is sent to it but open nodes on request
	}
	if a.remotes == nil {
		a.remotes = map[string][]jid.JID{}
	}
	fulls := a.remotes[from.Bare().String()]
	known := false
	for _, f := range fulls {
		known = known || f == from
	}
	if !known && len(fulls) < remoteResources {
		a.remotes[from.Bare().String()] = append(fulls, from)
		p.mu.Lock()
		p.remoteOf[from.String()] = append(p.remoteOf[from.String()], a)
		p.mu.Unlock()
	}
	a.mu.Unlock()
	wants := p.notifyList(from)
	if len(wants) == 0 || p.Remote == nil {
		return
	}
	key := from.String() + " " + a.bare.String()
	p.mu.Lock()
	_, sent := p.lastSent[key]
	p.lastSent[key] = struct{}{}
	p.mu.Unlock()
	if sent {
		return
	}
	p.sendLast(a, from, from.String(), wants, func(b []byte) { p.Remote(from.String(), append([]byte(nil), b...)) })
}

// Unavailable forgets that full had its last items (it went offline).
func (p *Service) Unavailable(full jid.JID) {
	p.init()
	p.mu.Lock()
	delete(p.lastSent, full.String())
	owners := p.remoteOf[full.String()]
	delete(p.remoteOf, full.String())
	for _, a := range owners {
		delete(p.lastSent, full.String()+" "+a.bare.String())
	}
	p.mu.Unlock()
	for _, a := range owners {
		a.mu.Lock()
		bare := full.Bare().String()
		fulls := a.remotes[bare]
		for i, f := range fulls {
			if f == full {
				fulls = append(fulls[:i:i], fulls[i+1:]...)
				break
			}
		}
		if len(fulls) == 0 {
			delete(a.remotes, bare)
		} else {
			a.remotes[bare] = fulls
		}
		a.mu.Unlock()
	}
}

// errorWith answers st with cond and, when app is set, the XEP-0060
// application-specific condition app in the pubsub#errors namespace
// (with its own attributes when it has a space: feature='...'). An iq
// without 'to' was for the sender's own account (RFC 6120 §8.1.1.1): it
// is answered from owner's bare JID (some clients, aioxmpp among them,
// match the answer to such an iq only from there).
func (p *Service) errorWith(sess session.Peer, st *stanza.Stanza, owner string, cond stanza.Condition, app, text string) {
	if app == "" {
		session.Bounce(sess, st, owner, cond, text)
		return
	}
	b := stanza.AppendErrorFor(nil, st.Kind, st.ID, sess.JID().String(), stanza.ReplyFrom(st, owner), cond, cond.DefaultType(), text)
	end := len(b) - len("</error></iq>")
	var out []byte
	out = append(out, b[:end]...)
	out = append(out, '<')
	out = append(out, app...)
	if !hasAttrs(app) {
		out = append(out, " xmlns='"+NSError+"'"...)
	}
	out = append(out, "/>"...)
	out = append(out, b[end:]...)
	sess.Deliver(out)
}

// hasAttrs reports whether an app condition was given with its own
// attributes (then it carries its xmlns itself).
func hasAttrs(app string) bool {
	for i := 0; i < len(app); i++ {
		if app[i] == ' ' {
			return true
		}
	}
	return false
}
