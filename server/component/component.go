// Package component is the accept side of XEP-0114: external components
// (a Zigbee, Modbus or MQTT bridge running beside Roost on the gateway)
// connect to listen.component, authenticate with their domain's shared
// secret (config "components") and exchange stanzas with local users.
//
// The handshake is XEP-0114 §3: the component opens a stream in
// jabber:component:accept to its domain, the server answers with a stream
// id, and the component proves the secret with <handshake/> carrying the
// hex SHA-1 of the id followed by the secret. Afterwards every stanza the
// component sends must come from its own domain (RFC 6120 §4.9.3.9,
// invalid-from, as the uplink checks its upstream) and be addressed to a
// JID; what it sends is routed by the Inbound (route.Service.FromComponent)
// and what is addressed to its domain is written by Send.
//
// One session per domain: a component that authenticates while an older
// session of its domain is still open replaces it, and the older one ends
// with the conflict stream error (RFC 6120 §4.9.3.3). A bridge that
// restarts after a crash, or reconnects after a link that died without a
// FIN, must not be locked out until TCP notices the old connection is
// gone; only a holder of the secret can replace a session.
package component

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"roost/server/ratelimit"
	"roost/wire/accept"
	"roost/wire/outq"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// NS is the content namespace of a component stream (XEP-0114 §3).
const NS = stanza.NSComponent

// Config is what the server gives the accepting side.
type Config struct {
	// Domains maps each component domain, prepared (RFC 7622 §3.2), to
	// its shared secret (config "components").
	Domains map[string]string
	// Limits bound one stanza (limits.stanza_bytes, limits.max_depth)
	// and share the server's partial-stanza Budget.
	Limits xmlscan.Limits
	// PreauthBytes bounds an element before the handshake succeeded
	// (limits.preauth_stanza_bytes); 0: Limits.MaxElementBytes.
	PreauthBytes int
	// AuthTimeout is the time from connect to a successful handshake
	// (limits.auth_timeout).
	AuthTimeout time.Duration
	// WriteTimeout drops a connection whose write blocks longer
	// (limits.write_timeout).
	WriteTimeout time.Duration
	// QueueBytes bounds what waits to be written to one component
	// (limits.outbound_queue_bytes): a component that does not read is
	// cut with policy-violation.
	QueueBytes int
	// PendingPerIP bounds the connections from one address that have not
	// completed the handshake (limits.connections_per_ip); MaxPending
	// bounds them in all.
	PendingPerIP, MaxPending int
}

// Inbound routes what components send. st is valid only during the call;
// its from is a JID at the sending component's domain and its to a JID.
type Inbound interface {
	FromComponent(st *stanza.Stanza)
}

// Linked is implemented by an Inbound that wants to know when a
// component's session begins: the local users' presence is sent to their
// contacts at its domain then (RFC 6121 §4.2.2), as presence to a domain
// that was not connected was not kept.
type Linked interface {
	ComponentUp(domain string)
}

// ErrNotConnected is what Send returns for a configured component that
// has no session now (or whose session is closing).
var ErrNotConnected = errors.New("not connected")

// Service accepts components and holds their sessions.
type Service struct {
	cfg Config
	in  Inbound
	log *slog.Logger

	mu       sync.RWMutex
	ln       net.Listener
	sessions map[string]*conn      // authenticated, by domain
	open     map[net.Conn]struct{} // every connection not yet finished
	pending  map[string]int        // unauthenticated connections by address
	npending int
	closed   bool
	wg       sync.WaitGroup
}

// conn is one authenticated component session.
type conn struct {
	domain string
	remote string
	q      *outq.Queue
	since  time.Time
}

// New prepares the service; Serve accepts.
func New(cfg Config, in Inbound, log *slog.Logger) *Service {
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 1 << 20
	}
	if cfg.PendingPerIP <= 0 {
		cfg.PendingPerIP = 4
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 64
	}
	if cfg.PreauthBytes <= 0 || (cfg.Limits.MaxElementBytes > 0 && cfg.PreauthBytes > cfg.Limits.MaxElementBytes) {
		cfg.PreauthBytes = cfg.Limits.MaxElementBytes
	}
	return &Service{cfg: cfg, in: in, log: log, sessions: map[string]*conn{},
		open: map[net.Conn]struct{}{}, pending: map[string]int{}}
}

// Serves reports whether domain (prepared) is a configured component's.
func (s *Service) Serves(domain string) bool {
	_, ok := s.cfg.Domains[domain]
	return ok
}

// Connected reports whether domain's component has a session now.
func (s *Service) Connected(domain string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sessions[domain] != nil
}

// Send queues b, a stanza for a JID at domain, on the component's
// session without blocking. ErrNotConnected when there is none or it is
// closing (then the caller answers the sender); a component that does not
// read and fills its queue is cut with policy-violation and b is refused.
func (s *Service) Send(domain string, b []byte) error {
	s.mu.RLock()
	c := s.sessions[domain]
	s.mu.RUnlock()
	if c == nil {
		return ErrNotConnected
	}
	if a, e, ok := stanza.FindAttr(b, "xmlns"); ok && (isNS(b[a:e], stanza.NSClient) || isNS(b[a:e], stanza.NSServer)) {
		// A client that declared jabber:client on its stanza: on this
		// stream the stanza must inherit jabber:component:accept.
		for a > 0 && (b[a-1] == ' ' || b[a-1] == '\t' || b[a-1] == '\r' || b[a-1] == '\n') {
			a--
		}
		b = append(append(make([]byte, 0, len(b)), b[:a]...), b[e:]...)
	}
	if !c.q.Push(b) {
		return ErrNotConnected
	}
	return nil
}

// isNS reports whether attr, a whole xmlns='…' text, declares ns.
func isNS(attr []byte, ns string) bool {
	i := bytes.IndexAny(attr, "'\"")
	return i >= 0 && len(attr) >= i+2 && string(attr[i+1:len(attr)-1]) == ns
}

// Addr is the address Serve accepts on; nil before Serve.
func (s *Service) Addr() net.Addr {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Status describes each configured component, for logs and status.
func (s *Service) Status() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for d := range s.cfg.Domains {
		if c := s.sessions[d]; c != nil {
			out = append(out, fmt.Sprintf("component %s: connected from %s for %s", d, c.remote, time.Since(c.since).Round(time.Second)))
		} else {
			out = append(out, "component "+d+": not connected")
		}
	}
	sort.Strings(out)
	return out
}

// Start accepts components on ln, on a goroutine of its own, until
// Close.
func (s *Service) Start(ln net.Listener) {
	if s.attach(ln) {
		go s.accept(ln)
	}
}

// Serve accepts components on ln until Close.
func (s *Service) Serve(ln net.Listener) {
	if s.attach(ln) {
		s.accept(ln)
	}
}

// attach makes ln the service's listener; false (and ln closed) when the
// service is closed already.
func (s *Service) attach(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		ln.Close()
		return false
	}
	s.ln = ln
	return true
}

func (s *Service) accept(ln net.Listener) {
	accept.Loop(ln, s.log, "component", func(nc net.Conn) bool {
		ip := ratelimit.HostOf(nc.RemoteAddr())
		if why := s.admit(nc, ip); why != "" {
			s.log.Warn("component: refusing a connection: "+why, "remote", ip)
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write(stanza.AppendStreamError([]byte(header("", newID())), stanza.StreamPolicyViolation, why))
			nc.Close()
			return true
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(nc, ip)
		}()
		return true
	})
}

// admit counts an unauthenticated connection in, within PendingPerIP and
// MaxPending; it returns why it refused ("" when admitted).
func (s *Service) admit(nc net.Conn, ip string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return "the server is shutting down"
	case s.npending >= s.cfg.MaxPending:
		return "too many component connections are authenticating"
	case s.pending[ip] >= s.cfg.PendingPerIP:
		return "too many unauthenticated connections from your address"
	}
	s.pending[ip]++
	s.npending++
	s.open[nc] = struct{}{}
	return ""
}

// unpend releases a connection's place among the unauthenticated ones.
func (s *Service) unpend(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.npending--
	if s.pending[ip]--; s.pending[ip] <= 0 {
		delete(s.pending, ip)
	}
}

// serve runs one connection: the handshake, then the session.
func (s *Service) serve(nc net.Conn, ip string) {
	defer func() {
		s.mu.Lock()
		delete(s.open, nc)
		s.mu.Unlock()
		nc.Close()
	}()
	remote := nc.RemoteAddr().String()
	c, scan, err := s.handshake(nc, remote)
	s.unpend(ip)
	if err != nil {
		s.log.Info("component: connection ended before the handshake", "remote", remote, "err", err)
		if scan != nil {
			scan.Release()
		}
		return
	}
	defer scan.Release()
	defer s.unregister(c)
	if l, ok := s.in.(Linked); ok {
		l.ComponentUp(c.domain)
	}
	err = s.read(c, scan)
	c.q.Wait(time.Second)
	s.log.Info("component: session ended", "domain", c.domain, "remote", remote, "err", err)
}

// handshake reads the stream header and the handshake (XEP-0114 §3)
// and, when they are right, registers the session. Until then only this
// goroutine writes to nc.
func (s *Service) handshake(nc net.Conn, remote string) (*conn, *xmlscan.Scanner, error) {
	scan := xmlscan.New(nc, s.cfg.Limits)
	scan.SetMaxElementBytes(s.cfg.PreauthBytes)
	nc.SetDeadline(time.Now().Add(s.cfg.AuthTimeout))
	id := newID()
	var opened bool
	fail := func(cond stanza.StreamCondition, text string) {
		b := []byte{}
		if !opened { // RFC 6120 §4.9.1.1: our header comes first
			b = append(b, header("", id)...)
		}
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(stanza.AppendStreamError(b, cond, text))
	}
	tok, err := scan.Next()
	if err != nil {
		var se *xmlscan.Error
		if errors.As(err, &se) {
			fail(stanza.StreamCondition(se.Cond), se.Reason)
		}
		return nil, scan, fmt.Errorf("read stream header: %w", err)
	}
	if tok.Kind != xmlscan.KindHeader {
		fail(stanza.StreamNotWellFormed, "expected a stream header")
		return nil, scan, errors.New("no stream header")
	}
	domain := ""
	if to, ok := tok.Attr("to"); ok {
		domain, _ = stanza.AddrDomain(to)
	}
	secret, known := s.cfg.Domains[domain]
	from := ""
	if known {
		from = domain
	}
	if ns, _ := tok.Attr("xmlns"); string(ns) != NS {
		fail(stanza.StreamInvalidNamespace, "this port takes "+NS+" streams (XEP-0114)")
		return nil, scan, errors.New("wrong stream namespace")
	}
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := nc.Write([]byte(header(from, id))); err != nil {
		return nil, scan, fmt.Errorf("write stream header: %w", err)
	}
	opened = true
	if !known {
		s.log.Warn("component: refused a stream to an unknown domain; see \"components\" in the configuration", "domain", domain, "remote", remote)
		fail(stanza.StreamHostUnknown, "no component is configured for this domain")
		return nil, scan, fmt.Errorf("host unknown: %q", domain)
	}
	tok, err = scan.Next()
	if err != nil {
		var se *xmlscan.Error
		if errors.As(err, &se) {
			fail(stanza.StreamCondition(se.Cond), se.Reason)
		}
		return nil, scan, fmt.Errorf("read handshake: %w", err)
	}
	if tok.Kind != xmlscan.KindElement || string(tok.Local) != "handshake" || string(tok.Space) != NS {
		fail(stanza.StreamNotAuthorized, "send the handshake first (XEP-0114 §3)")
		return nil, scan, fmt.Errorf("%.60s before the handshake", tok.Raw)
	}
	sum := sha1.Sum([]byte(id + secret))
	want := hex.EncodeToString(sum[:])
	got, err := stanza.Unescape(tok.Inner())
	got = strings.ToLower(strings.TrimSpace(got))
	if err != nil || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.log.Warn("component: handshake refused (wrong secret)", "domain", domain, "remote", remote)
		fail(stanza.StreamNotAuthorized, "")
		return nil, scan, errors.New("handshake refused")
	}
	nc.SetDeadline(time.Time{})
	scan.SetMaxElementBytes(s.cfg.Limits.MaxElementBytes)
	c := &conn{domain: domain, remote: remote, since: time.Now()}
	c.q = outq.New(nc, s.cfg.QueueBytes, s.cfg.WriteTimeout, func() {
		s.log.Warn("component: the component does not read; closing (limits.outbound_queue_bytes)", "domain", domain, "remote", remote)
		c.q.CloseWith(stanza.AppendStreamError(nil, stanza.StreamPolicyViolation, "too much unread data"), true)
	})
	if !s.register(c) {
		c.q.CloseWith(stanza.AppendStreamError(nil, stanza.StreamSystemShutdown, "the server is shutting down"), false)
		c.q.Wait(time.Second)
		return nil, scan, errors.New("the server is shutting down")
	}
	s.log.Info("component: connected", "domain", domain, "remote", remote)
	return c, scan, nil
}

// register makes c its domain's session and answers the handshake; an
// older session ends with the conflict stream error. False when the
// service is closing.
func (s *Service) register(c *conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	// The handshake reply is queued under the lock: the component may
	// send as soon as it reads it, and nothing for it (Send) can be
	// queued ahead of it.
	c.q.Push([]byte("<handshake/>"))
	old := s.sessions[c.domain]
	s.sessions[c.domain] = c
	s.mu.Unlock()
	if old != nil {
		s.log.Info("component: a new session replaces the old one", "domain", c.domain, "old", old.remote, "new", c.remote)
		old.q.CloseWith(stanza.AppendStreamError(nil, stanza.StreamConflict, "replaced by a new connection"), false)
	}
	return true
}

// unregister removes c unless a newer session replaced it already.
func (s *Service) unregister(c *conn) {
	s.mu.Lock()
	if s.sessions[c.domain] == c {
		delete(s.sessions, c.domain)
	}
	s.mu.Unlock()
}

// read passes the component's stanzas in until the stream ends.
func (s *Service) read(c *conn, scan *xmlscan.Scanner) error {
	for {
		tok, err := scan.Next()
		if err != nil {
			var se *xmlscan.Error
			if errors.As(err, &se) {
				closeWith(c.q, stanza.StreamCondition(se.Cond), se.Reason)
			}
			return fmt.Errorf("read: %w", err)
		}
		switch tok.Kind {
		case xmlscan.KindClose:
			c.q.CloseWith([]byte("</stream:stream>"), false)
			return errors.New("the component closed the stream")
		case xmlscan.KindElement:
		default:
			continue
		}
		st, ok := stanza.Parse(&tok, NS)
		if !ok {
			closeWith(c.q, stanza.StreamUnsupportedStanzaType, "")
			return fmt.Errorf("unsupported element %.60s", tok.Raw)
		}
		if cond, why := c.check(&st); cond != "" {
			s.log.Warn("component: closed a session", "domain", c.domain, "remote", c.remote, "condition", cond, "reason", why)
			closeWith(c.q, cond, why)
			return fmt.Errorf("%s: %s", cond, why)
		}
		s.in.FromComponent(&st)
	}
}

// check applies the addressing rules to a stanza from the component
// (XEP-0114 §3, RFC 6120 §4.9.3): its from must be a JID at the
// component's own domain, compared prepared (RFC 7622 §3.2) as the router
// acts on it (invalid-from, §4.9.3.9); from and to must be present and to
// a JID (improper-addressing, §4.9.3.12).
func (c *conn) check(st *stanza.Stanza) (stanza.StreamCondition, string) {
	if len(st.From) == 0 || len(st.To) == 0 {
		return stanza.StreamImproperAddressing, "a component's stanza needs both to and from"
	}
	if d, ok := stanza.AddrDomain(st.From); !ok || d != c.domain {
		return stanza.StreamInvalidFrom, "a component may send only from JIDs at " + c.domain
	}
	if _, err := stanza.ParseAddr(st.To); err != nil {
		return stanza.StreamImproperAddressing, "the to address is not a valid JID"
	}
	return "", ""
}

// Close ends every component session with system-shutdown (and drops
// connections still authenticating), stops accepting, and waits briefly
// for the sessions to finish.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	sessions := make([]*conn, 0, len(s.sessions))
	for _, c := range s.sessions {
		sessions = append(sessions, c)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range sessions {
		c.q.CloseWith(stanza.AppendStreamError(nil, stanza.StreamSystemShutdown, "the server is shutting down"), false)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(500 * time.Millisecond):
	}
	s.mu.Lock()
	for nc := range s.open {
		nc.Close()
	}
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.log.Warn("component: sessions still open at shutdown")
	}
}

// closeWith ends the stream with a stream error, after what is queued,
// and waits (briefly) until it is written.
func closeWith(q *outq.Queue, cond stanza.StreamCondition, text string) {
	q.CloseWith(stanza.AppendStreamError(nil, cond, text), false)
	q.Wait(5 * time.Second)
}

// header is the server's stream header on a component stream (XEP-0114
// §3): from the component's domain when known, with a fresh id.
func header(from, id string) string {
	h := "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='" + NS + "' id='" + id + "'"
	if from != "" {
		h += " from='" + string(stanza.AppendEscaped(nil, from)) + "'"
	}
	return h + ">"
}

// newID is a random stream id: what the handshake hashes, so it must not
// repeat.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
