// Package router holds Roost's routing table: which sessions are bound
// for each bare JID, and the choice of targets RFC 6121 §8 makes for a
// stanza addressed to a bare or full JID.
//
// The table is read on every routed stanza and written only when a
// resource binds or unbinds, so it is sharded by bare JID with a
// read-mostly lock per shard and an immutable session list per user:
// routing takes one shard's read lock for a map lookup and never a global
// lock.
package router

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"roost/server/session"
	"roost/wire/stanza"
)

const shardCount = 64

// Router is the routing table. The zero value is not usable; use New.
type Router struct {
	seed   maphash.Seed
	shards [shardCount]shard
	count  atomic.Int64
}

type shard struct {
	mu    sync.RWMutex
	users map[string]*entry
}

// entry holds one bare JID's sessions as an immutable slice, replaced
// whole on bind and unbind, so readers can range over it without a lock.
type entry struct {
	sessions atomic.Pointer[[]*session.Bound]
}

// New returns an empty routing table.
func New() *Router {
	r := &Router{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].users = make(map[string]*entry)
	}
	return r
}

func (r *Router) shardFor(bare []byte) *shard {
	return &r.shards[maphash.Bytes(r.seed, bare)%shardCount]
}

// Bind adds s to the table. When a session with the same full JID is
// already bound it is removed and returned, so the caller can close it
// with a <conflict/> stream error (RFC 6120 §7.7.2.2).
func (r *Router) Bind(s *session.Bound) (replaced *session.Bound) {
	replaced, _ = r.BindLimit(s, 0)
	return replaced
}

// BindLimit is Bind for a user allowed at most limit sessions at once
// (limits.sessions_per_user; 0: no limit). When the user already has
// limit sessions and s replaces none of them, s is not bound and ok is
// false. The check and the bind happen under the user's shard lock, so
// two binds at the same moment cannot both pass the check.
func (r *Router) BindLimit(s *session.Bound, limit int) (replaced *session.Bound, ok bool) {
	j := s.JID()
	bare := j.Bare().String()
	sh := r.shardFor([]byte(bare))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[bare]
	var old []*session.Bound
	if e != nil {
		if p := e.sessions.Load(); p != nil {
			old = *p
		}
	}
	if limit > 0 && len(old) >= limit {
		same := false
		for _, o := range old {
			if o.JID().Equal(j) {
				same = true
				break
			}
		}
		if !same {
			return nil, false
		}
	}
	if e == nil {
		e = &entry{}
		sh.users[bare] = e
	}
	next := make([]*session.Bound, 0, len(old)+1)
	for _, o := range old {
		if o.JID().Equal(j) {
			replaced = o
			continue
		}
		next = append(next, o)
	}
	next = append(next, s)
	e.sessions.Store(&next)
	if replaced == nil {
		r.count.Add(1)
	}
	return replaced, true
}

// Unbind removes s from the table; it does nothing when s is not bound
// (for instance because a newer session with its JID replaced it).
func (r *Router) Unbind(s *session.Bound) {
	bare := s.JID().Bare().String()
	sh := r.shardFor([]byte(bare))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.users[bare]
	if e == nil {
		return
	}
	old := *e.sessions.Load()
	next := make([]*session.Bound, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	if len(next) == len(old) {
		return
	}
	r.count.Add(-1)
	if len(next) == 0 {
		delete(sh.users, bare)
		return
	}
	e.sessions.Store(&next)
}

// Sessions returns the sessions bound to the bare JID given as canonical
// bytes. The slice is shared and must not be modified. It allocates nothing.
func (r *Router) Sessions(bare []byte) []*session.Bound {
	sh := r.shardFor(bare)
	sh.mu.RLock()
	e := sh.users[string(bare)]
	sh.mu.RUnlock()
	if e == nil {
		return nil
	}
	if p := e.sessions.Load(); p != nil {
		return *p
	}
	return nil
}

// Session returns the session bound to the full JID given as canonical
// bytes (bare part and resource), or nil.
func (r *Router) Session(bare []byte, resource []byte) *session.Bound {
	for _, s := range r.Sessions(bare) {
		if s.JID().Resource() == string(resource) {
			return s
		}
	}
	return nil
}

// Count is the number of bound sessions.
func (r *Router) Count() int { return int(r.count.Load()) }

// Each calls fn for every bound session, shard by shard; used at shutdown.
func (r *Router) Each(fn func(*session.Bound)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		var all []*session.Bound
		for _, e := range sh.users {
			all = append(all, *e.sessions.Load()...)
		}
		sh.mu.RUnlock()
		for _, s := range all {
			fn(s)
		}
	}
}

// Best appends to dst the available sessions of a user that a message to
// the bare JID goes to (RFC 6121 §8.5.2.1.1): those with the highest
// non-negative priority. It returns dst unchanged when no session
// qualifies, and allocates nothing when dst has room.
func Best(dst []*session.Bound, sessions []*session.Bound) []*session.Bound {
	top := -1
	for _, s := range sessions {
		if s.Available() && s.Priority() > top {
			top = s.Priority()
		}
	}
	if top < 0 {
		return dst
	}
	for _, s := range sessions {
		if s.Available() && s.Priority() == top {
			dst = append(dst, s)
		}
	}
	return dst
}

// NonNegative appends to dst every available session with a non-negative
// priority: the targets of a headline to a bare JID (RFC 6121 §8.5.2.1.1).
func NonNegative(dst []*session.Bound, sessions []*session.Bound) []*session.Bound {
	for _, s := range sessions {
		if s.Available() && s.Priority() >= 0 {
			dst = append(dst, s)
		}
	}
	return dst
}

// AvailableOnly appends to dst every available session whatever its
// priority: the targets of presence to a bare JID (RFC 6121 §8.5.2.1.3).
func AvailableOnly(dst []*session.Bound, sessions []*session.Bound) []*session.Bound {
	for _, s := range sessions {
		if s.Available() {
			dst = append(dst, s)
		}
	}
	return dst
}

// BindReplace binds s within limit (as BindLimit) and ends the session it
// replaced, which had the same full JID, with <conflict/> (RFC 6120
// §7.7.2.2). It reports whether s was bound.
func (r *Router) BindReplace(s *session.Bound, limit int) bool {
	old, ok := r.BindLimit(s, limit)
	if old != nil {
		old.Close(stanza.StreamConflict, "replaced by a new session for the same resource")
	}
	return ok
}
