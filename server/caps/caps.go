// Package caps is XEP-0115 entity capabilities: what features each
// available entity (a local client, or a contact on another domain that
// sent presence to a local account) has, learned from the caps element of
// its presence, resolved once per unknown 'ver' with a disco#info query
// to that entity, verified (§5.1) and cached by 'ver' within a bound.
// PEP (XEP-0163 §4) reads it to send notifications only to entities
// whose features include NODE+notify. It also builds the server's own
// caps element for the stream features (§6.3).
package caps

import (
	"log/slog"

	"roost/wire/jid"
	"roost/wire/stanza"
)

// NS is the caps namespace (XEP-0115).
const NS = "http://jabber.org/protocol/caps"

// Node is the caps node the server advertises (XEP-0115 §4: a URI for
// the software).
const Node = "https://roost.im/caps"

// Cache knows the features of available entities. All methods are safe
// for concurrent use and nil-safe (a nil Cache knows nothing).
type Cache struct {
	// Domain is the server's domain: disco#info queries are sent from it.
	Domain string
	// Max bounds the 'ver' strings remembered (pep.caps_cache).
	Max int
	// Send delivers a stanza the cache sends (a disco#info query) to to,
	// a local or remote full JID.
	Send func(to jid.JID, b []byte)
	// Known is called once the features of full become known after a
	// query (not when they were already cached at presence time), so
	// that PEP can send it the last items it wants.
	Known func(full jid.JID)
	Log   *slog.Logger
}

// Presence notes the caps in an available presence from full (raw is
// the stanza as routed); it returns true when full's features are known
// now, false when a query was sent (Known follows) or there are no caps.
func (c *Cache) Presence(full jid.JID, raw []byte) bool { return false }

// Forget drops what is known of full (unavailable presence, session end).
func (c *Cache) Forget(full jid.JID) {}

// Result takes an iq result or error addressed to the server; it reports
// whether it was the answer to one of the cache's queries.
func (c *Cache) Result(st *stanza.Stanza) bool { return false }

// Has reports whether full's known features include feature.
func (c *Cache) Has(full jid.JID, feature string) bool { return false }

// Notify appends the namespaces full asked notifications for (its
// features ending in "+notify", without the suffix).
func (c *Cache) Notify(dst []string, full jid.JID) []string { return dst }

// ServerElement is the caps element for the stream features (XEP-0115
// §6.3): ver computed from the server's disco#info identity and features.
func ServerElement(identity string, features []string) []byte { return nil }

// ServerVer is the 'ver' of ServerElement (what a disco#info query to the
// server with node Node#ver must answer).
func ServerVer(identity string, features []string) string { return "" }
