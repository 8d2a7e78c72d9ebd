package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"roost/devices/discover"
	"roost/server/mdns"
)

// startMDNS advertises the gateway on the local link when listen.mdns is
// on (server/mdns): the client ports, the s2s port when federation listens
// and the DTLS device port, each from its bound listener (so a port 0 in
// the config is advertised as the port the kernel chose), with the
// certificate's fingerprint in the TXT record. Start calls it last, once
// every listener is open.
func (s *Server) startMDNS() error {
	if !s.cfg.Listen.MDNS {
		return nil
	}
	return s.advertise()
}

// advertise starts the advertisement unless it runs already.
func (s *Server) advertise() error {
	advertisingMu.Lock()
	defer advertisingMu.Unlock()
	if _, ok := advertising.Load(s); ok {
		return nil
	}
	cert := s.cert.Get()
	if cert == nil || len(cert.Certificate) == 0 {
		return errors.New("listen.mdns: no certificate to fingerprint")
	}
	a, err := mdns.Start(mdns.Config{Domain: s.cfg.Domain, CertDER: cert.Certificate[0], Version: Version,
		Services: s.mdnsServices(), Log: s.log})
	if err != nil {
		return fmt.Errorf("listen.mdns (set it to false where the host has no multicast): %w", err)
	}
	advertising.Store(s, advert{a, cert.Certificate[0]})
	return nil
}

// advertising holds each running server's advertisement (kept here, not
// in Server, so that mDNS stays in this file).
var advertising sync.Map // *Server -> advert

var advertisingMu sync.Mutex // one advertise at a time: a server is never advertised twice

type advert struct {
	a   *mdns.Advertiser
	der []byte // the certificate fingerprinted in the TXT record
}

func (ad advert) close(s *Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := ad.a.Close(ctx); err != nil {
		s.log.Warn("mdns", "err", err)
	}
}

// reloadMDNS advertises again when the certificate changed (SIGHUP, a
// renewed certificate): the TXT fingerprint must be the one the
// listeners now present, or a device pinning it would refuse the
// gateway. The new advertisement probes and announces as at start.
func (s *Server) reloadMDNS() error {
	v, ok := advertising.Load(s)
	if !ok {
		return nil
	}
	if cert := s.cert.Get(); cert != nil && len(cert.Certificate) > 0 && bytes.Equal(cert.Certificate[0], v.(advert).der) {
		return nil
	}
	s.stopMDNS()
	return s.advertise()
}

// stopMDNS withdraws the advertisement (goodbye packets, RFC 6762 §10.1);
// Shutdown calls it first, so that nobody is sent to a closing server.
func (s *Server) stopMDNS() {
	if v, ok := advertising.LoadAndDelete(s); ok {
		v.(advert).close(s)
	}
}

// mdnsServices lists what is listening. s.listeners holds, in the order
// Start opens them: listen.c2s and listen.c2s_tls (each when set), then the
// s2s listener (startFederation, when s.s2s is set), then others.
func (s *Server) mdnsServices() []mdns.Service {
	var out []mdns.Service
	i := 0
	next := func(typ string) {
		if i < len(s.listeners) {
			out = append(out, mdns.Service{Type: typ, Addr: s.listeners[i].Addr()})
		}
		i++
	}
	if s.cfg.Listen.C2S != "" {
		next(discover.Client)
	}
	if s.cfg.Listen.C2STLS != "" {
		next(discover.ClientTLS)
	}
	if s.s2s != nil {
		next(discover.Server)
	}
	if s.devices != nil {
		if a, ok := s.devices.Addr().(*net.UDPAddr); ok {
			out = append(out, mdns.Service{Type: discover.Device, Addr: a})
		}
	}
	return out
}
