// Package mdns tests the gateway's DNS-SD advertisement over multicast DNS
// (RFC 6763, RFC 6762; server/mdns) end to end: an independent
// implementation (Debian's python3-zeroconf) resolves every advertised
// service, its port (the test's ephemeral ports) and its TXT record, whose
// fingerprint must be the SHA-256 of the certificate the server presents;
// and devices/discover finds the gateway with no address given.
//
// Multicast needs a link of its own: the test re-runs itself inside a new
// network namespace (unshare --net) whose lo carries multicast and a route
// for 224.0.0.0/4. The namespace is the child process's alone and goes
// away with it, so nothing is left behind and nothing reaches the LAN.
package mdns

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"roost/devices/discover"
	"roost/server"
	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

// inNamespace is set in the environment of the child run inside the
// namespace.
const inNamespace = "ROOST_MDNS_NETNS"

// inOwnNetwork returns true in the process that runs the test inside the
// namespace (after giving its lo multicast); in the parent it runs the
// test again there, reports the child's result as its own and returns
// false.
func inOwnNetwork(t *testing.T) bool {
	t.Helper()
	if os.Getenv(inNamespace) != "" {
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"link", "set", "lo", "multicast", "on"},
			{"route", "add", "224.0.0.0/4", "dev", "lo"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s (inside the namespace): %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return true
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testutil.Cannot(t, "no ip command (iproute2) to give the namespace's lo multicast")
	}
	if out, err := exec.Command("unshare", "--net", "--", "true").CombinedOutput(); err != nil {
		testutil.Cannot(t, fmt.Sprintf("no network namespace for multicast (unshare --net: %v: %s); this test needs root or CAP_SYS_ADMIN", err, bytes.TrimSpace(out)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--", os.Args[0],
		"-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=170s")
	cmd.Env = append(os.Environ(), inNamespace+"=1")
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("inside the network namespace: %v\n%s", err, out)
	case bytes.Contains(out, []byte("--- SKIP")):
		t.Skipf("skipped inside the network namespace:\n%s", out)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name())):
		t.Fatalf("inside the network namespace: no PASS line\n%s", out)
	}
	t.Logf("inside the network namespace:\n%s", out)
	return false
}

func needZeroconf(t *testing.T) {
	t.Helper()
	testutil.Need(t, "python3-zeroconf", exec.Command(python, "-c", "import zeroconf").Run() == nil)
}

// gateway starts Roost with every listener the advertisement covers, on
// ephemeral loopback ports, and listen.mdns on: Start advertises it.
func gateway(t *testing.T) (*server.Server, *server.Config) {
	t.Helper()
	cfg := testutil.Config(t)
	cfg.Domain = "gateway.test"
	cfg.Listen.C2S, cfg.Listen.C2STLS, cfg.Listen.S2S, cfg.Listen.DTLS = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Listen.MDNS = true // testutil.Config turns it off for every other test
	return testutil.Start(t, cfg), cfg
}

// certFingerprint is the SHA-256 of the DER of the first certificate in
// srv.CertPath(), computed here from the file, not by Roost's code.
func certFingerprint(t *testing.T, srv *server.Server) string {
	t.Helper()
	raw, err := os.ReadFile(srv.CertPath())
	if err != nil {
		t.Fatal(err)
	}
	for {
		var b *pem.Block
		if b, raw = pem.Decode(raw); b == nil {
			t.Fatalf("no certificate in %s", srv.CertPath())
		}
		if b.Type == "CERTIFICATE" {
			sum := sha256.Sum256(b.Bytes)
			return "sha256:" + hex.EncodeToString(sum[:])
		}
	}
}

func port(t *testing.T, a net.Addr) int {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// advert is what the browser resolved for one service type.
type advert struct {
	Type      string            `json:"type"`
	Name      string            `json:"name"`
	Port      int               `json:"port"`
	Addresses []string          `json:"addresses"`
	TXT       map[string]string `json:"txt"`
}

// check compares a resolved service with what the server listens on.
func check(a advert, wantPort int, domain, fp string) error {
	var errs []string
	if a.Port != wantPort {
		errs = append(errs, fmt.Sprintf("port %d, want %d", a.Port, wantPort))
	}
	if a.TXT[discover.KeyDomain] != domain {
		errs = append(errs, fmt.Sprintf("TXT domain=%q, want %q", a.TXT[discover.KeyDomain], domain))
	}
	if a.TXT[discover.KeyFingerprint] != fp {
		errs = append(errs, fmt.Sprintf("TXT fp=%q, want %q", a.TXT[discover.KeyFingerprint], fp))
	}
	if a.TXT[discover.KeyVersion] != server.Version {
		errs = append(errs, fmt.Sprintf("TXT ver=%q, want %q", a.TXT[discover.KeyVersion], server.Version))
	}
	if !strings.HasPrefix(a.Name, domain+".") { // "gateway.test._xmpp-client._tcp.local."
		errs = append(errs, fmt.Sprintf("instance %q, want the domain %q", a.Name, domain))
	}
	hasLoopback := false
	for _, ip := range a.Addresses {
		hasLoopback = hasLoopback || ip == "127.0.0.1"
	}
	if !hasLoopback {
		errs = append(errs, fmt.Sprintf("addresses %v, want 127.0.0.1 (the listeners' address)", a.Addresses))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: %s", a.Type, strings.Join(errs, "; "))
	}
	return nil
}

// Python's zeroconf resolves all four services with the listeners' real
// ports and a TXT record whose fingerprint is the certificate's.
func TestZeroconfSeesAdvertisement(t *testing.T) {
	needZeroconf(t)
	if !inOwnNetwork(t) {
		return
	}
	srv, cfg := gateway(t)
	addrs := srv.Addrs() // c2s, c2s_tls, s2s: the order Start opens them
	if len(addrs) < 3 || srv.DevicesAddr() == nil {
		t.Fatalf("listeners %v, devices %v", addrs, srv.DevicesAddr())
	}
	want := map[string]int{
		discover.Client:    port(t, addrs[0]),
		discover.ClientTLS: port(t, addrs[1]),
		discover.Server:    port(t, addrs[2]),
		discover.Device:    port(t, srv.DevicesAddr()),
	}
	fp := certFingerprint(t, srv)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"browse.py", "40"}
	for typ := range want {
		args = append(args, typ)
	}
	out, err := exec.CommandContext(ctx, python, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("browse.py: %v\n%s", err, out)
	}
	got := map[string]advert{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "FOUND "); ok {
			var a advert
			if err := json.Unmarshal([]byte(rest), &a); err != nil {
				t.Fatalf("browse.py printed %q: %v", rest, err)
			}
			got[a.Type] = a
		}
	}
	for typ, p := range want {
		a, ok := got[typ]
		if !ok {
			t.Errorf("zeroconf did not resolve %s\n%s", typ, out)
			continue
		}
		if err := check(a, p, cfg.Domain, fp); err != nil {
			t.Error(err)
		}
	}
	// The check catches a wrong fingerprint: the same advertisement
	// compared with another certificate's (one bit of the hash flipped).
	if a, ok := got[discover.Device]; ok {
		wrong := []byte(fp)
		wrong[len(wrong)-1] ^= 1
		if err := check(a, want[discover.Device], cfg.Domain, string(wrong)); err == nil || !strings.Contains(err.Error(), "TXT fp=") {
			t.Errorf("a wrong fingerprint went unnoticed: %v", err)
		}
	}
}

// devices/discover (what `roost device simulate` uses with no address)
// finds the gateway's DTLS port, domain and fingerprint; a type nobody
// advertises ends at ctx's deadline with an error.
func TestDiscoverFindsGateway(t *testing.T) {
	if !inOwnNetwork(t) {
		return
	}
	srv, cfg := gateway(t)
	fp := certFingerprint(t, srv)
	for _, c := range []struct {
		typ  string
		addr net.Addr
	}{{discover.Device, srv.DevicesAddr()}, {discover.Client, srv.Addrs()[0]}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		addr, domain, gotFP, err := discover.Find(ctx, c.typ)
		cancel()
		if err != nil {
			t.Fatalf("Find(%s): %v", c.typ, err)
		}
		if want := "127.0.0.1:" + strconv.Itoa(port(t, c.addr)); addr != want || domain != cfg.Domain || gotFP != fp {
			t.Errorf("Find(%s) = %s %s %s, want %s %s %s", c.typ, addr, domain, gotFP, want, cfg.Domain, fp)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if addr, _, _, err := discover.Find(ctx, "_nobody-here._udp"); err == nil {
		t.Fatalf("Find of an unadvertised type returned %s", addr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Find outlived its context by %v", d-2*time.Second)
	}
}
