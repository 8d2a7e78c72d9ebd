package mdns

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"roost/devices/discover"
	"roost/tests/testutil"
)

// writePair writes a self-signed certificate for domain and its key, and
// returns the fingerprint the TXT record must carry.
func writePair(t *testing.T, dir, domain, cn string) (cert, key, fp string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{domain}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	sum := sha256.Sum256(der)
	return cert, key, "sha256:" + hex.EncodeToString(sum[:])
}

// TestReloadReadvertises (issue 17): SIGHUP's reload with a renewed
// certificate changes the fingerprint in the TXT record, so a device that
// pins on first use can follow a planned renewal.
func TestReloadReadvertises(t *testing.T) {
	if !inOwnNetwork(t) {
		return
	}
	dir := t.TempDir()
	cfg := testutil.Config(t)
	cfg.Domain = "gateway.test"
	cfg.Listen.C2S, cfg.Listen.DTLS = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Listen.MDNS = true
	var first string
	cfg.TLS.Cert, cfg.TLS.Key, first = writePair(t, dir, cfg.Domain, "first")
	srv := testutil.Start(t, cfg)
	find := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var got []string
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _, fp, err := discover.Find(ctx, discover.Device)
			cancel()
			if err == nil {
				if fp == want {
					return
				}
				if !slices.Contains(got, fp) {
					got = append(got, fp)
				}
			}
		}
		t.Fatalf("the advertisement never carried %s (saw %v)", want, got)
	}
	find(first)
	next := *cfg
	var second string
	next.TLS.Cert, next.TLS.Key, second = writePair(t, dir, cfg.Domain, "second")
	applied, _, err := srv.Reload(&next)
	if err != nil || !slices.Contains(applied, "tls certificate") {
		t.Fatalf("reload: %v %v", applied, err)
	}
	find(second)
}
