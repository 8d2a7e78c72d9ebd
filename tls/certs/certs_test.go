package certs

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateAndReload(t *testing.T) {
	dir := t.TempDir()
	c1, path, gen, err := LoadOrGenerate(dir, "localhost", "", "")
	if err != nil || !gen || path != filepath.Join(dir, CertFile) {
		t.Fatalf("first run: %v %v %s", err, gen, path)
	}
	if fi, _ := os.Stat(filepath.Join(dir, KeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	c2, _, gen, err := LoadOrGenerate(dir, "localhost", "", "")
	if err != nil || gen || string(c1.Certificate[0]) != string(c2.Certificate[0]) {
		t.Fatalf("reload should reuse the certificate: %v %v", err, gen)
	}
	before, _ := os.ReadFile(path)
	_, _, _, err = LoadOrGenerate(dir, "gw1.example.org", "", "")
	if err == nil || !strings.Contains(err.Error(), "is for localhost, not the configured domain gw1.example.org") {
		t.Fatalf("a new domain must be refused, not regenerate: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("the certificate was overwritten for another domain")
	}
}

func TestExpiredIsRenewedAndKept(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if err := generateValid(cert, key, "localhost", -2, -1); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(cert)
	_, _, gen, err := LoadOrGenerate(dir, "localhost", "", "")
	if err != nil || !gen {
		t.Fatalf("an expired certificate should be renewed: %v %v", err, gen)
	}
	matches, _ := filepath.Glob(cert + ".expired-*")
	if len(matches) != 1 {
		t.Fatalf("expired certificate kept as %v", matches)
	}
	if kept, _ := os.ReadFile(matches[0]); string(kept) != string(old) {
		t.Fatal("the expired certificate was not kept as it was")
	}
}

func TestHandshakeTrustingThePEM(t *testing.T) {
	dir := t.TempDir()
	cert, path, _, err := LoadOrGenerate(dir, "localhost", "", "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(NewHolder(cert)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pem, _ := os.ReadFile(path)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"xmpp-client"}})
	if err != nil {
		t.Fatalf("client trusting the PEM: %v", err)
	}
	if c.ConnectionState().NegotiatedProtocol != "xmpp-client" {
		t.Errorf("ALPN %q", c.ConnectionState().NegotiatedProtocol)
	}
	c.Close()
}

func TestExplicitFiles(t *testing.T) {
	dir := t.TempDir()
	_, _, _, err := LoadOrGenerate(dir, "localhost", filepath.Join(dir, "missing.pem"), filepath.Join(dir, "missing.key"))
	if err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("missing files: %v", err)
	}
	gen := t.TempDir()
	LoadOrGenerate(gen, "localhost", "", "")
	if _, p, g, err := LoadOrGenerate(dir, "localhost", filepath.Join(gen, CertFile), filepath.Join(gen, KeyFile)); err != nil || g || p != filepath.Join(gen, CertFile) {
		t.Fatalf("explicit files: %v %v %s", err, g, p)
	}
}
