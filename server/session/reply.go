package session

import (
	"roost/wire/outq"
	"roost/wire/stanza"
)

// Bounce answers st, sent by p, with the stanza error cond (RFC 6120
// §8.3): from the address st was sent to, or from domain when that is not
// a JID the sender could parse. An error or an iq result is never
// answered (§8.3.1).
func Bounce(p Peer, st *stanza.Stanza, domain string, cond stanza.Condition, text string) {
	if string(st.Type) == "error" || (st.Kind == stanza.IQ && string(st.Type) == "result") {
		return
	}
	buf := outq.GetBuf()
	*buf = stanza.AppendError((*buf)[:0], st, p.JID().String(), stanza.ReplyFrom(st, domain), cond, text)
	p.Deliver(*buf)
	outq.PutBuf(buf)
}

// Result answers the iq st, sent by p, with a result carrying payload
// (nil: an empty result), from the address st was sent to (RFC 6120
// §8.2.3).
func Result(p Peer, st *stanza.Stanza, domain string, payload []byte) {
	buf := outq.GetBuf()
	*buf = stanza.AppendIQResult((*buf)[:0], st.ID, p.JID().String(), stanza.ReplyFrom(st, domain), payload)
	p.Deliver(*buf)
	outq.PutBuf(buf)
}
