package route

import (
	"bytes"

	"roost/server/carbons"

	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Undelivered implements session.Host: gone is a session that has ended
// for good (its resume window passed, it had no stream management, it was
// dropped as a slow reader, its stream failed), and stanzas are what was
// queued to it or sent without an acknowledgement, in order. "Accepted by
// Roost" means delivered, stored or bounced, never silently dropped, so
// each gets what a stanza to an unavailable resource gets (RFC 6121
// §8.5.3.2, as Prosody's mod_smacks and ejabberd's mod_stream_mgmt do):
//
//   - a message of type chat or normal goes to the account's other
//     available resources or, with none, to offline storage with its
//     XEP-0203 delay stamp (XEP-0160);
//   - an iq request (get or set) is answered with service-unavailable to
//     its sender, who would otherwise wait for an answer that never
//     comes;
//   - presence, results, errors, headlines and groupchat are dropped:
//     they are state or events that are stale by now.
func (s *Service) Undelivered(gone *session.Bound, stanzas [][]byte) {
	if len(stanzas) == 0 {
		return
	}
	bare := []byte(gone.JID().Bare().String())
	sc := xmlscan.New(nil, xmlscan.Limits{MaxElementBytes: maxWritten(stanzas)})
	for _, b := range stanzas {
		st, ok := parseWritten(sc, b)
		if !ok {
			s.Log.Warn("route: an undelivered stanza could not be read again; dropped", "jid", gone.Full(), "bytes", len(b))
			continue
		}
		switch st.Kind {
		case stanza.Message:
			switch string(st.Type) {
			case "", "normal", "chat":
			default:
				continue
			}
			if carbons.IsCopy(b) {
				continue // a copy for this resource only (XEP-0280): the original went its way
			}
			sender := s.peerFor(st.From)
			if sender == nil {
				sender = &absentSender{}
			}
			s.messageToBare(sender, st, b, bare, s.Router.Sessions(bare), false)
		case stanza.IQ:
			if t := string(st.Type); t != "get" && t != "set" {
				continue
			}
			if sender := s.peerFor(st.From); sender != nil {
				session.Bounce(sender, st, s.Domain, stanza.ServiceUnavailable, "the recipient's session ended before it answered")
			}
		}
	}
}

// maxWritten is the size of the largest stanza, the scanner's element
// limit for reading them back.
func maxWritten(stanzas [][]byte) int {
	n := 0
	for _, b := range stanzas {
		n = max(n, len(b))
	}
	return n + 1
}

// writtenHeader gives a stanza the context of the client stream it was
// written to: jabber:client by default (prefixes it uses from elsewhere
// were re-declared on it when it was stamped).
var writtenHeader = []byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")

// parseWritten reads back a stanza the server wrote to a client stream.
func parseWritten(sc *xmlscan.Scanner, b []byte) (*stanza.Stanza, bool) {
	sc.Reset(bytes.NewReader(append(append([]byte(nil), writtenHeader...), b...)))
	if tok, err := sc.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		return nil, false
	}
	tok, err := sc.Next()
	if err != nil {
		return nil, false
	}
	st, ok := stanza.Parse(&tok, stanza.NSClient)
	if !ok {
		return nil, false
	}
	return &st, true
}

// peerFor is the sender of a stanza written to a client, to answer it:
// its bound session when it is local (nil when that has gone too), or
// route's stand-in for a sender on another domain.
func (s *Service) peerFor(rawFrom []byte) session.Peer {
	from, err := stanza.ParseAddr(rawFrom)
	if err != nil {
		return nil
	}
	if from.Domain() != s.Domain {
		if s.Remote == nil {
			return nil
		}
		return &remoteSession{jid: from, link: s}
	}
	if from.Resource() == "" {
		return nil
	}
	if r := s.Router.Session([]byte(from.Bare().String()), []byte(from.Resource())); r != nil {
		return r
	}
	return nil
}

// absentSender stands for the sender of a redirected message when it is
// no longer connected: an answer to it (the recipient's offline quota is
// full) has nowhere to go.
type absentSender struct{ session.State }

func (*absentSender) JID() jid.JID        { return jid.JID{} }
func (*absentSender) Deliver([]byte) bool { return false }
