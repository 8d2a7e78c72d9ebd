// Package route applies the routing rules of RFC 6120 §8 and RFC 6121 §8
// to every stanza a bound session sends, whatever its transport, and
// answers the iqs addressed to the server itself (iq.go: one handler per
// namespace, listed in disco#info). Stanzas for local accounts go to the
// routing table's sessions; the IM rules (rosters, subscriptions,
// presence, offline storage) are im's; stanzas for other domains leave
// through Remote, and what arrives from other domains enters through
// FromUplink and FromRemote.
package route

import (
	"log/slog"

	"roost/server/adhoc"
	"roost/server/blocking"
	"roost/server/caps"
	"roost/server/carbons"
	"roost/server/im"
	"roost/server/lastactivity"
	"roost/server/pep"
	"roost/server/private"
	"roost/server/router"
	"roost/server/vcard"
	"roost/storage"
)

// Service routes stanzas for one domain. Its fields are set once before
// the first stanza and not changed after.
type Service struct {
	Domain string
	// AcceptFrom is devices.accept_from: who may send iq requests to a
	// device ("owners", "contacts" or "anyone").
	AcceptFrom string
	// Version is what jabber:iq:version answers (XEP-0092).
	Version string
	Store   *storage.Store
	Router  *router.Router
	IM      *im.Service
	Log     *slog.Logger
	// Remote is the way to other domains; nil when the server does not
	// federate.
	Remote Remote
	// Carbons is XEP-0280 message carbons; nil: no carbons.
	Carbons *carbons.State
	// Commands is XEP-0050 ad-hoc commands (XEP-0133 administration);
	// nil: none.
	Commands *adhoc.Service
	// Caps is XEP-0115 entity capabilities; PEP is XEP-0163 personal
	// eventing; Blocking is XEP-0191; Private XEP-0049; VCard XEP-0054;
	// Last XEP-0012. Each nil: the feature is off (not advertised).
	Caps     *caps.Cache
	PEP      *pep.Service
	Blocking *blocking.Service
	Private  *private.Service
	VCard    *vcard.Service
	Last     *lastactivity.Service
}
