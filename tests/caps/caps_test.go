// Package caps tests XEP-0115 entity capabilities end to end (issue 16):
// real slixmpp clients (xep_0030, xep_0115, xep_0163 with a PEP interest
// in urn:roost:sensor:0) against an in-process Roost.
//
//   - The server's stream features carry a caps element whose ver is
//     slixmpp's own hash of the server's disco#info answer (§6.3).
//   - A client whose presence claims a ver it does not answer to (a wrong
//     hash) is queried, and its features are not cached (§5.4 step 3.8):
//     an honest client advertising the same ver afterwards is queried
//     again rather than trusted.
//   - The honest client's answer is verified and cached: a third client
//     with the same ver is not queried at all, and (through the server's
//     Caps accessor, when it has one) its features include
//     urn:roost:sensor:0+notify.
package caps

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"roost/server"
	"roost/server/caps"
	"roost/tests/testutil"
	"roost/wire/jid"
)

const python = "/usr/bin/python3"

const notify = "urn:roost:sensor:0+notify"

func needSlixmpp(t *testing.T) {
	t.Helper()
	err := exec.Command(python, "-c", "import slixmpp.plugins.xep_0115, slixmpp.plugins.xep_0163").Run()
	testutil.Need(t, "python3-slixmpp for "+python, err == nil)
}

type env struct {
	t      *testing.T
	srv    *server.Server
	host   string
	port   string
	domain string
	cafile string
}

func start(t *testing.T, users ...string) *env {
	t.Helper()
	needSlixmpp(t)
	srv := testutil.Start(t, testutil.Config(t))
	for _, u := range users {
		if err := srv.Store().AddUser(u, "pw-"+u); err != nil {
			t.Fatal(err)
		}
	}
	host, port, err := net.SplitHostPort(srv.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, host: host, port: port, domain: srv.Config().Domain, cafile: srv.CertPath()}
}

// client runs caps_client.py as user; lie makes it answer the server's
// caps query without the +notify feature its ver was computed with.
func (e *env) client(user string, lie bool) *testutil.Script {
	e.t.Helper()
	args := []string{"caps_client.py", e.host, e.port, user + "@" + e.domain, "pw-" + user, "--cafile", e.cafile}
	if lie {
		args = append(args, "--lie")
	}
	if os.Getenv("ROOST_TEST_LOG") != "" {
		args = append(args, "--debug")
	}
	return testutil.RunScript(e.t, user, 60*time.Second, python, args...)
}

// cacheOf is the server's caps cache when server.Server exposes it
// (a Caps() accessor); ok is false otherwise.
func cacheOf(srv *server.Server) (*caps.Cache, bool) {
	c, ok := any(srv).(interface{ Caps() *caps.Cache })
	if !ok {
		return nil, false
	}
	return c.Caps(), true
}

// waitHas polls the server's cache for full's feature until want or the
// deadline.
func waitHas(t *testing.T, c *caps.Cache, full string, feature string, want bool) {
	t.Helper()
	j, err := jid.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Has(j, feature) != want {
		if time.Now().After(deadline) {
			t.Fatalf("Has(%s, %s) = %v after 10s", full, feature, !want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServerStreamCaps is (c): the caps element of the stream features
// has the ver slixmpp computes from the server's own disco#info answer,
// both to node#ver and to the root.
func TestServerStreamCaps(t *testing.T) {
	e := start(t, "alice")
	c := e.client("alice", false)
	f := strings.Fields(c.Expect("SERVERCAPS", 30*time.Second))
	if len(f) != 3 || f[0] != "sha-1" || f[1] != caps.Node || f[2] == "" {
		c.Fail("stream features caps %q: want sha-1 %s VER", f, caps.Node)
	}
	v := strings.Fields(c.Expect("SERVERVER", 20*time.Second))
	if len(v) != 2 || v[0] != f[2] || v[1] != f[2] {
		c.Fail("server ver %s, slixmpp's hash of its answer to node#ver and to the root: %q", f[2], v)
	}
	c.Expect("SYNCED", 20*time.Second)
	c.Tell("quit")
	c.Finish(10 * time.Second)
}

// TestClientCaps is (a) and (b): a wrong hash is not cached, an honest
// answer is, and the honest client's features include the +notify
// interest.
func TestClientCaps(t *testing.T) {
	e := start(t, "liar", "alice", "bob")
	cache, haveCache := cacheOf(e.srv)
	if !haveCache {
		t.Log("server.Server has no Caps() accessor: Has is checked through the queries the clients see")
	}

	// The liar claims the ver of the +notify feature set but answers
	// without it: queried once, not trusted.
	liar := e.client("liar", true)
	liarJID := liar.Expect("JID", 30*time.Second)
	ver := liar.Expect("VER", 20*time.Second)
	if q := liar.Expect("QUERIED", 20*time.Second); !strings.HasSuffix(q, "#"+ver) {
		liar.Fail("the server queried node %q, want NODE#%s", q, ver)
	}
	if a := liar.Expect("ANSWERED", 20*time.Second); strings.Contains(a, notify) {
		liar.Fail("the liar answered with %s: the test needs it missing (%s)", notify, a)
	}
	if n := liar.Expect("SYNCED", 20*time.Second); n != "1" {
		liar.Fail("the liar got %s caps queries, want 1", n)
	}
	if haveCache {
		waitHas(t, cache, liarJID, notify, false)
	}

	// An honest client with the same ver: the lie was not cached, so it
	// is queried.
	alice := e.client("alice", false)
	aliceJID := alice.Expect("JID", 30*time.Second)
	if v := alice.Expect("VER", 20*time.Second); v != ver {
		alice.Fail("alice's ver %s differs from the liar's %s: the test needs them equal", v, ver)
	}
	if q := alice.Expect("QUERIED", 20*time.Second); !strings.HasSuffix(q, "#"+ver) {
		alice.Fail("the server queried node %q, want NODE#%s", q, ver)
	}
	if a := alice.Expect("ANSWERED", 20*time.Second); !strings.Contains(a, notify) {
		alice.Fail("alice answered without %s: %s", notify, a)
	}
	if n := alice.Expect("SYNCED", 20*time.Second); n != "1" {
		alice.Fail("alice got %s caps queries, want 1", n)
	}
	if haveCache {
		waitHas(t, cache, aliceJID, notify, true)
		if j, _ := jid.Parse(liarJID); cache.Has(j, notify) {
			t.Fatal("the liar's features were set from alice's answer")
		}
	}

	// A third client with the same ver is trusted from the cache: no
	// query before the round trip that follows its presence.
	bob := e.client("bob", false)
	bobJID := bob.Expect("JID", 30*time.Second)
	if v := bob.Expect("VER", 20*time.Second); v != ver {
		bob.Fail("bob's ver %s differs from %s", v, ver)
	}
	if n := bob.Expect("SYNCED", 20*time.Second); n != "0" {
		bob.Fail("bob was queried %s times: alice's verified ver was not cached", n)
	}
	if haveCache {
		waitHas(t, cache, bobJID, notify, true)
	}

	for _, s := range []*testutil.Script{liar, alice, bob} {
		s.Tell("quit")
		s.Finish(10 * time.Second)
	}
	if haveCache {
		// Unavailable: forgotten.
		waitHas(t, cache, aliceJID, notify, false)
	}
}

// TestVerFlood is the bad-input case of issue 16: one client sends
// thousands of presences, each advertising a new ver. Each brings one
// query (none is asked twice); the server stays responsive and, through
// the Caps accessor when there is one, its tables stay within
// pep.caps_cache.
func TestVerFlood(t *testing.T) {
	const max, n = 50, 2000
	needSlixmpp(t)
	cfg := testutil.Config(t)
	cfg.PEP.CapsCache = max
	srv := testutil.Start(t, cfg)
	if err := srv.Store().AddUser("flood", "pw-flood"); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(srv.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, host: host, port: port, domain: cfg.Domain, cafile: srv.CertPath()}
	c := e.client("flood", false)
	full := c.Expect("JID", 30*time.Second)
	c.Expect("SYNCED", 20*time.Second)
	c.Tell(fmt.Sprintf("flood %d", n))
	if got := c.Expect("FLOODED", 60*time.Second); got != strconv.Itoa(n) {
		c.Fail("%s caps queries for %d presences with distinct vers, want %d", got, n, n)
	}
	if cache, ok := cacheOf(srv); ok {
		vers, pending, entities := cache.Sizes()
		if vers > max || pending > max || entities > 1 {
			t.Fatalf("after the flood: vers=%d pending=%d entities=%d, want vers and pending <= %d and one entity", vers, pending, entities, max)
		}
		j, _ := jid.Parse(full)
		if cache.Has(j, notify) {
			t.Fatal("features kept across a ver change")
		}
	}
	c.Tell("quit")
	c.Finish(10 * time.Second)
}
