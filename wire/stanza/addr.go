package stanza

import (
	"errors"

	"roost/wire/jid"
)

// ParseAddr prepares the JID in a raw (still escaped) address attribute
// such as to or from (RFC 7622 §3). Peers' addresses are compared only
// in this form: alice@LOCALHOST/x, alice@localhost. and full-width
// spellings all prepare to alice@localhost.
func ParseAddr(raw []byte) (jid.JID, error) {
	s, err := Unescape(raw)
	if err != nil {
		return jid.JID{}, err
	}
	if s == "" {
		return jid.JID{}, errors.New("empty address")
	}
	return jid.Parse(s)
}

// AddrDomain is the prepared domainpart of a raw address attribute; ok
// is false when the value is not a valid JID. An already canonical
// address is answered without preparing a copy of the whole JID.
func AddrDomain(raw []byte) (string, bool) {
	if jid.Canonical(raw) {
		_, d, _, _ := jid.Split(raw)
		return string(d), true
	}
	j, err := ParseAddr(raw)
	if err != nil {
		return "", false
	}
	return j.Domain(), true
}

// ReplyFrom is the from of the server's answer to st (RFC 6120 §8.3.1):
// the address st was sent to, or domain when st had no to or its to is
// not a valid JID (an error from='a@b@c' could not be parsed by the
// sender, who would never see it).
func ReplyFrom(st *Stanza, domain string) string {
	if st.To == nil {
		return domain
	}
	v, err := Unescape(st.To)
	if err != nil {
		return domain
	}
	if _, err := jid.Parse(v); err != nil {
		return domain
	}
	return v
}

// PeerDomains prepares the domains of a stanza a peer server or the
// component upstream sent. Both addresses must be there and be JIDs;
// otherwise problem says which is wrong, for an improper-addressing
// stream error (RFC 6120 §4.9.3.12, §8.1.1.1 and §8.1.2.1 for server
// streams).
func PeerDomains(st *Stanza) (to, from, problem string) {
	if len(st.To) == 0 || len(st.From) == 0 {
		return "", "", "a stanza between servers needs both to and from"
	}
	to, ok := AddrDomain(st.To)
	if !ok {
		return "", "", "the to address is not a valid JID"
	}
	if from, ok = AddrDomain(st.From); !ok {
		return "", "", "the from address is not a valid JID"
	}
	return to, from, ""
}
