package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"roost/server/im"
	"roost/server/s2s"
	"roost/server/uplink"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// startFederation starts s2s when listen.s2s is set.
func (s *Server) startFederation(tlsCfg *tls.Config) error {
	if s.cfg.Listen.S2S == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Listen.S2S)
	if err != nil {
		return fmt.Errorf("listen on %s (s2s): %w", s.cfg.Listen.S2S, err)
	}
	s.listeners = append(s.listeners, ln)
	tlsCfg = tlsCfg.Clone()
	tlsCfg.NextProtos = []string{"xmpp-server"} // what servers ask for in ALPN (XEP-0368)
	tlsCfg.ClientAuth = tls.RequestClientCert   // a peer's certificate allows SASL EXTERNAL
	var roots *x509.CertPool
	if f := s.cfg.S2S.CAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("s2s.ca_file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("s2s.ca_file %s: no PEM certificates in it", f)
		}
	}
	s.s2s = s2s.New(s2s.Config{
		Domain: s.cfg.Domain, Secret: s.store.Secret(), Routes: s.cfg.S2S.Routes, TLS: tlsCfg, Roots: roots,
		Limits:     xmlscan.Limits{MaxElementBytes: s.cfg.Limits.StanzaBytes, MaxDepth: s.cfg.Limits.MaxDepth, Budget: s.env.Limits.Budget},
		MaxInbound: s.cfg.S2S.MaxInbound, MaxOutbound: s.cfg.S2S.MaxOutbound,
		IdleTimeout: s.cfg.S2S.IdleTimeout.D(), QueueBytes: s.cfg.S2S.QueueBytes,
	}, s, s.log)
	s.im.Remote = s.sendRemote
	s.log.Info("listening", "addr", ln.Addr().String(), "s2s", true)
	go s.s2s.Serve(ln)
	return nil
}

// startUplink connects the component uplink when one is configured.
func (s *Server) startUplink() {
	u := s.cfg.Uplink.Component
	if u.Address == "" {
		return
	}
	s.uplink = uplink.New(uplink.Config{
		Address: u.Address, Domain: s.cfg.Domain, Secret: u.Secret, QueueMessages: u.QueueMessages, QueueBytes: u.QueueBytes,
		Limits: xmlscan.Limits{MaxElementBytes: s.cfg.Limits.StanzaBytes, MaxDepth: s.cfg.Limits.MaxDepth, Budget: s.env.Limits.Budget},
	}, s, s.log)
	s.im.Remote = s.sendRemote
	ctx, cancel := context.WithCancel(context.Background())
	s.stopUplink = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.uplink.Run(ctx) }()
}

// toRemote sends a local session's stanza to another domain (RFC 6120
// §10.4) over the uplink; without one it is refused.
func (s *Server) toRemote(sess im.Session, st *stanza.Stanza, stamped []byte, t target) {
	if s.uplink == nil && s.s2s == nil {
		s.bounce(sess, st, stanza.RemoteServerNotFound, "this server is not connected to other domains (see uplink and listen.s2s in the configuration)")
		return
	}
	if st.Kind == stanza.Presence {
		switch string(st.Type) {
		case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
			if len(t.resource) == 0 {
				s.im.Subscription(sess, st, t.bare)
			}
			return
		case "probe":
			return // the server probes on its users' behalf
		case "", "unavailable":
			addr := string(t.bare)
			if len(t.resource) > 0 {
				addr += "/" + string(t.resource)
			}
			if j, err := jid.Parse(addr); err == nil && !s.im.AddDirected(sess, j, len(st.Type) == 0) {
				s.bounce(sess, st, stanza.ResourceConstraint, directedFullText)
				return
			}
		}
	}
	if s.s2s != nil {
		s.s2s.Send(string(t.domain), stamped)
		return
	}
	switch err := s.uplink.Send(st.Kind, stamped); {
	case errors.Is(err, uplink.ErrDown):
		s.bounce(sess, st, stanza.RemoteServerTimeout, "the uplink to other domains is down; try again later")
	case errors.Is(err, uplink.ErrQueueFull):
		s.bounce(sess, st, stanza.RemoteServerTimeout, "the uplink to other domains is down and its queue is full")
	}
}

// remoteSession stands for a sender on another domain while Route
// handles its stanza: whatever Route answers it (errors, iq results,
// presence) goes back out over the uplink.
type remoteSession struct {
	jid  jid.JID
	link *Server
}

func (r *remoteSession) JID() jid.JID                       { return r.jid }
func (r *remoteSession) Available() bool                    { return false }
func (r *remoteSession) Priority() int                      { return 0 }
func (r *remoteSession) Deliver(b []byte) bool              { r.link.sendRemote(r.jid.String(), b); return true }
func (r *remoteSession) SetPresence(bool, int, []byte) bool { return false }
func (r *remoteSession) Presence() []byte                   { return nil }
func (r *remoteSession) AddDirected(jid.JID, bool)          {}
func (r *remoteSession) TakeDirected() []jid.JID            { return nil }
func (r *remoteSession) RequestedRoster()                   {}
func (r *remoteSession) Interested() bool                   { return false }

// sendRemote is im's way out: b for the remote JID to, given a to
// attribute when it has none (a broadcast copy).
func (s *Server) sendRemote(to string, b []byte) {
	if !hasTo(b) {
		b = insertTo(b, to)
	}
	if s.s2s != nil {
		s.s2s.Send(jid.DomainOf(to), b)
		return
	}
	if s.uplink == nil {
		return
	}
	s.uplink.Send(kindOf(b), b)
}

// FromUplink routes a stanza the upstream sent us (uplink.Inbound).
func (s *Server) FromUplink(st *stanza.Stanza) { s.fromRemote(st) }

// FromRemote routes a stanza a federated server sent us (s2s.Inbound).
func (s *Server) FromRemote(st *stanza.Stanza) { s.fromRemote(st) }

// Undeliverable answers the local sender of a stanza that could not be
// sent to its domain (s2s.Inbound).
func (s *Server) Undeliverable(b []byte, cond stanza.Condition, text string) {
	get := func(name string) string {
		if a, e, ok := findAttr(b, name); ok {
			v := b[a:e]
			if i := bytes.IndexAny(v, "'\""); i >= 0 && len(v) > i+1 {
				if u, err := stanza.Unescape(v[i+1 : len(v)-1]); err == nil {
					return u
				}
			}
		}
		return ""
	}
	kind := kindOf(b)
	typ := get("type")
	if typ == "error" || (kind == stanza.IQ && typ == "result") || kind == stanza.Presence {
		return // never answer an error or result; presence to a lost domain just goes
	}
	from, to := get("from"), get("to")
	j, err := jid.Parse(from)
	if err != nil || j.Domain() != s.cfg.Domain {
		return
	}
	var id []byte // AppendErrorFor takes the id as scanned: escape it again
	if _, _, ok := findAttr(b, "id"); ok {
		id = stanza.AppendEscaped([]byte{}, get("id"))
	}
	reply := stanza.AppendErrorFor(nil, kind, id, from, to, cond, cond.DefaultType(), text)
	if r := s.router.Session([]byte(j.Bare().String()), []byte(j.Resource())); r != nil {
		r.Deliver(reply)
	}
}

// fromRemote routes a stanza from another domain. The remote sender is
// represented by a session whose Deliver goes back out.
//
// The uplink and s2s streams already end a stream that sends a malformed
// address (improper-addressing), speaks for our domain or one it did not
// authenticate (invalid-from) or writes to another domain (host-unknown),
// RFC 6120 §4.9.3. This is the second line of that rule, on the prepared
// addresses the router acts on (RFC 7622 §3.2): a stanza whose from is our
// own domain in any spelling (alice@LOCALHOST/x, alice@localhost.) would
// otherwise be taken for alice's own, and one whose to is not ours would
// be relayed. Such a stanza is dropped and logged, never routed.
func (s *Server) fromRemote(st *stanza.Stanza) {
	from, to, ok := remoteAddrs(st)
	if !ok || to.Domain() != s.cfg.Domain || from.Domain() == s.cfg.Domain {
		s.log.Warn("remote: dropped a stanza with a malformed or spoofed address", "from", string(st.From), "to", string(st.To))
		return
	}
	raw := forwardFromRemote(st, from)
	s.Route(&remoteSession{jid: from, link: s}, st, raw)
}

// remoteAddrs prepares a remote stanza's from and to; ok is false when
// either is missing or not a JID.
func remoteAddrs(st *stanza.Stanza) (from, to jid.JID, ok bool) {
	from, err := stanza.ParseAddr(st.From)
	if err != nil {
		return from, to, false
	}
	to, err = stanza.ParseAddr(st.To)
	return from, to, err == nil
}

// forwardFromRemote is a remote stanza as a client stream may carry it
// (RFC 6120 §8.1.2.1): from in prepared form, the namespace prefixes it
// uses from the peer's stream header re-declared (stanza.AppendForward),
// and an explicit server or component namespace declaration dropped, so
// that the stanza inherits jabber:client from the client's stream.
func forwardFromRemote(st *stanza.Stanza, from jid.JID) []byte {
	out := stanza.AppendForward(make([]byte, 0, len(st.Tok.Raw)+64), st, from.String(), "")
	if a, e, ok := findAttr(out, "xmlns"); ok {
		switch v := out[a:e]; {
		case isNSAttr(v, uplink.NS), isNSAttr(v, s2s.NSServer), isNSAttr(v, "jabber:client"):
			for a > 0 && (out[a-1] == ' ' || out[a-1] == '\t' || out[a-1] == '\n' || out[a-1] == '\r') {
				a--
			}
			out = append(out[:a], out[e:]...)
		}
	}
	return out
}

// isNSAttr reports whether attr, a whole xmlns='…' text, declares ns.
func isNSAttr(attr []byte, ns string) bool {
	i := bytes.IndexAny(attr, "'\"")
	return i >= 0 && len(attr) >= i+2 && string(attr[i+1:len(attr)-1]) == ns
}

// LinkUp re-sends presence to remote contacts (uplink.Inbound).
func (s *Server) LinkUp() { s.im.Resend() }

// RemoteStatus describes the uplink or the federated streams.
func (s *Server) RemoteStatus() []string {
	switch {
	case s.uplink != nil:
		return []string{s.uplink.Status()}
	case s.s2s != nil:
		return append([]string{"s2s listening on " + s.cfg.Listen.S2S}, s.s2s.Status()...)
	}
	return nil
}

// hasTo reports whether a stanza's start tag has a to attribute.
func hasTo(b []byte) bool {
	_, _, ok := findAttr(b, "to")
	return ok
}

// insertTo returns b with to='to' added after the element name.
func insertTo(b []byte, to string) []byte {
	name := 1
	for name < len(b) && b[name] != ' ' && b[name] != '/' && b[name] != '>' && b[name] != '\t' && b[name] != '\n' {
		name++
	}
	out := make([]byte, 0, len(b)+len(to)+8)
	out = append(out, b[:name]...)
	out = append(out, " to='"...)
	out = stanza.AppendEscaped(out, to)
	out = append(out, '\'')
	return append(out, b[name:]...)
}

// findAttr finds attribute name in the start tag of b: the offsets of
// its whole name='value' text.
func findAttr(b []byte, name string) (start, end int, ok bool) {
	i := 1
	for i < len(b) && b[i] != ' ' && b[i] != '>' && b[i] != '/' && b[i] != '\t' && b[i] != '\n' {
		i++
	}
	for i < len(b) {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
		if i >= len(b) || b[i] == '>' || b[i] == '/' {
			return 0, 0, false
		}
		ns := i
		for i < len(b) && b[i] != '=' {
			i++
		}
		n := bytes.TrimSpace(b[ns:i])
		i++
		for i < len(b) && b[i] != '\'' && b[i] != '"' {
			i++
		}
		if i >= len(b) {
			return 0, 0, false
		}
		q := b[i]
		j := bytes.IndexByte(b[i+1:], q)
		if j < 0 {
			return 0, 0, false
		}
		i += j + 2
		if string(n) == name {
			return ns, i, true
		}
	}
	return 0, 0, false
}

// kindOf is the kind of a stanza the server itself serialised.
func kindOf(b []byte) stanza.Kind {
	switch {
	case bytes.HasPrefix(b, []byte("<message")):
		return stanza.Message
	case bytes.HasPrefix(b, []byte("<iq")):
		return stanza.IQ
	}
	return stanza.Presence
}
