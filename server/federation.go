package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"roost/server/s2s"
	"roost/server/uplink"
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
	}, s.route, s.log)
	s.setRemote(s2sOut{s.s2s})
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
	}, s.route, s.log)
	s.setRemote(uplinkOut{s.uplink})
	ctx, cancel := context.WithCancel(context.Background())
	s.stopUplink = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.uplink.Run(ctx) }()
}

// RemoteStatus describes the uplink or the federated streams.
func (s *Server) RemoteStatus() []string {
	switch {
	case s.uplink != nil:
		return append([]string{s.uplink.Status()}, s.ComponentStatus()...)
	case s.s2s != nil:
		return append(append([]string{"s2s listening on " + s.cfg.Listen.S2S}, s.s2s.Status()...), s.ComponentStatus()...)
	}
	return s.ComponentStatus()
}

// s2sOut is the way out over s2s federation (route.Remote): a stanza
// that cannot be delivered is answered later, through Undeliverable.
type s2sOut struct{ svc *s2s.Service }

func (o s2sOut) Send(domain string, _ stanza.Kind, b []byte) error {
	o.svc.Send(domain, b)
	return nil
}

// uplinkOut is the way out over the component uplink (route.Remote).
type uplinkOut struct{ link *uplink.Link }

func (o uplinkOut) Send(_ string, kind stanza.Kind, b []byte) error {
	switch err := o.link.Send(kind, b); {
	case errors.Is(err, uplink.ErrDown):
		return errors.New("the uplink to other domains is down; try again later")
	case errors.Is(err, uplink.ErrQueueFull):
		return errors.New("the uplink to other domains is down and its queue is full")
	}
	return nil
}
