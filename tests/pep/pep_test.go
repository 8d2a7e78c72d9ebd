// Package pep tests personal eventing (XEP-0163) over pubsub (XEP-0060)
// and entity capabilities (XEP-0115) end to end: an in-process Roost on
// ephemeral loopback ports, real clients (Debian's slixmpp and aioxmpp)
// for the behaviour, and raw Go clients (bench/load) for the bad input
// that a library would not send (oversized items, node and caps floods).
package pep

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"roost/server"
	"roost/storage"
	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

// The accounts every scenario has (password "pw"): alice is the owner;
// bob, carol, eve and frank have a both subscription with her; dave has
// none.
var (
	users    = []string{"alice", "bob", "carol", "dave", "eve", "frank"}
	contacts = []string{"bob", "carol", "eve", "frank"}
)

// needPython skips (or fails under ROOST_ACCEPTANCE=require) when
// Debian's python cannot import module.
func needPython(t *testing.T, module string) {
	t.Helper()
	err := exec.Command(python, "-c", "import "+module).Run()
	testutil.Need(t, "python3-"+module+" for "+python, err == nil)
}

// startPEP runs a server with the accounts and rosters above; tune may
// change the config first.
func startPEP(t *testing.T, tune func(*server.Config)) *server.Server {
	t.Helper()
	cfg := testutil.Config(t)
	if tune != nil {
		tune(cfg)
	}
	srv := testutil.Start(t, cfg)
	st := srv.Store()
	for _, u := range users {
		if err := st.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	d := cfg.Domain
	for _, c := range contacts {
		if _, err := st.PutRosterItem("alice", storage.RosterItem{JID: c + "@" + d, Subscription: "both"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutRosterItem(c, storage.RosterItem{JID: "alice@" + d, Subscription: "both"}); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// runChecks runs one scenario of script and turns each expected check
// into a subtest; a check the script never reported fails too, and so
// does any other check it reported failed (a client that could not log
// in, caps never queried).
func runChecks(t *testing.T, srv *server.Server, script, scenario string, want ...string) {
	t.Helper()
	args := []string{script, scenario, "--port", testutil.C2SPort(t, srv), "--domain", srv.Config().Domain, "--cafile", srv.CertPath()}
	if dir := os.Getenv("ROOST_PEP_DEBUG"); dir != "" {
		// The clients' XMPP traffic, for reading after a failure.
		args = append(args, "--debug", filepath.Join(dir, strings.TrimSuffix(script, ".py")+"-"+scenario+".log"))
	}
	sc := testutil.RunScript(t, script+" "+scenario, 150*time.Second, python, args...)
	sc.Checks(t, 140*time.Second, want...)
}

func TestSlixmppNotify(t *testing.T) {
	needPython(t, "slixmpp")
	srv := startPEP(t, nil)
	runChecks(t, srv, "pep_slix.py", "notify", "publish", "notify-both-contact", "notify-payload", "notify-from-bare", "notify-owner-resource",
		"no-notify-without-plus-notify", "no-notify-without-subscription", "no-notify-wrong-caps-hash",
		"items-owner", "items-contact", "items-stranger-refused")
}

func TestSlixmppLastItem(t *testing.T) {
	needPython(t, "slixmpp")
	srv := startPEP(t, nil)
	runChecks(t, srv, "pep_slix.py", "lastitem", "publish-20.0", "publish-21.0", "last-item-on-login", "last-item-is-latest",
		"subscribe", "last-item-on-subscribe", "publish-after-subscribe", "notify-explicit-subscriber",
		"last-item-once", "last-item-not-on-every-presence", "last-item-new-resource")
}

func TestSlixmppRetract(t *testing.T) {
	needPython(t, "slixmpp")
	srv := startPEP(t, nil)
	runChecks(t, srv, "pep_slix.py", "retract", "publish", "notify", "retract", "retract-notification",
		"retracted-gone", "retract-by-contact-refused")
}

func TestSlixmppMaxItems(t *testing.T) {
	needPython(t, "slixmpp")
	srv := startPEP(t, nil)
	runChecks(t, srv, "pep_slix.py", "maxitems", "create", "configure-max-items", "configure-read-back",
		"publish-i1", "publish-i5", "max-items-kept", "items-max-items-2", "items-by-id",
		"configure-beyond-pep-max-items-refused")
}

func TestSlixmppWhitelist(t *testing.T) {
	needPython(t, "slixmpp")
	srv := startPEP(t, nil)
	runChecks(t, srv, "pep_slix.py", "whitelist", "create", "configure-whitelist", "publish",
		"whitelist-items-refused", "whitelist-no-notification", "whitelist-subscribe-refused", "whitelist-owner-reads")
}

func TestSlixmppPurgeDelete(t *testing.T) {
	needPython(t, "slixmpp")
	srv := startPEP(t, nil)
	runChecks(t, srv, "pep_slix.py", "purgedelete", "publish", "notify", "purge-by-contact-refused",
		"delete-by-contact-refused", "purge", "purge-notification", "purged-empty", "delete",
		"delete-notification", "deleted-gone")
}

// envInt is a test size from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestAioxmpp(t *testing.T) {
	needPython(t, "aioxmpp")
	srv := startPEP(t, nil)
	runChecks(t, srv, "pep_aioxmpp.py", "all", "publish", "last-item-on-login", "publish-again", "notify-both-contact",
		"notify-from-bare", "no-notify-without-plus-notify", "items-contact", "retract", "retract-notification", "retracted-gone")
}

// TestOwnServiceReplyFrom: a pubsub request without 'to' is for the
// sender's own account (XEP-0163 §3, RFC 6120 §10.3.3); its answer comes
// from the account's bare JID (or without 'from'), never from the
// domain: clients match answers by the address they asked (aioxmpp
// drops any other and waits forever).
func TestOwnServiceReplyFrom(t *testing.T) {
	srv := startPEP(t, nil)
	alice := dialRaw(t, srv, "alice", []byte("<presence/>"), nil)
	bare := "alice@" + srv.Config().Domain
	for _, tc := range []struct{ name, typ, payload string }{
		{"publish", "set", publishXML(nsSensor, "temperature", readingXML("21.5"))},
		{"items", "get", itemsXML(nsSensor)},
		{"error", "get", itemsXML("urn:roost:test:missing")},
	} {
		got := alice.iq("own-"+tc.name, tc.typ, "", tc.payload)
		if from := attr(got, "from"); from != "" && from != bare {
			t.Errorf("%s without 'to': answered from %q, want %s or no 'from': %.300s", tc.name, from, bare, got)
		}
	}
}
