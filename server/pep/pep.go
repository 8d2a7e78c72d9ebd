// Package pep is personal eventing (XEP-0163) over the pubsub subset it
// needs (XEP-0060): every account, devices included, is a pubsub service
// at its bare JID; publishing creates the node; notifications go to the
// owner's resources and to contacts with a from/both subscription whose
// entity capabilities (XEP-0115) include NODE+notify, and to explicit
// subscribers. Items are kept in memory and written to the store in
// batches (pep.flush_interval), at once only for nodes that ask for it.
package pep

import (
	"log/slog"
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
}

// Start loads the stored nodes and starts the flusher.
func (p *Service) Start() error { return nil }

// Close writes what is not yet stored and stops the flusher; the store
// must still be open.
func (p *Service) Close() error { return nil }

// IQ answers a pubsub iq (namespace NS or NSOwner) to owner's PEP
// service (owner is a bare JID of a local account; a client's iq with no
// 'to' is for its own account).
func (p *Service) IQ(sess session.Peer, st *stanza.Stanza, owner jid.JID) {
	session.Bounce(sess, st, p.Domain, stanza.ServiceUnavailable, "")
}

// DiscoInfo appends to a disco#info answer for owner's bare JID what PEP
// adds (XEP-0163 §4.1: identity pubsub/pep and the pubsub features); for
// node != "" it answers for that node, ok=false when the node does not
// exist or the asker may not see it.
func (p *Service) DiscoInfo(dst []byte, asker jid.JID, owner jid.JID, node string) (out []byte, ok bool) {
	return dst, node == ""
}

// DiscoItems appends the nodes of owner asker may see (XEP-0060 §5.2).
func (p *Service) DiscoItems(dst []byte, asker jid.JID, owner jid.JID) []byte { return dst }

// Available is called for each available presence a local session
// sends: the first time (or once its caps become known) it gets the last
// item of every node it wants (+notify) and may see, from its own
// account and its contacts (XEP-0163 §6.2 ).
func (p *Service) Available(sess *session.Bound) {}

// Known is caps.Cache.Known: full's features became known.
func (p *Service) Known(full jid.JID) {}

// RemoteAvailable is called when available presence from a contact on
// another domain reaches local account owner: it gets owner's last items
// it wants and may see.
func (p *Service) RemoteAvailable(from jid.JID, owner jid.JID) {}

// Unavailable forgets that full had its last items (it went offline).
func (p *Service) Unavailable(full jid.JID) {}
