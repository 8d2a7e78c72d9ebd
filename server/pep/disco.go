package pep

import (
	"roost/wire/jid"
	"roost/wire/stanza"
)

// Features are the pubsub features PEP supports (XEP-0060 §10, XEP-0163
// §4.1), listed in the account's disco#info.
var Features = []string{
	NS + "#publish", NS + "#auto-create", NS + "#publish-options", NS + "#retrieve-items",
	NS + "#retract-items", NS + "#purge-nodes", NS + "#delete-nodes", NS + "#subscribe",
	NS + "#config-node", NS + "#create-nodes", NS + "#access-presence", NS + "#access-open",
	NS + "#access-whitelist", NS + "#last-published", NS + "#persistent-items", NS + "#item-ids",
	NS + "#retrieve-subscriptions", NS + "#retrieve-affiliations", NS + "#modify-affiliations",
	NS + "#retrieve-default", NS + "#config-node-max",
}

// DiscoInfo appends to a disco#info answer for owner's bare JID what PEP
// adds (XEP-0163 §4.1: identity pubsub/pep and the pubsub features); for
// node != "" it answers for that node, ok=false when the node does not
// exist or the asker may not see it.
func (p *Service) DiscoInfo(dst []byte, asker jid.JID, owner jid.JID, node string) (out []byte, ok bool) {
	if node == "" {
		dst = append(dst, "<identity category='pubsub' type='pep'/>"...)
		for _, f := range Features {
			dst = append(dst, "<feature var='"...)
			dst = append(dst, f...)
			dst = append(dst, "'/>"...)
		}
		return dst, true
	}
	if !p.Visible(asker, owner, node) {
		return dst, false
	}
	dst = append(dst, "<identity category='pubsub' type='leaf'/><feature var='"+NS+"'/>"...)
	return dst, true
}

// Visible reports whether node of owner exists and asker may see it
// (its access model, XEP-0060 §6.1.3).
func (p *Service) Visible(asker, owner jid.JID, node string) bool {
	a := p.accountOf(owner.Bare(), false)
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.nodes[node]
	if n == nil {
		return false
	}
	p.roster(a)
	ok, _ := p.access(a, n, asker)
	return ok
}

// MayDisco reports whether asker may query owner's disco at all beyond
// the account: true when owner has an open node (XEP-0060 §4.5: open
// nodes are for anyone).
func (p *Service) MayDisco(asker, owner jid.JID, node string) bool {
	a := p.accountOf(owner.Bare(), false)
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if node != "" {
		n := a.nodes[node]
		return n != nil && n.cfg.access == accessOpen
	}
	for _, n := range a.nodes {
		if n.cfg.access == accessOpen {
			return true
		}
	}
	return false
}

// DiscoItems appends the nodes of owner asker may see (XEP-0060 §5.2).
func (p *Service) DiscoItems(dst []byte, asker jid.JID, owner jid.JID) []byte {
	a := p.accountOf(owner.Bare(), false)
	if a == nil {
		return dst
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p.roster(a)
	for _, name := range a.order {
		if ok, _ := p.access(a, a.nodes[name], asker); !ok {
			continue
		}
		dst = append(dst, "<item jid='"...)
		dst = stanza.AppendEscaped(dst, owner.Bare().String())
		dst = append(dst, "' node='"...)
		dst = stanza.AppendEscaped(dst, name)
		dst = append(dst, "'/>"...)
	}
	return dst
}
