// Package imext tests the IM extensions ordinary clients ask for at login
// (issue 16) end to end: an in-process Roost on an ephemeral loopback
// port and Debian's slixmpp: XEP-0191 blocking, XEP-0049 private storage
// (XEP-0048 bookmarks), XEP-0054 vcard-temp and XEP-0012 last activity.
package imext

import (
	"os/exec"
	"strconv"
	"testing"
	"time"

	"roost/server"
	"roost/storage"
	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

// vcardBytes is limits.vcard_bytes in these tests, small enough that an
// oversized vCard still fits in one stanza.
const vcardBytes = 4096

// start runs a server where alice and bob have a both subscription with
// each other and carol is nobody's contact (every password "pw").
func start(t *testing.T) *server.Server {
	t.Helper()
	err := exec.Command(python, "-c", "import slixmpp").Run()
	testutil.Need(t, "python3-slixmpp for "+python, err == nil)
	cfg := testutil.Config(t)
	cfg.Limits.VCardBytes = vcardBytes
	srv := testutil.Start(t, cfg)
	st := srv.Store()
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	d := cfg.Domain
	for _, p := range [][2]string{{"alice", "bob"}, {"bob", "alice"}} {
		if _, err := st.PutRosterItem(p[0], storage.RosterItem{JID: p[1] + "@" + d, Subscription: "both"}); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

// run runs one scenario of imext_slix.py; every name in want must be
// reported ok, and any other check reported must be ok too.
func run(t *testing.T, scenario string, want ...string) {
	t.Helper()
	srv := start(t)
	sc := testutil.RunScript(t, "imext_slix.py "+scenario, 150*time.Second, python, "imext_slix.py", scenario,
		"--port", testutil.C2SPort(t, srv), "--domain", srv.Config().Domain, "--cafile", srv.CertPath(),
		"--vcard-bytes", strconv.Itoa(vcardBytes))
	sc.Checks(t, 140*time.Second, want...)
}

// A login like profanity's: carbons, block list, bookmarks (private
// storage; PEP once XEP-0402 is answered), own vCard; all without error,
// and each feature in the server's disco#info.
func TestLogin(t *testing.T) {
	run(t, "login", "carbons-enable", "blocklist-get", "bookmarks-private-get", "bookmarks-private-set",
		"bookmarks-private-read-back", "vcard-own-get", "disco-urn:xmpp:blocking", "disco-jabber:iq:private",
		"disco-vcard-temp", "disco-jabber:iq:last")
}

// XEP-0191: blocking stops messages and presence both ways; the pushes
// reach the second resource; unblock restores.
func TestBlocking(t *testing.T) {
	run(t, "blocking", "blocklist-empty-one", "blocklist-empty-two", "presence-before", "block",
		"push-second-resource", "unavailable-to-blocked", "blocklist-has-bob", "blocked-sender-error",
		"blocked-message-not-delivered", "send-to-blocked-refused", "no-presence-from-blocked",
		"no-presence-to-blocked", "unblock-push-second-resource", "presence-to-unblocked",
		"presence-from-unblocked", "message-after-unblock")
}

// XEP-0054 across users, the size bound.
func TestVCard(t *testing.T) {
	run(t, "vcard", "vcard-set", "vcard-get-other", "vcard-get-unset-empty", "vcard-get-unknown-user",
		"vcard-set-other-forbidden", "vcard-oversize-refused", "vcard-oversize-not-kept")
}

// XEP-0012 for a contact, refused to a stranger (§5), and the uptime.
func TestLastActivity(t *testing.T) {
	run(t, "last", "last-server-uptime", "last-contact-offline", "last-stranger-forbidden", "last-contact-online-zero")
}
