package c2s

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"roost/server/session"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// NSCSI is the XEP-0352 namespace.
const NSCSI = "urn:xmpp:csi:0"

// smFailed is XEP-0198's <failed/> with a stanza error condition.
func smFailed(cond string) []byte {
	return []byte("<failed xmlns='urn:xmpp:sm:3'><" + cond + " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>")
}

// nonza handles a bound session's top-level elements that are not
// stanzas: XEP-0198's <enable/>, <r/>, <a/> (and <resume/>, refused on a
// bound stream) and XEP-0352's <active/> and <inactive/>. Anything else
// ends the stream with <unsupported-stanza-type/>. It reports whether the
// stream goes on.
func (s *Session) nonza(tok *xmlscan.Token) bool {
	t := stream{s.q}
	space, local := string(tok.Space), string(tok.Local)
	switch {
	case space == session.NSSM && local == "enable":
		if s.sm {
			s.q.Push(smFailed("unexpected-request"))
			return true
		}
		v, _ := tok.Attr("resume")
		resume := string(v) == "true" || string(v) == "1"
		if err := s.EnableSM(s.env.SM, resume); err != nil {
			s.q.Push(smFailed("unexpected-request"))
			return true
		}
		s.sm = true
		return true
	case space == session.NSSM && local == "r":
		if !s.sm {
			return true
		}
		b := append(make([]byte, 0, 48), "<a xmlns='urn:xmpp:sm:3' h='"...)
		b = strconv.AppendUint(b, uint64(s.HandledIn()), 10)
		s.q.Push(append(b, "'/>"...))
		return true
	case space == session.NSSM && local == "a":
		if !s.sm {
			return true
		}
		v, _ := tok.Attr("h")
		h, err := strconv.ParseUint(string(v), 10, 32)
		if err != nil {
			s.CloseIf(t, stanza.StreamUndefinedCondition, "<a/> needs h, a number from 0 to 4294967295 (XEP-0198)")
			return false
		}
		if err := s.Acked(uint32(h)); err != nil {
			s.Log().Info("c2s: client acknowledged more than was sent", "err", err)
			s.CloseIf(t, stanza.StreamUndefinedCondition, err.Error())
			return false
		}
		return true
	case space == session.NSSM && (local == "resume" || local == "enabled"):
		s.q.Push(smFailed("unexpected-request"))
		return true
	case space == NSCSI && (local == "active" || local == "inactive"):
		s.SetInactive(local == "inactive")
		return true
	}
	s.CloseIf(t, stanza.StreamUnsupportedStanzaType, "<"+local+"/> is not a stanza this server understands")
	return false
}

// resume handles <resume previd=” h=”/> on an authenticated stream that
// has not bound a resource (XEP-0198 §5). An unknown or expired id, or
// one of another account's session, gets <failed><item-not-found/> and
// the stream goes on (the client may bind a new resource). On success
// the session, with its routing entry and presence, continues on this
// connection: the old connection, if still open, is closed.
func (c *Conn) resume(tok *xmlscan.Token) (*Session, error) {
	env := c.env
	previd, _ := tok.Attr("previd")
	hv, _ := tok.Attr("h")
	h, err := strconv.ParseUint(string(hv), 10, 32)
	if err != nil {
		return nil, c.write(smFailed("bad-request"))
	}
	var b *session.Bound
	if env.SM != nil && len(previd) > 0 {
		b = env.SM.Lookup(string(previd))
	}
	if b == nil || b.JID().Local() != c.authed || b.JID().Domain() != env.Domain {
		c.log.Debug("c2s: resumption refused", "previd", string(previd))
		return nil, c.write(smFailed("item-not-found"))
	}
	log := c.log.With("jid", b.Full())
	s := &Session{env: env, Bound: b, sm: true}
	s.q = newQueue(env, c.nc, s, log)
	s.q.SetOnWrite(b.Written)
	old, err := b.Resume(stream{s.q}, uint32(h))
	var over *session.OverAckError
	switch {
	case errors.As(err, &over):
		return nil, fail(stanza.StreamUndefinedCondition, "%s", over.Error())
	case err != nil:
		return nil, c.write(smFailed("item-not-found"))
	}
	if old != nil {
		old.Close(stanza.StreamConflict, "the session was resumed on another connection")
	}
	c.log = log
	c.log.Debug("c2s: resumed", "h", h)
	return s, nil
}

// watch checks a bound connection's liveness (limits.idle_ping): when
// nothing was read for IdlePing, the client gets <r/> (XEP-0198 on) or
// an XEP-0199 ping; when nothing is read for IdlePing more, the
// connection is closed, which with resumption on starts the resume
// window. TCP keepalive (set at accept) finds dead peers too, but only
// after minutes and not through every middlebox. It returns the stop
// function.
func (c *Conn) watch(s *Session) (stop func()) {
	d := c.env.IdlePing
	if d <= 0 {
		return func() {}
	}
	var (
		mu      sync.Mutex
		stopped bool
		pinged  bool
		timer   *time.Timer
	)
	c.seen.Store(false)
	fire := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		switch {
		case c.seen.Swap(false):
			pinged = false
		case !pinged:
			pinged = true
			if !s.RequestAck() {
				b := append(make([]byte, 0, 160), "<iq type='get' id='roost-ping-"...)
				b = append(b, newID()[:8]...)
				b = append(b, "' from='"...)
				b = stanza.AppendEscaped(b, c.env.Domain)
				b = append(b, "' to='"...)
				b = stanza.AppendEscaped(b, s.Full())
				b = append(b, "'><ping xmlns='urn:xmpp:ping'/></iq>"...)
				s.q.Push(b)
			}
		default:
			c.log.Info("c2s: no answer to the liveness check, closing the connection", "idle_ping", d)
			c.nc.Close()
			return
		}
		timer.Reset(d)
	}
	mu.Lock()
	timer = time.AfterFunc(d, fire)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		timer.Stop()
		mu.Unlock()
	}
}
