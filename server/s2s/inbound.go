package s2s

import (
	"crypto/hmac"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"time"

	"roost/server/jid"
	"roost/server/stanza"
	"roost/server/xmlscan"
)

// authTimeout bounds how long an inbound stream may take to authenticate.
const authTimeout = 60 * time.Second

// Serve accepts inbound server streams on ln until it is closed.
func (s *Service) Serve(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("s2s: accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !s.track(nc) {
			nc.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(nc)
			s.serveInbound(nc)
		}()
	}
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
		tok, err := in.next()
		if err != nil {
			var se *xmlscan.Error
			if errors.As(err, &se) {
				in.fail(stanza.StreamCondition(se.Cond), se.Reason)
			} else {
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
	in.from = from
	in.write(header(in.svc.cfg.Domain, from, in.id))
	if ns, _ := tok.Attr("xmlns"); string(ns) != NSServer {
		in.fail(stanza.StreamInvalidNamespace, "this port takes jabber:server streams")
		return errors.New("wrong namespace")
	}
	if to := attr(&tok, "to"); to != in.svc.cfg.Domain {
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
			if b, err := base64.StdEncoding.DecodeString(authzid); err != nil || string(b) != in.from {
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
		valid := hmac.Equal([]byte(string(tok.Inner())), []byte(s.key(from, s.cfg.Domain, id)))
		typ := "invalid"
		if valid {
			typ = "valid"
		}
		return in.write("<db:verify from='"+escape(s.cfg.Domain)+"' to='"+escape(from)+"' id='"+escape(id)+"' type='"+typ+"'/>") == nil
	case string(tok.Space) == NSDialback && string(tok.Local) == "result":
		from, to, key := attr(tok, "from"), attr(tok, "to"), string(tok.Inner())
		if to != s.cfg.Domain {
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
func (in *inbound) check(st *stanza.Stanza) (stanza.StreamCondition, string) {
	if st.To == nil || st.From == nil {
		return stanza.StreamImproperAddressing, "a server stanza needs both to and from"
	}
	to, err := stanza.Unescape(st.To)
	if err != nil || jid.DomainOf(to) != in.svc.cfg.Domain {
		return stanza.StreamHostUnknown, "this server is " + in.svc.cfg.Domain
	}
	from, err := stanza.Unescape(st.From)
	if err != nil || !in.authed[jid.DomainOf(from)] {
		return stanza.StreamInvalidFrom, "from a domain not authenticated on this stream"
	}
	return "", ""
}
