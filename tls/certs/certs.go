// Package certs loads the server's TLS certificate, or makes a
// self-signed one for the domain on first run, and builds the TLS config.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// File names of the generated certificate and key inside the data dir.
const (
	CertFile = "roost-cert.pem"
	KeyFile  = "roost-key.pem"
)

// LoadOrGenerate returns the certificate for domain: from certFile and
// keyFile when both are set, otherwise the self-signed ECDSA P-256
// certificate kept in dir, made on first run. A kept certificate that has
// expired is renewed (the old pair is renamed, never overwritten); one for
// another domain is refused: clients may have pinned it, and a changed
// domain is an operator's mistake to be told about (issue 17). certPath
// is the PEM users point clients at.
func LoadOrGenerate(dir, domain, certFile, keyFile string) (cert tls.Certificate, certPath string, generated bool, err error) {
	if certFile != "" || keyFile != "" {
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return cert, "", false, fmt.Errorf("load tls.cert %s / tls.key %s: %w", certFile, keyFile, err)
		}
		return cert, certFile, false, nil
	}
	certPath = filepath.Join(dir, CertFile)
	keyPath := filepath.Join(dir, KeyFile)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return cert, "", false, fmt.Errorf("certificate %s: %w", certPath, err)
		}
		if !slices.Contains(leaf.DNSNames, domain) {
			return cert, "", false, fmt.Errorf("the certificate %s is for %s, not the configured domain %s: it is left as it is; set \"domain\" back, or move it away to have a new one generated", certPath, strings.Join(leaf.DNSNames, ", "), domain)
		}
		if time.Now().Before(leaf.NotAfter) {
			return c, certPath, false, nil
		}
		stamp := leaf.NotAfter.UTC().Format("20060102")
		for _, p := range []string{certPath, keyPath} {
			if err := os.Rename(p, p+".expired-"+stamp); err != nil {
				return cert, "", false, fmt.Errorf("keep the expired certificate: %w", err)
			}
		}
	} else if _, statErr := os.Stat(certPath); statErr == nil {
		return cert, "", false, fmt.Errorf("the certificate %s or its key %s cannot be read (%v): it is left as it is; fix or move it away", certPath, keyPath, err)
	}
	if err := generate(certPath, keyPath, domain); err != nil {
		return cert, "", false, err
	}
	cert, err = tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return cert, "", false, fmt.Errorf("load generated certificate %s: %w", certPath, err)
	}
	return cert, certPath, true, nil
}

func generate(certPath, keyPath, domain string) error {
	return generateValid(certPath, keyPath, domain, 0, 10*365*24)
}

// generateValid makes a self-signed pair valid from fromHours to
// toHours from now (tests make expired ones).
func generateValid(certPath, keyPath, domain string, fromHours, toHours int) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"Roost self-signed"}},
		DNSNames:              []string{domain},
		NotBefore:             time.Now().Add(time.Duration(fromHours-1) * time.Hour),
		NotAfter:              time.Now().Add(time.Duration(toHours) * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if domain == "localhost" {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyPath, err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", certPath, err)
	}
	return nil
}

// Holder holds the certificate every listener presents; Set replaces it
// for the handshakes that follow (SIGHUP with a renewed certificate)
// without touching the connections already open.
type Holder struct {
	p atomic.Pointer[tls.Certificate]
}

// NewHolder holds cert.
func NewHolder(cert tls.Certificate) *Holder {
	h := &Holder{}
	h.Set(cert)
	return h
}

// Set replaces the certificate.
func (h *Holder) Set(cert tls.Certificate) { h.p.Store(&cert) }

// Get is the certificate now.
func (h *Holder) Get() *tls.Certificate { return h.p.Load() }

// ServerConfig is the TLS configuration of the server's listeners: TLS 1.2
// or later, the certificate taken from h at each handshake (with or
// without SNI), also presented as our client certificate where a peer
// asks for one (s2s SASL EXTERNAL).
func ServerConfig(h *Holder) *tls.Config {
	return &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return h.Get(), nil },
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return h.Get(), nil
		},
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"xmpp-client"},
	}
}
