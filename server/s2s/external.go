package s2s

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"time"

	"roost/wire/xmlscan"
)

// SASL EXTERNAL (RFC 6120 §6, XEP-0178): a peer whose certificate is
// valid for its domain, under the roots we trust, is authenticated by
// the certificate itself, without the dialback round trip through DNS.

const nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// certFor reports whether a TLS peer's certificate chain is valid for
// domain under cfg.Roots (nil: the system's roots).
func (s *Service) certFor(state tls.ConnectionState, domain string) bool {
	certs := state.PeerCertificates
	if len(certs) == 0 {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		DNSName:       domain,
		Roots:         s.cfg.Roots,
		Intermediates: inter,
		CurrentTime:   time.Now(),
		// The same certificate serves both ends of server streams.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

// clientTLS is the TLS configuration for our outbound streams: we present
// our own certificate so that the peer can offer us EXTERNAL.
func (s *Service) clientTLS(domain string) *tls.Config {
	c := &tls.Config{ServerName: domain, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, NextProtos: []string{"xmpp-server"}}
	if s.cfg.TLS != nil {
		c.GetClientCertificate = s.cfg.TLS.GetClientCertificate // the server's certificate, as reloaded
	}
	return c
}

// external tries SASL EXTERNAL on an outbound stream whose features offer
// it; false means use dialback instead.
func (s *Service) external(st *stream, domain string, feats xmlscan.Token) bool {
	if !bytes.Contains(feats.Raw, []byte("<mechanism>EXTERNAL</mechanism>")) {
		return false
	}
	authzid := base64.StdEncoding.EncodeToString([]byte(s.cfg.Domain))
	if st.write("<auth xmlns='"+nsSASL+"' mechanism='EXTERNAL'>"+authzid+"</auth>") != nil {
		return false
	}
	tok, err := st.next()
	if err != nil || string(tok.Local) != "success" {
		s.log.Info("s2s: SASL EXTERNAL refused, trying dialback", "domain", domain)
		return false
	}
	st.scan.Reset(st.nc)
	_, _, err = st.restart(s.cfg.Domain, domain)
	return err == nil
}
