package session

import (
	"sync"
	"sync/atomic"

	"roost/wire/jid"
)

// State is the presence and roster-interest state of a bound session
// (RFC 6121 §4: available or not, priority, the presence to answer probes
// with, directed presence). It lives in memory only: presence never
// writes the store. The zero value is an unavailable session.
type State struct {
	available atomic.Bool
	priority  atomic.Int32
	rosterReq atomic.Bool

	mu       sync.Mutex
	presence []byte // last available presence as broadcast, for probes
	directed map[jid.JID]struct{}
}

// Available reports whether the session has sent available presence.
func (s *State) Available() bool { return s.available.Load() }

// Priority is the priority of the last available presence.
func (s *State) Priority() int { return int(s.priority.Load()) }

// SetPresence records the session's own presence: available or not, its
// priority, and the stamped stanza (copied) to answer probes with. It
// reports whether this was the session's initial presence.
func (s *State) SetPresence(available bool, priority int, raw []byte) (initial bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	initial = available && !s.available.Load()
	if available {
		s.presence = append(s.presence[:0], raw...)
	} else {
		s.presence = nil
	}
	s.priority.Store(int32(priority))
	s.available.Store(available)
	return initial
}

// Presence returns a copy of the last available presence, or nil.
func (s *State) Presence() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.presence == nil {
		return nil
	}
	return append([]byte(nil), s.presence...)
}

// AddDirected remembers that the session sent directed presence to j, so
// that j gets unavailable presence when the session ends (RFC 6121 §4.6).
func (s *State) AddDirected(j jid.JID, available bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !available {
		delete(s.directed, j)
		return
	}
	if s.directed == nil {
		s.directed = make(map[jid.JID]struct{})
	}
	s.directed[j] = struct{}{}
}

// AddDirectedMax is AddDirected with a bound on the set: it refuses (and
// reports false) a new available target when max targets are already
// recorded. Removing a target, or re-sending to a known one, always works.
func (s *State) AddDirectedMax(j jid.JID, available bool, max int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !available {
		delete(s.directed, j)
		return true
	}
	if _, ok := s.directed[j]; !ok && len(s.directed) >= max {
		return false
	}
	if s.directed == nil {
		s.directed = make(map[jid.JID]struct{})
	}
	s.directed[j] = struct{}{}
	return true
}

// TakeDirected returns and forgets the JIDs that got directed presence.
func (s *State) TakeDirected() []jid.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]jid.JID, 0, len(s.directed))
	for j := range s.directed {
		out = append(out, j)
	}
	s.directed = nil
	return out
}

// RequestedRoster marks that the client fetched its roster, which makes it
// an interested resource that gets roster pushes (RFC 6121 §2.1.6).
func (s *State) RequestedRoster() { s.rosterReq.Store(true) }

// Interested reports whether the client fetched its roster.
func (s *State) Interested() bool { return s.rosterReq.Load() }
