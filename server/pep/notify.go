package pep

import (
	"strconv"

	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// subscriber is an explicit subscription (XEP-0060 §6.1): a bare or full
// JID, with its bare JID's bytes for the routing table.
type subscriber struct {
	j     jid.JID
	bareB []byte
}

func newSubscriber(j jid.JID) subscriber {
	return subscriber{j: j, bareB: []byte(j.Bare().String())}
}

// fanout is the scratch of one notification: the message after its 'to'
// (built once), the copy being sent and the full JIDs already sent to.
// Pooled, so that a copy costs no allocation (issue 16: fan-out at 0
// allocations per delivered copy).
type fanout struct {
	tail []byte
	msg  []byte
	seen map[string]struct{}
}

// appendItem appends an <item/> with its payload (XEP-0060 §7.1.2.1).
func appendItem(dst []byte, it *item, withPayload bool) []byte {
	dst = append(dst, "<item id='"...)
	dst = stanza.AppendEscaped(dst, it.id)
	dst = append(dst, '\'')
	if it.publisher != "" {
		dst = append(dst, " publisher='"...)
		dst = stanza.AppendEscaped(dst, it.publisher)
		dst = append(dst, '\'')
	}
	if !withPayload || len(it.payload) == 0 {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	dst = append(dst, it.payload...)
	return append(dst, "</item>"...)
}

// itemsEvent is the content of an event for a published item.
func itemsEvent(node string, it *item) []byte {
	b := append([]byte(nil), "<items node='"...)
	b = stanza.AppendEscaped(b, node)
	b = append(b, "'>"...)
	b = appendItem(b, it, true)
	return append(b, "</items>"...)
}

// retractEvent is the content of an event for a retracted item (§7.2.2.1).
func retractEvent(node, id string) []byte {
	b := append([]byte(nil), "<items node='"...)
	b = stanza.AppendEscaped(b, node)
	b = append(b, "'><retract id='"...)
	b = stanza.AppendEscaped(b, id)
	return append(b, "'/></items>"...)
}

// nodeEvent is <purge node='N'/> or <delete node='N'/> (§8.5.2, §8.4.2).
func nodeEvent(kind, node string) []byte {
	b := append([]byte(nil), '<')
	b = append(b, kind...)
	b = append(b, " node='"...)
	b = stanza.AppendEscaped(b, node)
	return append(b, "'/>"...)
}

// appendTail appends what follows the 'to' of a notification from a:
// from, type headline, a fresh id, and the event (XEP-0163 §4.3).
func (p *Service) appendTail(dst []byte, a *account, event []byte) []byte {
	dst = append(dst, " from='"...)
	dst = stanza.AppendEscaped(dst, a.bare.String())
	dst = append(dst, "' type='headline' id='pep"...)
	dst = strconv.AppendUint(dst, p.ids.Add(1), 36)
	dst = append(dst, "'><event xmlns='"+NSEvent+"'>"...)
	dst = append(dst, event...)
	return append(dst, "</event></message>"...)
}

// eventMessage is a whole notification from a to to.
func (p *Service) eventMessage(a *account, to string, event []byte) []byte {
	b := append([]byte(nil), "<message to='"...)
	b = stanza.AppendEscaped(b, to)
	b = append(b, '\'')
	return p.appendTail(b, a, event)
}

func (p *Service) getFanout() *fanout {
	if f, ok := p.pool.Get().(*fanout); ok {
		clear(f.seen)
		return f
	}
	return &fanout{seen: map[string]struct{}{}}
}

// copyTo sends f's message to a local session not yet sent to.
func (f *fanout) copyTo(s *session.Bound) {
	if _, ok := f.seen[s.Full()]; ok {
		return
	}
	f.seen[s.Full()] = struct{}{}
	f.msg = append(f.msg[:0], "<message to='"...)
	f.msg = stanza.AppendEscaped(f.msg, s.Full())
	f.msg = append(f.msg, '\'')
	f.msg = append(f.msg, f.tail...)
	if m := s.MaxStanzaBytes(); m > 0 && len(f.msg) > m {
		return // a device's datagram cannot carry it
	}
	s.Deliver(f.msg) // copies
}

// copyRemote sends f's message to a JID on another domain.
func (p *Service) copyRemote(f *fanout, j jid.JID) {
	if p.Remote == nil {
		return
	}
	if _, ok := f.seen[j.String()]; ok {
		return
	}
	f.seen[j.String()] = struct{}{}
	b := append([]byte(nil), "<message to='"...)
	b = stanza.AppendEscaped(b, j.String())
	b = append(b, '\'')
	b = append(b, f.tail...)
	p.Remote(j.String(), b)
}

// broadcast sends event about n to everyone who gets n's notifications
// (XEP-0163 §4.3.1): the owner's available resources with NODE+notify,
// its contacts with a from/both subscription (local: their available
// resources; remote: the resources that sent it available presence)
// with NODE+notify, and the explicit subscribers (XEP-0060 §7.1.2.1),
// each once and only when it may see the node. a.mu is held and a's
// roster refreshed. Each local copy costs no allocation.
func (p *Service) broadcast(a *account, n *node, event []byte) {
	f := p.getFanout()
	f.tail = p.appendTail(f.tail[:0], a, event)
	feature := n.feature
	for _, s := range p.Router.Sessions(a.bareB) {
		if s.Available() && p.has(s.JID(), feature) {
			f.copyTo(s)
		}
	}
	for i := range a.contacts {
		c := &a.contacts[i]
		if !fromOrBoth(c.sub) {
			continue
		}
		if ok, _ := p.access(a, n, c.bare); !ok {
			continue
		}
		if c.local {
			for _, s := range p.Router.Sessions(c.bareB) {
				if s.Available() && p.has(s.JID(), feature) {
					f.copyTo(s)
				}
			}
			continue
		}
		for _, full := range a.remotes[c.bare.String()] {
			if p.has(full, feature) {
				p.copyRemote(f, full)
			}
		}
	}
	for i := range n.subs {
		sub := &n.subs[i]
		if ok, _ := p.access(a, n, sub.j); !ok {
			continue
		}
		if sub.j.Domain() != p.Domain {
			p.copyRemote(f, sub.j)
			continue
		}
		for _, s := range p.Router.Sessions(sub.bareB) {
			if s.Available() && (sub.j.IsBare() || s.JID() == sub.j) {
				f.copyTo(s)
			}
		}
	}
	p.pool.Put(f)
}

// sendTo sends b, a notification already addressed, to j: a local full
// JID's session, a local bare JID's available sessions, or out.
func (p *Service) sendTo(j jid.JID, b []byte) {
	if j.Domain() != p.Domain {
		if p.Remote != nil {
			p.Remote(j.String(), b)
		}
		return
	}
	for _, s := range p.Router.Sessions([]byte(j.Bare().String())) {
		if j.IsBare() && s.Available() || s.JID() == j {
			s.Deliver(b)
		}
	}
}
