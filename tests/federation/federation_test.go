// Package federation tests server-to-server streams: two Roost servers
// federating over loopback with static routes and dialback, bad input on
// an inbound stream, and (when Prosody is installed) a real Prosody.
package federation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"roost/bench/load"
	"roost/server"
	"roost/tests/testutil"
	"roost/wire/xmlscan"
)

// roost starts a server for domain with federation on s2s and the
// given routes, and one account per user (password "pw").
func roost(t *testing.T, domain, s2s string, routes map[string]string, users ...string) *server.Server {
	return roostWith(t, domain, s2s, routes, nil, users...)
}

// roostWith is roost with a change to the configuration before start.
func roostWith(t *testing.T, domain, s2s string, routes map[string]string, edit func(*server.Config), users ...string) *server.Server {
	t.Helper()
	return roostIn(t, nil, domain, s2s, routes, edit, users...)
}

// roostIn is roostWith with the server's Start (which opens its
// listeners) run through in, when not nil (see s2sHome).
func roostIn(t *testing.T, in func(func()), domain, s2s string, routes map[string]string, edit func(*server.Config), users ...string) *server.Server {
	t.Helper()
	cfg := testutil.Config(t)
	cfg.Domain, cfg.Listen.S2S = domain, s2s
	cfg.S2S.Routes = routes
	if edit != nil {
		edit(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("server", domain)
	}
	srv := server.New(cfg, log)
	var err error
	start := func() { err = srv.Start() }
	if in != nil {
		in(start)
	} else {
		start()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	for _, u := range users {
		if err := srv.Store().AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

func login(t *testing.T, srv *server.Server, domain, user string) *load.Conn {
	t.Helper()
	c, err := load.Dial(load.Options{Target: srv.Addrs()[0].String(), Domain: domain, Password: "pw", TLS: true, Timeout: 10 * time.Second}, user, "r", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Her own presence coming back says the server has made her
	// available: a message to her bare JID now reaches this session.
	expect(t, c, "<presence")
	return c
}

// expect reads stanzas until one contains all of want.
func expect(t *testing.T, c *load.Conn, want ...string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		for {
			tok, err := c.Next()
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			s := string(tok.Raw)
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(s, w)
			}
			if ok {
				got <- s
				return
			}
		}
	}()
	select {
	case s := <-got:
		if strings.HasPrefix(s, "error: ") {
			t.Fatalf("waiting for %q: %s", want, s)
		}
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("no stanza with %q in 20 s", want)
	}
	return ""
}

// Two Roosts, a.test and b.test, reach each other through static routes
// and authenticate with dialback; messages and a subscription with
// presence cross both ways.
func TestRoostToRoost(t *testing.T) {
	pa, pb := testutil.FreePort(t), testutil.FreePort(t)
	routes := map[string]string{"a.test": fmt.Sprintf("127.0.0.1:%d", pa), "b.test": fmt.Sprintf("127.0.0.1:%d", pb)}
	a := roost(t, "a.test", routes["a.test"], routes, "alice")
	b := roost(t, "b.test", routes["b.test"], routes, "bob")
	alice, bob := login(t, a, "a.test", "alice"), login(t, b, "b.test", "bob")

	alice.Send([]byte("<message to='bob@b.test' type='chat' id='m1'><body>hello b</body></message>"))
	m := expect(t, bob, "<message", "hello b")
	if !strings.Contains(m, "from='alice@a.test/r'") {
		t.Fatalf("from not kept: %s", m)
	}
	bob.Send([]byte("<message to='alice@a.test/r' type='chat'><body>hello a</body></message>"))
	expect(t, alice, "hello a", "from='bob@b.test/r'")

	alice.Send([]byte("<presence to='bob@b.test' type='subscribe'/>"))
	expect(t, bob, "type='subscribe'", "alice@a.test")
	bob.Send([]byte("<presence to='alice@a.test' type='subscribed'/>"))
	expect(t, alice, "type='subscribed'", "bob@b.test")
	// Approved: bob's presence now reaches alice.
	bob.Send([]byte("<presence><status>here</status></presence>"))
	expect(t, alice, "<presence", "from='bob@b.test/r'", "here")

	// An iq to a domain nobody serves fails with remote-server-not-found.
	alice.Send([]byte("<iq type='get' id='q1' to='nowhere.invalid'><ping xmlns='urn:xmpp:ping'/></iq>"))
	expect(t, alice, "id='q1'", "remote-server-not-found")
}

// rawStream opens a jabber:server stream to addr from domain.
func rawStream(t *testing.T, addr, from, to string) (net.Conn, *xmlscan.Scanner) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(nc, "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' from='%s' to='%s'>", from, to)
	sc := xmlscan.New(nc, xmlscan.Limits{})
	if tok, err := sc.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		t.Fatalf("header: %v", err)
	}
	if tok, err := sc.Next(); err != nil || string(tok.Local) != "features" {
		t.Fatalf("features: %v %s", err, tok.Raw)
	}
	return nc, sc
}

// streamError reads until the stream error and returns it.
func streamError(t *testing.T, sc *xmlscan.Scanner) string {
	t.Helper()
	for {
		tok, err := sc.Next()
		if err != nil {
			t.Fatalf("no stream error: %v", err)
		}
		if string(tok.Local) == "error" {
			return string(tok.Raw)
		}
	}
}

// Bad input on an inbound stream: a stanza before authentication, one
// claiming a domain the stream did not authenticate, one for another
// host; each ends that stream with the RFC 6120 error, and the server
// goes on serving.
func TestInboundChecks(t *testing.T) {
	// evil.test's "authoritative server" says every key is valid, so a
	// stream can authenticate as evil.test and then misbehave.
	auth, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	go func() {
		for {
			nc, err := auth.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				sc := xmlscan.New(nc, xmlscan.Limits{})
				sc.Next()
				io.WriteString(nc, "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0' id='x'><stream:features/>")
				for {
					tok, err := sc.Next()
					if err != nil {
						return
					}
					if string(tok.Local) == "verify" {
						id, _ := tok.Attr("id")
						fmt.Fprintf(nc, "<db:verify from='evil.test' to='a.test' id='%s' type='valid'/>", id)
					}
				}
			}()
		}
	}()
	pa := testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", pa)
	a := roost(t, "a.test", addr, map[string]string{"evil.test": auth.Addr().String()}, "alice")

	nc, sc := rawStream(t, addr, "evil.test", "a.test")
	io.WriteString(nc, "<message from='x@evil.test' to='alice@a.test'><body>early</body></message>")
	if e := streamError(t, sc); !strings.Contains(e, "not-authorized") {
		t.Fatalf("before dialback: %s", e)
	}

	authed := func() (net.Conn, *xmlscan.Scanner) {
		nc, sc := rawStream(t, addr, "evil.test", "a.test")
		io.WriteString(nc, "<db:result from='evil.test' to='a.test'>anykey</db:result>")
		tok, err := sc.Next()
		if err != nil || !strings.Contains(string(tok.Raw), "type='valid'") {
			t.Fatalf("dialback: %v %s", err, tok.Raw)
		}
		return nc, sc
	}
	nc, sc = authed()
	io.WriteString(nc, "<message from='mallory@a.test' to='alice@a.test'><body>spoof</body></message>")
	if e := streamError(t, sc); !strings.Contains(e, "invalid-from") {
		t.Fatalf("spoofed from: %s", e)
	}
	nc, sc = authed()
	io.WriteString(nc, "<message from='x@evil.test' to='alice@elsewhere.test'><body>lost</body></message>")
	if e := streamError(t, sc); !strings.Contains(e, "host-unknown") {
		t.Fatalf("wrong host: %s", e)
	}
	// And a well-behaved stanza on an authenticated stream arrives.
	alice := login(t, a, "a.test", "alice")
	nc, _ = authed()
	io.WriteString(nc, "<message from='x@evil.test/r' to='alice@a.test' type='chat'><body>fine</body></message>")
	expect(t, alice, "fine", "from='x@evil.test/r'")
}

// TestProsody and TestEjabberd federate with a real Prosody and ejabberd.
// The peers find servers by name on port 5269 (no SRV records here), so
// Roost's domain roost.test goes into /etc/hosts and Roost must listen
// on port 5269 of that address. To pass where port 5269 is taken (a Roost
// or another XMPP server running as a service, which usually listens on
// every address), Roost's listeners are opened in a network namespace of
// the test's own, reached over a veth pair (see s2sHome); Roost reaches
// the peers through a static route.
func TestProsody(t *testing.T) {
	federateWith(t, "prosody", "prosody.test", 16222, 16269)
}

func TestEjabberd(t *testing.T) {
	federateWith(t, "ejabberd", "ejabberd.test", 26222, 26269)
}

func federateWith(t *testing.T, name, domain string, c2s, s2s int) {
	_, err := exec.LookPath(name + "ctl")
	testutil.Need(t, name, err == nil)
	if os.Geteuid() != 0 {
		testutil.Need(t, "root (to add roost.test to /etc/hosts)", false)
	}
	testutil.LockPeers(t)
	ip, inHome := s2sHome(t)
	addHost(t, ip, "roost.test")
	peers(t, "wipe", name)
	peers(t, "start", name)
	t.Cleanup(func() { peers(t, "stop", name) })
	peers(t, "users", name, "2")

	r := roostIn(t, inHome, "roost.test", net.JoinHostPort(ip, "5269"), map[string]string{domain: fmt.Sprintf("127.0.0.1:%d", s2s)},
		func(c *server.Config) { c.Listen.C2S = net.JoinHostPort(ip, "0") }, "alice")
	alice := login(t, r, "roost.test", "alice")
	c, err := load.Dial(load.Options{Target: fmt.Sprintf("127.0.0.1:%d", c2s), Domain: domain, Password: "pass1", TLS: true, Timeout: 10 * time.Second}, "user1", "p", true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expect(t, c, "<presence")

	alice.Send([]byte("<message to='user1@" + domain + "' type='chat'><body>from roost</body></message>"))
	expect(t, c, "from roost", "alice@roost.test")
	c.Send([]byte("<message to='alice@roost.test' type='chat'><body>from the peer</body></message>"))
	expect(t, alice, "from the peer", "user1@"+domain)

	alice.Send([]byte("<presence to='user1@" + domain + "' type='subscribe'/>"))
	expect(t, c, "type='subscribe'", "alice@roost.test")
	c.Send([]byte("<presence to='alice@roost.test' type='subscribed'/>"))
	expect(t, alice, "type='subscribed'", "user1@"+domain)
	c.Send([]byte("<presence><status>on the peer</status></presence>"))
	expect(t, alice, "<presence", "on the peer")
	// And the other way: user1 subscribes to alice, alice approves, and
	// alice's presence reaches the peer.
	c.Send([]byte("<presence to='alice@roost.test' type='subscribe'/>"))
	expect(t, alice, "type='subscribe'", "user1@"+domain)
	alice.Send([]byte("<presence to='user1@" + domain + "' type='subscribed'/>"))
	alice.Send([]byte("<presence><status>on roost</status></presence>"))
	expect(t, c, "<presence", "on roost", "alice@roost.test")
	// A new session of user1's initial presence makes its server probe
	// alice; Roost answers with her current presence (RFC 6121 §4.3).
	c2, err := load.Dial(load.Options{Target: fmt.Sprintf("127.0.0.1:%d", c2s), Domain: domain, Password: "pass1", TLS: true, Timeout: 10 * time.Second}, "user1", "second", true)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	expect(t, c2, "<presence", "on roost", "alice@roost.test")

	// PEP across s2s (issue 16): user1, a contact of alice's on the peer,
	// subscribes explicitly to her sensor node on Roost; it gets the last
	// item at once, then each new one as a notification through its server.
	const node = "urn:roost:sensor:0"
	publish := func(id, value string) {
		t.Helper()
		alice.Send([]byte("<iq type='set' id='pub" + value + "'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='" + node + "'><item id='" + id + "'><reading xmlns='" + node + "' sensor='t' value='" + value + "' unit='Cel'/></item></publish></pubsub></iq>"))
		expect(t, alice, "id='pub"+value+"'", "type='result'")
	}
	publish("t", "20.5")
	c.Send([]byte("<iq type='set' id='sub1' to='alice@roost.test'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscribe node='" + node + "' jid='user1@" + domain + "/p'/></pubsub></iq>"))
	expect(t, c, "id='sub1'", "type='result'", "subscription='subscribed'")
	expect(t, c, "http://jabber.org/protocol/pubsub#event", "value='20.5'", "from='alice@roost.test'")
	publish("t", "21.5")
	expect(t, c, "http://jabber.org/protocol/pubsub#event", "value='21.5'", "from='alice@roost.test'")
}

// The test's network namespace: Roost's side of the veth pair is nsIP
// inside it, the root namespace's side hostIP. Link-local addresses
// (RFC 3927) do not collide with a LAN's or a CI runner's own networks.
const (
	nsName           = "roost-fed-test"
	vethHost, vethNS = "roostfed0", "roostfed1"
	hostIP, nsIP     = "169.254.52.1", "169.254.52.2"
)

// s2sHome returns the address Roost's listeners use in the federation
// tests and a function that runs f with new sockets opened there.
//
// First choice: a network namespace made here (ip netns, a veth pair),
// where port 5269 is free whatever listens in the root namespace; the
// peers and the test's clients in the root namespace reach it over the
// veth. Sockets belong to the namespace they were opened in, so only
// Start runs inside it (on a locked OS thread that dies afterwards);
// Roost's own outbound connections are made from ordinary threads, in the
// root namespace, where the peers listen on 127.0.0.1.
//
// Where no namespace can be made (not root, no CAP_SYS_ADMIN, no ip
// command), 127.0.0.2 is used if port 5269 is free on it; otherwise the
// test is skipped (failed under ROOST_ACCEPTANCE=require) saying why.
func s2sHome(t *testing.T) (string, func(func())) {
	t.Helper()
	ns, nsErr := newNamespace(t)
	if nsErr == nil {
		return nsIP, func(f func()) {
			t.Helper()
			if err := ns.run(f); err != nil {
				t.Fatalf("entering the network namespace %s: %v", nsName, err)
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.2:5269")
	if err != nil {
		testutil.Cannot(t, fmt.Sprintf("roost.test needs port 5269: no network namespace could be made (%v), and 127.0.0.2:5269 is taken (%v)", nsErr, err))
	}
	l.Close()
	t.Logf("no network namespace (%v); roost.test is 127.0.0.2", nsErr)
	return "127.0.0.2", func(f func()) { f() }
}

type namespace struct{ fd *os.File }

// newNamespace makes the namespace and its veth pair, removed at the end
// of the test. Left-overs of a killed run (same names) are removed first;
// the peers' lock is held, so no other test uses them.
func newNamespace(t *testing.T) (*namespace, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("no ip command (iproute2): %w", err)
	}
	ipCmd := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	remove := func() {
		// Deleting one end of the pair deletes the other at once;
		// deleting the namespace alone frees its veth only later.
		ipCmd("link", "del", vethHost)
		ipCmd("netns", "del", nsName)
	}
	remove()
	for _, args := range [][]string{
		{"netns", "add", nsName},
		{"link", "add", vethHost, "type", "veth", "peer", "name", vethNS},
		{"link", "set", vethNS, "netns", nsName},
		{"addr", "add", hostIP + "/30", "dev", vethHost},
		{"link", "set", vethHost, "up"},
		{"-n", nsName, "addr", "add", nsIP + "/30", "dev", vethNS},
		{"-n", nsName, "link", "set", vethNS, "up"},
		{"-n", nsName, "link", "set", "lo", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			remove()
			return nil, err
		}
	}
	fd, err := os.Open("/run/netns/" + nsName)
	if err != nil {
		remove()
		return nil, err
	}
	t.Cleanup(func() { fd.Close(); remove() })
	return &namespace{fd: fd}, nil
}

// run calls f on an OS thread moved into the namespace, so the sockets f
// opens belong to it. The thread stays locked and ends with its
// goroutine: the Go runtime then discards it rather than run anything
// else in the namespace, and threads it starts meanwhile are cloned from
// a clean template thread, not from this one.
func (n *namespace) run(f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(n.fd.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		defer func() { errc <- nil }()
		f()
	}()
	return <-errc
}

func peers(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("../peers/peers.sh", args...)
	cmd.Env = append(os.Environ(), "PEERS_DIR=/tmp/roost-peers-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peers.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// addHost puts "ip name" in /etc/hosts for the test's duration.
func addHost(t *testing.T, ip, name string) {
	t.Helper()
	old, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	line := ip + " " + name + " # roost federation test\n"
	if strings.Contains(string(old), line) {
		return
	}
	if err := os.WriteFile("/etc/hosts", append(old, line...), 0o644); err != nil {
		testutil.Need(t, "a writable /etc/hosts", false)
	}
	t.Cleanup(func() {
		cur, err := os.ReadFile("/etc/hosts")
		if err == nil {
			os.WriteFile("/etc/hosts", []byte(strings.Replace(string(cur), line, "", 1)), 0o644)
		}
	})
}

// With certificates from a CA both trust, the servers authenticate each
// other with SASL EXTERNAL instead of dialback.
func TestSASLExternal(t *testing.T) {
	dir := t.TempDir()
	caFile := writeCA(t, dir, "a.test", "b.test")
	pa, pb := testutil.FreePort(t), testutil.FreePort(t)
	routes := map[string]string{"a.test": fmt.Sprintf("127.0.0.1:%d", pa), "b.test": fmt.Sprintf("127.0.0.1:%d", pb)}
	withCert := func(d string) func(*server.Config) {
		return func(c *server.Config) {
			c.TLS.Cert, c.TLS.Key = filepath.Join(dir, d+".crt"), filepath.Join(dir, d+".key")
			c.S2S.CAFile = caFile
		}
	}
	a := roostWith(t, "a.test", routes["a.test"], routes, withCert("a.test"), "alice")
	b := roostWith(t, "b.test", routes["b.test"], routes, withCert("b.test"), "bob")
	alice, bob := login(t, a, "a.test", "alice"), login(t, b, "b.test", "bob")
	alice.Send([]byte("<message to='bob@b.test' type='chat'><body>signed</body></message>"))
	expect(t, bob, "signed", "alice@a.test")
	bob.Send([]byte("<message to='alice@a.test' type='chat'><body>countersigned</body></message>"))
	expect(t, alice, "countersigned", "bob@b.test")
	for _, srv := range []*server.Server{a, b} {
		if st := strings.Join(srv.RemoteStatus(), "\n"); !strings.Contains(st, "authenticated by SASL EXTERNAL") {
			t.Fatalf("status: %s", st)
		}
	}
}

// writeCA makes a CA and a certificate for each domain (key and chain in
// DIR/DOMAIN.key and .crt) and returns the CA's file.
func writeCA(t *testing.T, dir string, domains ...string) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	for i, d := range domains {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: d}, DNSNames: []string{d},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalPKCS8PrivateKey(key)
		os.WriteFile(filepath.Join(dir, d+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
		os.WriteFile(filepath.Join(dir, d+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	}
	return caFile
}
