package acceptance

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"roost/tests/testutil"
)

// writeCert writes a self-signed certificate and key for localhost with
// the given common name (so two of them differ) and returns the DER's
// SHA-256.
func writeCert(t *testing.T, certPath, keyPath, cn string) [32]byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	// Written through a rename, as certbot's deploy does.
	for _, f := range []struct {
		path string
		blk  *pem.Block
	}{{certPath, &pem.Block{Type: "CERTIFICATE", Bytes: der}}, {keyPath, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}}} {
		if err := os.WriteFile(f.path+".new", pem.EncodeToMemory(f.blk), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
	return sha256.Sum256(der)
}

// presented is the SHA-256 of the certificate a new TLS connection to
// addr gets.
func presented(t *testing.T, addr string) [32]byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("tls dial %s: %v", addr, err)
	}
	defer c.Close()
	return sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
}

// xclient is the least XMPP client that can log in over direct TLS
// (XEP-0368) with PLAIN, bind and send: enough to hold a session open
// while the operator acts on the server.
type xclient struct {
	t   *testing.T
	c   *tls.Conn
	dec *xml.Decoder
}

func dialClient(t *testing.T, addr, user, pass, res string) *xclient {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	x := &xclient{t: t, c: c}
	x.open()
	x.expect("mechanisms")
	x.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + "</auth>")
	x.expect("success")
	x.open()
	x.expect("bind")
	x.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + res + "</resource></bind></iq>")
	x.expect("iq")
	x.send("<presence/>")
	return x
}

func (x *xclient) open() {
	x.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
	x.dec = xml.NewDecoder(x.c)
	for {
		tok, err := x.token()
		if err != nil {
			x.t.Fatalf("stream header: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			return
		}
	}
}

func (x *xclient) send(s string) {
	x.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(x.c, s); err != nil {
		x.t.Fatalf("write: %v", err)
	}
}

func (x *xclient) token() (xml.Token, error) {
	x.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return x.dec.Token()
}

// next returns the next top-level element's name and raw XML, or the
// error that ended the stream.
func (x *xclient) next() (string, string, error) {
	for {
		tok, err := x.token()
		if err != nil {
			return "", "", err
		}
		if se, ok := tok.(xml.StartElement); ok {
			var inner struct {
				Inner []byte `xml:",innerxml"`
			}
			if err := x.dec.DecodeElement(&inner, &se); err != nil {
				return "", "", err
			}
			return se.Name.Local, string(inner.Inner), nil
		}
	}
}

// expect reads until an element named name (or containing it, for the
// features) arrives.
func (x *xclient) expect(name string) string {
	x.t.Helper()
	for {
		n, inner, err := x.next()
		if err != nil {
			x.t.Fatalf("waiting for %s: %v", name, err)
		}
		if n == name || strings.Contains(inner, "<"+name) {
			return inner
		}
	}
}

// ping sends an XEP-0199 ping to the server and waits for its result.
func (x *xclient) ping(id string) {
	x.t.Helper()
	x.send("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		n, _, err := x.next()
		if err != nil {
			x.t.Fatalf("ping %s: the session is gone: %v", id, err)
		}
		if n == "iq" {
			return
		}
	}
}

// ended waits for a stream error with cond and the end of the stream.
func (x *xclient) ended(cond string) {
	x.t.Helper()
	for {
		n, inner, err := x.next()
		if err != nil {
			x.t.Fatalf("stream ended without <%s/>: %v", cond, err)
		}
		if n == "error" {
			if !strings.Contains(inner, "<"+cond) {
				x.t.Fatalf("stream error %s, want %s", inner, cond)
			}
			return
		}
	}
}

// TestOperator (issue 17): what an operator does to a running gateway,
// each through the real binary: SIGHUP and roost reload with a renewed
// certificate (new connections get it, the session already open stays),
// sessions, kick,
// user del ending the deleted user's session, status (0 running, 3 not,
// with the PID), shutdown through the control socket, and a changed
// domain refused with the store left as it was.
func TestOperator(t *testing.T) {
	bin := buildRoost(t)
	dir := t.TempDir()
	c2s, direct := testutil.FreePort(t), testutil.FreePort(t)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, cert, key, "first")
	cfg := fmt.Sprintf(`{"log_level": "debug", "listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:%d", "c2s_tls": "127.0.0.1:%d", "dtls": "", "s2s": ""},
		"tls": {"cert": "cert.pem", "key": "key.pem"}}`, c2s, direct)
	os.WriteFile(filepath.Join(dir, "c.json"), []byte(cfg), 0o600)
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := roost(t, bin, dir, stdin, args...)
		if err != nil {
			t.Fatalf("roost %v: %v\n%s", args, err, out)
		}
		return out
	}
	must("", "init", "-config", "c.json")
	must("alice-pw\n", "adduser", "alice", "-config", "c.json")
	must("bob-pw\n", "adduser", "bob", "-config", "c.json")
	p := startRoost(t, bin, dir, "run", "-config", "c.json")
	addr := fmt.Sprintf("127.0.0.1:%d", direct)
	p.waitListening(t, addr)

	if out := must("", "status", "-config", "c.json"); !strings.Contains(out, fmt.Sprintf("pid %d", p.cmd.Process.Pid)) {
		t.Fatalf("status does not show the PID %d:\n%s", p.cmd.Process.Pid, out)
	}
	if presented(t, addr) != first {
		t.Fatal("the server does not present the configured certificate")
	}
	alice := dialClient(t, addr, "alice", "alice-pw", "phone")
	alice.ping("p1")
	out := must("", "sessions", "-config", "c.json")
	if !strings.Contains(out, "alice@localhost\tphone\tc2s\t127.0.0.1:") || !strings.Contains(out, "1 sessions") {
		t.Fatalf("sessions:\n%s", out)
	}

	// SIGHUP with a renewed certificate.
	second := writeCert(t, cert, key, "second")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "configuration reloaded")
	if !strings.Contains(p.logs.String(), "tls certificate") {
		t.Fatalf("the reload did not say it applied the certificate:\n%s", p.logs)
	}
	if got := presented(t, addr); got != second {
		t.Fatal("a new connection after SIGHUP still gets the old certificate")
	}
	alice.ping("p2") // the session opened before the reload is still up
	// roost reload (prosodyctl's name) does the same through the control
	// socket and says what it applied.
	third := writeCert(t, cert, key, "third")
	if out := must("", "reload", "-config", "c.json"); !strings.Contains(out, "configuration reloaded") || !strings.Contains(out, "applied: tls certificate") {
		t.Fatalf("roost reload:\n%s", out)
	}
	if presented(t, addr) != third {
		t.Fatal("a new connection after roost reload still gets the old certificate")
	}
	alice.ping("p2b")
	select {
	case <-p.done:
		t.Fatalf("SIGHUP ended the server: %v\n%s", p.err, p.logs)
	default:
	}

	// kick ends one session; user del ends the deleted user's.
	must("", "kick", "alice@localhost/phone", "-config", "c.json")
	alice.ended("policy-violation")
	bob := dialClient(t, addr, "bob", "bob-pw", "laptop")
	bob.ping("p3")
	if out := must("", "user", "del", "bob@localhost", "-config", "c.json"); !strings.Contains(out, "ended 1 live session(s) of bob@localhost") {
		t.Fatalf("user del:\n%s", out)
	}
	bob.ended("not-authorized")

	// shutdown through the control socket: a clean stop.
	must("", "shutdown", "-config", "c.json")
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("roost exited with %v after shutdown:\n%s", p.err, p.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("roost still runs 15 s after roost shutdown:\n%s", p.logs)
	}
	if !strings.Contains(p.logs.String(), "stopped") {
		t.Fatalf("no clean stop in the log:\n%s", p.logs)
	}
	cmd := exec.Command(bin, "status", "-config", "c.json")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("status with the server stopped: %v (exit %d)\n%s", err, cmd.ProcessState.ExitCode(), out)
	}

	// Another domain on this store: refused, nothing changed.
	store := filepath.Join(dir, "roost-data", "roost.db")
	before, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "other.json"), []byte(strings.Replace(cfg, `"log_level"`, `"domain": "gw.example.org", "log_level"`, 1)), 0o600)
	out, err = roost(t, bin, dir, "", "run", "-config", "other.json")
	if err == nil || !strings.Contains(out, `belongs to domain "localhost"`) || !strings.Contains(out, `Set "domain" back to "localhost"`) {
		t.Fatalf("run with another domain: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(store); !bytes.Equal(before, after) {
		t.Fatal("the refused start changed the store")
	}
	if out, err := roost(t, bin, dir, "", "user", "list", "-config", "other.json"); err == nil || !strings.Contains(out, "belongs to domain") {
		t.Fatalf("user list with another domain: %v\n%s", err, out)
	}
}

// waitLog waits for a line in a running roost's log.
func waitLog(t *testing.T, p *process, s string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for !strings.Contains(p.logs.String(), s) {
		select {
		case <-deadline:
			t.Fatalf("no %q in the log within 15 s:\n%s", s, p.logs)
		case <-p.done:
			t.Fatalf("roost exited (%v) before logging %q:\n%s", p.err, s, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
