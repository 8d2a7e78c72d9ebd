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
	"time"
)

// File names of the generated certificate and key inside the data dir.
const (
	CertFile = "roost-cert.pem"
	KeyFile  = "roost-key.pem"
)

// LoadOrGenerate returns the certificate for domain: from certFile and
// keyFile when both are set, otherwise the self-signed ECDSA P-256
// certificate kept in dir, made on first run (and again when it no longer
// covers domain or has expired). certPath is the PEM users point clients at.
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
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil && covers(c, domain) {
		return c, certPath, false, nil
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

func covers(c tls.Certificate, domain string) bool {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || time.Now().After(leaf.NotAfter) {
		return false
	}
	return slices.Contains(leaf.DNSNames, domain)
}

func generate(certPath, keyPath, domain string) error {
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
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
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

// ServerConfig is the TLS server configuration: TLS 1.2 or later, and
// the XEP-0368 ALPN name for direct TLS.
func ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"xmpp-client"},
	}
}
