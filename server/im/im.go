// Package im holds the instant-messaging side of the server (RFC 6121):
// rosters, presence broadcast and probes, and what happens to presence
// when a session ends. Presence lives in memory only; the store is
// written when a roster item changes.
package im

import (
	"log/slog"
	"roost/server/session"

	"roost/server/router"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// Service applies RFC 6121 for one domain.
type Service struct {
	Domain      string
	Store       *storage.Store
	Router      *router.Router
	Log         *slog.Logger
	RosterLimit int
	// OfflineQuota is how many messages are kept for an account with no
	// available resource.
	OfflineQuota int
	// DirectedPresences bounds the directed-presence targets one session
	// may hold (limits.directed_presences); 0 means
	// DefaultDirectedPresences.
	DirectedPresences int
	// PendingSubscriptions bounds the inbound subscription requests one
	// account keeps waiting for its answer (limits.pending_subscriptions);
	// 0 means DefaultPendingSubscriptions.
	PendingSubscriptions int
	// Remote sends a stanza to a JID of another domain (the uplink), or
	// is nil when the server does not federate. to is the address the
	// stanza is for; b may lack a to attribute (a broadcast copy).
	Remote func(to string, b []byte)
}

// Defaults for the bounds left at zero, as in config.json.
const (
	DefaultDirectedPresences    = 1000
	DefaultPendingSubscriptions = 100
)

func (m *Service) directedLimit() int {
	if m.DirectedPresences > 0 {
		return m.DirectedPresences
	}
	return DefaultDirectedPresences
}

func (m *Service) pendingLimit() int {
	if m.PendingSubscriptions > 0 {
		return m.PendingSubscriptions
	}
	return DefaultPendingSubscriptions
}

// AddDirected records that sess sent directed presence to j (RFC 6121
// §4.6), within DirectedPresences. false means the set is full: the
// caller must not deliver the presence and answers resource-constraint,
// since j would otherwise never learn that the session went offline.
// Prosody keeps no bound; one client could grow it without end.
func (m *Service) AddDirected(sess session.Peer, j jid.JID, available bool) bool {
	return sess.AddDirectedMax(j, available, m.directedLimit())
}

// isRemote reports whether a JID string is on another domain and there
// is a way to reach it.
func (m *Service) isRemote(j string) bool {
	return m.Remote != nil && jid.DomainOf(j) != m.Domain
}

// reply sends the error for st back to sess.
func (m *Service) reply(sess session.Peer, st *stanza.Stanza, cond stanza.Condition, text string) {
	session.Bounce(sess, st, m.Domain, cond, text)
}
