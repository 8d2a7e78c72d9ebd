package c2s

import (
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"roost/server/session"
	"time"

	"roost/server/metrics"
	"roost/wire/jid"
	"roost/wire/outq"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// bindRequest is the payload of a resource binding iq (RFC 6120 §7).
type bindRequest struct {
	Type string `xml:"type,attr"`
	ID   string `xml:"id,attr"`
	Bind *struct {
		XMLName  xml.Name `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
		Resource string   `xml:"resource"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
}

// bindIQ handles an iq on an authenticated stream that has not bound a
// resource yet. Only resource binding is allowed there; it returns the new
// session when binding succeeded.
func (c *Conn) bindIQ(tok *xmlscan.Token) (*Session, error) {
	st, ok := stanza.Parse(tok, NSClient)
	if !ok {
		return nil, fail(stanza.StreamBadFormat, "malformed iq")
	}
	if string(tok.ChildSpace) != NSBind || string(tok.ChildLocal) != "bind" {
		return nil, fail(stanza.StreamNotAuthorized, "bind a resource before sending other stanzas")
	}
	var req bindRequest
	if err := xml.Unmarshal(tok.Raw, &req); err != nil || req.Bind == nil || req.Type != "set" || tok.Children != 1 {
		return nil, c.write(stanza.AppendError(nil, &st, "", c.env.Domain, stanza.BadRequest, "a bind iq is type='set' with one <bind/> child"))
	}
	res := req.Bind.Resource
	if res == "" {
		res = "roost-" + newID()[:8]
	}
	full, err := jid.New(c.authed, c.env.Domain, res)
	if err != nil {
		return nil, c.write(stanza.AppendError(nil, &st, "", c.env.Domain, stanza.BadRequest, "the resource is not a valid resourcepart (RFC 7622)"))
	}
	// Everything the session holds is set before it becomes routable:
	// from then on other goroutines deliver to it (and may log through
	// it when it reads too slowly).
	log := c.log.With("jid", full.String())
	s := newSession(c.env, full, c.lang, c.nc, log, c.transport)
	result := append([]byte(nil), "<iq type='result' id='"...)
	result = stanza.AppendEscaped(result, req.ID)
	result = append(result, "'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>"...)
	result = stanza.AppendEscaped(result, s.Full())
	result = append(result, "</jid></bind></iq>"...)
	// Routable before the client hears it is bound: anything sent to the
	// new full JID once the client announced it must find it. The limit
	// on sessions per user is checked in the same step (RFC 6120
	// §7.6.2.1: resource-constraint).
	if !c.env.Router.BindReplace(s.Bound, c.env.SessionsPerUser) {
		// s was never routable and its queue never started a writer:
		// dropping it leaves nothing behind.
		return nil, c.write(stanza.AppendError(nil, &st, "", c.env.Domain, stanza.ResourceConstraint, "this account has reached its limit of simultaneous sessions"))
	}
	s.q.Push(result)
	c.log = log
	c.log.Debug("c2s: bound")
	return s, nil
}

// runBound reads a bound session's stanzas until the stream ends. A
// connection lost (read error, liveness timeout) with XEP-0198
// resumption on detaches the session, which waits for a resumption
// (limits.resume_timeout); otherwise the session leaves the routing
// table, its presence goes unavailable, and what it could not deliver
// goes to the handler's Undelivered.
func (c *Conn) runBound(s *Session) {
	env := c.env
	c.nc.SetReadDeadline(time.Time{})
	c.wbuf = nil
	t := stream{s.q}
	stop := c.watch(s)
	lost := false
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("c2s: internal error, closing session", "panic", r)
			s.CloseIf(t, stanza.StreamInternalServerError, "")
			lost = false
		}
		stop()
		c.scan.Release()
		if lost {
			// The peer is gone: nothing queued will reach it.
			c.nc.Close()
		}
		mine, detached := s.Detach(t, func() { finish(env, s.Bound) })
		switch {
		case !mine:
			c.log.Debug("c2s: connection replaced by a resumption")
			s.Wait(time.Second)
			c.nc.Close()
		case detached:
			c.log.Debug("c2s: connection lost, session waits for a resumption")
			c.nc.Close()
		default:
			s.Close("", "")
			env.Router.Unbind(s.Bound)
			env.Handler.Closed(s.Bound)
			if !s.Wait(env.WriteTimeout) {
				c.nc.Close()
				s.Wait(time.Second)
			}
			c.nc.Close()
			s.Finish(env.Handler)
		}
	}()
	tok := &s.tok // reused, like s.st: it would escape otherwise
	for {
		var err error
		*tok, err = c.scan.Next()
		if err != nil {
			lost = c.endBound(s, t, err)
			return
		}
		if tok.Kind == xmlscan.KindClose {
			s.CloseIf(t, "", "")
			return
		}
		if isStreamError(tok) {
			c.logPeerError(tok)
			s.CloseIf(t, "", "")
			return
		}
		if !s.Receive(tok) {
			return
		}
	}
}

// finish ends a session for good once its connection is over: out of
// the routing table, unavailable presence, and what it could not deliver
// handed to Undelivered (DESIGN.md, "Delivery guarantees").
func finish(env *Env, b *session.Bound) {
	env.Router.Unbind(b)
	env.Handler.Closed(b)
	b.Finish(env.Handler)
}

// Receive handles one top-level element read from the session's stream:
// a stanza gets its from stamped (by splicing bytes, not re-serialising)
// and goes to the handler; XEP-0198 and XEP-0352 elements are handled
// here; anything else ends the stream with <unsupported-stanza-type/>.
// It reports whether the stream goes on. This is the whole per-stanza
// path after the scanner, so it allocates nothing in steady state.
func (s *Session) Receive(tok *xmlscan.Token) bool {
	if string(tok.Space) != NSClient {
		return s.nonza(tok)
	}
	// s.st is reused: only the reading goroutine calls Receive, and a
	// Stanza that escaped to the handler would otherwise cost an
	// allocation per stanza.
	st := &s.st
	var ok bool
	if *st, ok = stanza.Parse(tok, NSClient); !ok {
		s.CloseIf(stream{s.q}, stanza.StreamUnsupportedStanzaType, "<"+string(tok.Local)+"/> is not a stanza this server understands")
		return false
	}
	buf := outq.GetBuf()
	stamped := stanza.AppendForward((*buf)[:0], st, s.Full(), s.Lang())
	s.env.Handler.Stanza(s.Bound, st, stamped)
	*buf = stamped
	outq.PutBuf(buf)
	if s.sm {
		s.CountIn() // XEP-0198 §4: h counts handled stanzas
	}
	return true
}

// endBound handles a read error of a bound session: bad XML closes the
// stream with a stream error; anything else (EOF, a reset, a closed
// socket) means the connection is lost, which it reports.
func (c *Conn) endBound(s *Session, t stream, err error) (lost bool) {
	var xe *xmlscan.Error
	switch {
	case errors.As(err, &xe):
		c.log.Info("c2s: closing stream on bad XML", "condition", xe.Cond, "reason", xe.Reason)
		s.CloseIf(t, stanza.StreamCondition(xe.Cond), "")
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, net.ErrClosed):
	default:
		c.log.Debug("c2s: read failed", "err", err)
	}
	return true
}

func newSession(env *Env, full jid.JID, lang string, nc net.Conn, log *slog.Logger, transport string) *Session {
	s := &Session{env: env}
	s.q = newQueue(env, nc, s, log)
	s.Bound = session.New(full, stream{s.q}, session.Options{Lang: lang, Remote: nc.RemoteAddr(), Log: log, Transport: transport,
		WriteTimeout: env.WriteTimeout, SMQueueBytes: env.SMQueueBytes, CSIHoldBytes: env.CSIHoldBytes})
	s.q.SetOnWrite(s.Bound.Written)
	return s
}

// newQueue is a connection's out-queue. A slow reader is closed from
// another goroutine: the overflow is noticed inside a push, under the
// session core's lock.
func newQueue(env *Env, nc net.Conn, s *Session, log *slog.Logger) *outq.Queue {
	var q *outq.Queue
	q = outq.New(nc, env.QueueBytes, env.WriteTimeout, func() {
		log.Warn("c2s: dropping slow reader")
		metrics.SlowReaderDrops.Inc()
		go s.CloseIf(stream{q}, stanza.StreamPolicyViolation, queueOverflowText)
	})
	return q
}

// NewLocalSession makes a bound session for full that writes to nc
// without any stream negotiation, and starts its writer. It is for
// transports that authenticate in their own way and for benchmarks; the
// caller binds it in the router and feeds it with Receive.
func NewLocalSession(env *Env, full jid.JID, nc net.Conn) *Session {
	s := newSession(env, full, "", nc, env.Log.With("jid", full.String()), "c2s")
	return s
}
