package s2s

import (
	"crypto/hmac"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"roost/wire/accept"
	"strings"
	"time"

	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// maxKeyBytes bounds a dialback key (XEP-0185 keys are a hex HMAC, 64
// bytes with SHA-256).
const maxKeyBytes = 256

// authTimeout bounds how long an inbound stream may take to authenticate.
const authTimeout = 60 * time.Second

// Serve accepts inbound server streams on ln until it is closed.
func (s *Service) Serve(ln net.Listener) {
	accept.Loop(ln, s.log, "s2s", func(nc net.Conn) bool {
		if !s.track(nc) {
			nc.Close()
			return false
		}
		if !s.admit() {
			s.refuse(nc)
			return true
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(nc)
			defer s.leave()
			s.serveInbound(nc)
		}()
		return true
	})
}

// admit counts an inbound connection in, unless Config.MaxInbound are
// already being served.
func (s *Service) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inbound >= s.cfg.MaxInbound {
		return false
	}
	s.inbound++
	return true
}

func (s *Service) leave() {
	s.mu.Lock()
	s.inbound--
	s.mu.Unlock()
}

// refuse answers a connection past Config.MaxInbound with our stream
// header and the resource-constraint stream error (RFC 6120 §4.9.3.17;
// §4.9.1.1: an error before the peer's header still opens our stream
// first) and closes it. It does not wait for the peer's header, and
// writes with a short deadline, so that a flood cannot stall accepting.
func (s *Service) refuse(nc net.Conn) {
	defer s.untrack(nc)
	defer nc.Close()
	s.log.Warn("s2s: refused an inbound connection; see s2s.max_inbound", "remote", nc.RemoteAddr().String(), "max_inbound", s.cfg.MaxInbound)
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	b := append([]byte(header(s.cfg.Domain, "", newID())), stanza.AppendStreamError(nil, stanza.StreamResourceConstraint, "too many server connections")...)
	nc.Write(append(b, "</stream:stream>"...))
}

// inbound is one stream a remote server opened to us.
type inbound struct {
	*stream
	svc    *Service
	id     string
	from   string // the peer's claimed domain, from its stream header
	secure bool
	certOK bool            // its TLS certificate is valid for from
	authed map[string]bool // remote domains authenticated on this stream (reader goroutine only)
}

func (s *Service) serveInbound(nc net.Conn) {
	in := &inbound{stream: &stream{nc: nc, scan: xmlscan.New(nc, s.cfg.Limits)}, svc: s, authed: map[string]bool{}}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("s2s: internal error, closing stream", "panic", r)
			in.fail(stanza.StreamInternalServerError, "")
		}
		nc.Close()
	}()
	nc.SetReadDeadline(time.Now().Add(authTimeout))
	if err := in.open(); err != nil {
		s.log.Info("s2s: inbound stream ended", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	for {
		if len(in.authed) > 0 {
			// Authenticated: a stream that carries nothing for
			// IdleTimeout is closed (the peer opens a new one when it
			// needs it), so a peer that vanished does not hold a place.
			in.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		tok, err := in.next()
		if err != nil {
			var se *xmlscan.Error
			var ne net.Error
			switch {
			case errors.As(err, &se):
				in.fail(stanza.StreamCondition(se.Cond), se.Reason)
			case errors.As(err, &ne) && ne.Timeout() && len(in.authed) > 0:
				s.log.Info("s2s: closing an idle inbound stream", "remote", nc.RemoteAddr().String(), "idle_timeout", s.cfg.IdleTimeout)
				in.write("</stream:stream>")
			default:
				in.write("</stream:stream>")
			}
			return
		}
		if !in.element(&tok) {
			return
		}
	}
}

// open reads the peer's header and answers with ours and the features.
func (in *inbound) open() error {
	tok, err := in.scan.Next()
	if err != nil {
		return err
	}
	if tok.Kind != xmlscan.KindHeader {
		in.fail(stanza.StreamNotWellFormed, "expected a stream header")
		return errors.New("no stream header")
	}
	in.id = newID()
	from := attr(&tok, "from")
	// The peer's claimed domain, prepared: what SASL EXTERNAL
	// authenticates and its stanzas' from is compared with.
	in.from = domainAttr(&tok, "from")
	in.write(header(in.svc.cfg.Domain, from, in.id))
	if ns, _ := tok.Attr("xmlns"); string(ns) != NSServer {
		in.fail(stanza.StreamInvalidNamespace, "this port takes jabber:server streams")
		return errors.New("wrong namespace")
	}
	if to := domainAttr(&tok, "to"); to != in.svc.own {
		in.fail(stanza.StreamHostUnknown, "this server is "+in.svc.cfg.Domain)
		return errors.New("host unknown: " + to)
	}
	f := "<stream:features>"
	if !in.secure && in.svc.cfg.TLS != nil {
		f += "<starttls xmlns='" + nsTLS + "'/>"
	}
	if in.certOK && !in.authed[from] {
		f += "<mechanisms xmlns='" + nsSASL + "'><mechanism>EXTERNAL</mechanism></mechanisms>"
	}
	f += "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>"
	return in.write(f)
}

// element handles one top-level element; false ends the stream.
func (in *inbound) element(tok *xmlscan.Token) bool {
	s := in.svc
	switch {
	case string(tok.Local) == "starttls" && string(tok.Space) == nsTLS:
		if in.secure || s.cfg.TLS == nil {
			in.fail(stanza.StreamPolicyViolation, "TLS is already on or not offered")
			return false
		}
		in.write("<proceed xmlns='" + nsTLS + "'/>")
		tc := tls.Server(in.nc, s.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			s.log.Info("s2s: inbound TLS handshake failed", "err", err)
			return false
		}
		in.nc, in.secure = tc, true
		in.scan.Reset(tc)
		// The header before TLS named the peer; the restarted one must
		// name the same domain for EXTERNAL to hold (checked in auth).
		in.certOK = in.from != "" && s.certFor(tc.ConnectionState(), in.from)
		claimed := in.from
		if err := in.open(); err != nil {
			return false
		}
		in.certOK = in.certOK && in.from == claimed
		return true
	case string(tok.Local) == "auth" && string(tok.Space) == nsSASL:
		authzid := string(tok.Inner())
		if authzid != "" && authzid != "=" {
			if b, err := base64.StdEncoding.DecodeString(authzid); err != nil || prepareDomain(string(b)) != in.from {
				in.write("<failure xmlns='" + nsSASL + "'><invalid-authzid/></failure>")
				return true
			}
		}
		if attr(tok, "mechanism") != "EXTERNAL" || !in.certOK {
			in.write("<failure xmlns='" + nsSASL + "'><not-authorized/></failure>")
			return true
		}
		in.authed[in.from] = true
		in.nc.SetReadDeadline(time.Time{})
		s.log.Info("s2s: inbound stream authenticated", "domain", in.from, "by", "SASL EXTERNAL")
		in.write("<success xmlns='" + nsSASL + "'/>")
		in.scan.Reset(in.nc)
		return in.open() == nil
	case string(tok.Space) == NSDialback && string(tok.Local) == "verify":
		// The server we opened a stream to checks the key we gave it.
		from, id := attr(tok, "from"), attr(tok, "id")
		valid := hmac.Equal(tok.Inner(), []byte(s.key(prepareDomain(from), s.cfg.Domain, id)))
		typ := "invalid"
		if valid {
			typ = "valid"
		}
		return in.write("<db:verify from='"+escape(s.cfg.Domain)+"' to='"+escape(from)+"' id='"+escape(id)+"' type='"+typ+"'/>") == nil
	case string(tok.Space) == NSDialback && string(tok.Local) == "result":
		from, key := attr(tok, "from"), string(tok.Inner())
		if len(key) == 0 || len(key) > maxKeyBytes || strings.IndexByte(key, '<') >= 0 {
			// A key is text (XEP-0185 makes it hex); markup in it would
			// be carried into our db:verify to the authoritative server.
			in.fail(stanza.StreamNotAuthorized, "a dialback key is text")
			return false
		}
		if domainAttr(tok, "to") != s.own {
			in.fail(stanza.StreamHostUnknown, "this server is "+s.cfg.Domain)
			return false
		}
		if !validDomain(from) {
			in.fail(stanza.StreamInvalidFrom, "not a domain")
			return false
		}
		ok, err := s.verify(from, in.id, key)
		if err != nil {
			s.log.Warn("s2s: could not verify a dialback key", "domain", from, "err", err)
		}
		if !ok {
			in.write("<db:result from='" + escape(s.cfg.Domain) + "' to='" + escape(from) + "' type='invalid'/>")
			in.fail(stanza.StreamNotAuthorized, "dialback key not verified for "+from)
			return false
		}
		in.authed[from] = true
		in.nc.SetReadDeadline(time.Time{})
		s.log.Info("s2s: inbound stream authenticated", "domain", from, "tls", in.secure)
		return in.write("<db:result from='"+escape(s.cfg.Domain)+"' to='"+escape(from)+"' type='valid'/>") == nil
	}
	st, ok := stanza.Parse(tok, NSServer)
	if !ok {
		in.fail(stanza.StreamUnsupportedStanzaType, "")
		return false
	}
	if len(in.authed) == 0 {
		in.fail(stanza.StreamNotAuthorized, "authenticate with dialback first")
		return false
	}
	if cond, why := in.check(&st); cond != "" {
		in.fail(cond, why)
		s.log.Warn("s2s: closed an inbound stream", "condition", cond, "reason", why)
		return false
	}
	s.in.FromRemote(&st)
	return true
}

// check applies RFC 6120 §8.1.1.2 and §8.1.2.1 to a stanza from a peer:
// it must come from a domain authenticated on this stream and go to ours.
// Domains are compared prepared (RFC 7622 §3.2), the form the router acts
// on; a missing or malformed address is improper-addressing (§4.9.3.12).
func (in *inbound) check(st *stanza.Stanza) (stanza.StreamCondition, string) {
	to, from, problem := stanza.PeerDomains(st)
	if problem != "" {
		return stanza.StreamImproperAddressing, problem
	}
	if to != in.svc.own {
		return stanza.StreamHostUnknown, "this server is " + in.svc.own
	}
	if !in.authed[from] {
		return stanza.StreamInvalidFrom, "from a domain not authenticated on this stream"
	}
	return "", ""
}
