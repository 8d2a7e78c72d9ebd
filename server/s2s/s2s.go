// Package s2s is server-to-server federation (RFC 6120 jabber:server
// streams) for gateways with a reachable address: outbound streams to
// remote domains and an inbound listener, both with STARTTLS, and peers
// authenticated with Server Dialback (XEP-0220, keys per XEP-0185).
// Remote domains are found through static routes (for LANs without DNS),
// then SRV (_xmpp-server._tcp), then the domain itself on port 5269.
//
// A remote server may only send from a domain it has authenticated on
// the stream (invalid-from otherwise) and only to ours (host-unknown).
package s2s

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Namespaces of a server stream.
const (
	NSServer   = stanza.NSServer
	NSDialback = "jabber:server:dialback"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsStream   = "http://etherx.jabber.org/streams"
)

// Config configures federation.
type Config struct {
	Domain string
	Secret []byte            // dialback keys are made from it; keep it stable across restarts
	Routes map[string]string // remote domain -> host:port, before any DNS
	TLS    *tls.Config       // our certificate, for inbound STARTTLS and to present outbound
	Roots  *x509.CertPool    // trusted for SASL EXTERNAL; nil: the system's
	Limits xmlscan.Limits
	// QueueStanzas bounds what waits for one remote domain's stream;
	// QueueBytes what waits to be written on it once it is up.
	QueueStanzas int
	QueueBytes   int
	DialTimeout  time.Duration
	// MaxInbound bounds inbound connections (more are refused with the
	// resource-constraint stream error); MaxOutbound the remote domains
	// with an outbound stream open or being opened.
	MaxInbound, MaxOutbound int
	// IdleTimeout closes a stream that carried nothing for this long:
	// outbound ones are opened again on demand, inbound ones by the peer.
	IdleTimeout time.Duration
	// LookupSRV finds SRV records; nil is net.DefaultResolver.LookupSRV.
	// Tests set it to answer without the network.
	LookupSRV func(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

// Inbound takes stanzas arriving from remote servers (checked) and
// stanzas that could not be delivered out.
type Inbound interface {
	FromRemote(st *stanza.Stanza)
	// Undeliverable returns a stanza that could not be sent to its
	// domain, with the condition to answer its sender with.
	Undeliverable(b []byte, cond stanza.Condition, text string)
}

// Service holds the outbound streams and serves inbound ones.
type Service struct {
	cfg Config
	own string // cfg.Domain prepared: what peers' to is compared with
	in  Inbound
	log *slog.Logger

	routes atomic.Pointer[map[string]string] // set by SetRoutes; nil: cfg.Routes

	mu      sync.Mutex
	out     map[string]*outbound // by remote domain
	conns   map[net.Conn]struct{}
	inbound int // inbound connections being served
	closing bool
	wg      sync.WaitGroup // inbound streams and outbound connects
}

// track registers a connection so that Close can end it; false when
// the service is closing.
func (s *Service) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Service) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// Close ends every server stream and waits until none is handling a
// stanza, so that the store can be closed after it.
func (s *Service) Close() {
	s.mu.Lock()
	s.closing = true
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// New prepares federation; Serve accepts inbound streams.
func New(cfg Config, in Inbound, log *slog.Logger) *Service {
	if cfg.QueueStanzas <= 0 {
		cfg.QueueStanzas = 1000
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 4 << 20
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.MaxInbound <= 0 {
		cfg.MaxInbound = 128
	}
	if cfg.MaxOutbound <= 0 {
		cfg.MaxOutbound = 128
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	own := prepareDomain(cfg.Domain)
	if own == "" {
		own = cfg.Domain
	}
	return &Service{cfg: cfg, own: own, in: in, log: log, out: make(map[string]*outbound), conns: make(map[net.Conn]struct{})}
}

// key is the dialback key for a stream (XEP-0185): only we make and
// check our keys, so any keyed hash of the three names and our secret
// does.
func (s *Service) key(receiving, originating, streamID string) string {
	m := hmac.New(sha256.New, s.cfg.Secret)
	m.Write([]byte(receiving + " " + originating + " " + streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// resolve finds where a domain's server listens: a static route, the
// targets of its _xmpp-server._tcp SRV records in the resolver's order
// (RFC 6120 §3.2.1), then the domain itself on 5269 (§3.2.2). A single
// record with the target "." says the service is decidedly not available
// (RFC 2782): nothing is tried then.
func (s *Service) resolve(ctx context.Context, domain string) []string {
	routes := s.cfg.Routes
	if r := s.routes.Load(); r != nil {
		routes = *r
	}
	if a, ok := routes[domain]; ok {
		return []string{a}
	}
	lookup := s.cfg.LookupSRV
	if lookup == nil {
		lookup = net.DefaultResolver.LookupSRV
	}
	var addrs []string
	if _, srvs, err := lookup(ctx, "xmpp-server", "tcp", domain); err == nil {
		if len(srvs) == 1 && srvs[0].Target == "." {
			return nil
		}
		for _, r := range srvs {
			if r.Target != "." {
				addrs = append(addrs, net.JoinHostPort(trimDot(r.Target), strconv.Itoa(int(r.Port))))
			}
		}
	}
	return append(addrs, net.JoinHostPort(domain, "5269"))
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

// Send queues a stanza for a remote domain, opening and authenticating a
// stream to it when there is none. Past Config.MaxOutbound domains with
// a stream the stanza is bounced with resource-constraint.
func (s *Service) Send(domain string, b []byte) {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return
		}
		o := s.out[domain]
		if o == nil {
			if len(s.out) >= s.cfg.MaxOutbound {
				s.mu.Unlock()
				s.log.Warn("s2s: too many remote domains at once; see s2s.max_outbound", "domain", domain, "max_outbound", s.cfg.MaxOutbound)
				s.undeliverable(b, stanza.ResourceConstraint, "this server has too many remote domains open; try again later")
				return
			}
			o = &outbound{svc: s, domain: domain}
			s.out[domain] = o
		}
		s.mu.Unlock()
		if o.send(b) {
			return
		}
	}
}

// drop removes o from the service's map when cond, called with both
// locks held, is true; o then refuses new stanzas so that they open a
// new entry. It reports whether o was dropped.
func (s *Service) drop(o *outbound, cond func() bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gone || !cond() {
		return false
	}
	o.gone = true
	if s.out[o.domain] == o {
		delete(s.out, o.domain)
	}
	return true
}

// undeliverable hands a stanza back to Inbound, when there is one.
func (s *Service) undeliverable(b []byte, cond stanza.Condition, text string) {
	if s.in != nil {
		s.in.Undeliverable(b, cond, text)
	}
}

// Status lists the remote domains and their streams' state.
func (s *Service) Status() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lines []string
	for d, o := range s.out {
		o.mu.Lock()
		lines = append(lines, fmt.Sprintf("s2s to %s: %s", d, o.state))
		o.mu.Unlock()
	}
	return lines
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// stream is what both directions share: the connection and its
// scanner. Until an outbound stream is authenticated, and on inbound
// streams always, only the goroutine reading it writes to it.
type stream struct {
	nc   net.Conn
	scan *xmlscan.Scanner
}

func (st *stream) write(s string) error {
	st.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := st.nc.Write([]byte(s))
	return err
}

// next reads the next top-level element; the peer's closing tag is an error.
func (st *stream) next() (xmlscan.Token, error) {
	tok, err := st.scan.Next()
	if err == nil && tok.Kind == xmlscan.KindClose {
		err = errors.New("the peer closed the stream")
	}
	return tok, err
}

func (st *stream) fail(cond stanza.StreamCondition, text string) {
	st.write(string(stanza.AppendStreamError(nil, cond, text)))
	st.nc.Close()
}

func header(from, to, id string) string {
	h := "<?xml version='1.0'?><stream:stream xmlns='" + NSServer + "' xmlns:stream='" + nsStream + "' xmlns:db='" + NSDialback + "' version='1.0'"
	if from != "" {
		h += " from='" + escape(from) + "'"
	}
	if to != "" {
		h += " to='" + escape(to) + "'"
	}
	if id != "" {
		h += " id='" + escape(id) + "'"
	}
	return h + ">"
}

func escape(s string) string { return string(stanza.AppendEscaped(nil, s)) }

func attr(tok *xmlscan.Token, name string) string {
	v, ok := tok.Attr(name)
	if !ok {
		return ""
	}
	s, err := stanza.Unescape(v)
	if err != nil {
		return ""
	}
	return s
}

// prepareDomain is s prepared when it is a domain JID (no localpart or
// resourcepart), "" otherwise.
func prepareDomain(s string) string {
	j, err := jid.Parse(s)
	if err != nil || j.Local() != "" || j.Resource() != "" {
		return ""
	}
	return j.Domain()
}

// domainAttr is the prepared domain JID in a header or dialback
// attribute, "" when it is absent or not a domain JID.
func domainAttr(tok *xmlscan.Token, name string) string {
	return prepareDomain(attr(tok, name))
}

// validDomain reports whether s is a domain JID.
func validDomain(s string) bool {
	j, err := jid.Parse(s)
	return err == nil && j.Local() == "" && j.Resource() == "" && j.Domain() == s
}

// SetRoutes replaces s2s.routes (SIGHUP reload) for the connections
// opened after it.
func (s *Service) SetRoutes(routes map[string]string) { s.routes.Store(&routes) }
