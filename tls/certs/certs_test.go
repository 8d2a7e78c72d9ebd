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
	_, _, gen, err = LoadOrGenerate(dir, "gw1.example.org", "", "")
	if err != nil || !gen {
		t.Fatalf("a new domain should regenerate: %v %v", err, gen)
	}
}

func TestHandshakeTrustingThePEM(t *testing.T) {
	dir := t.TempDir()
	cert, path, _, err := LoadOrGenerate(dir, "localhost", "", "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(cert))
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
