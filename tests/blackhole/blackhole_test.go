// Package blackhole is issue 14's flaky-link test against Roost with real
// clients: slixmpp (its xep_0198 plugin) and aioxmpp (which negotiates
// XEP-0198 itself) log in through a TCP proxy in the test that forwards,
// then silently stops forwarding both ways without closing anything, as a
// Wi-Fi or cellular link that drops without a FIN does. Messages sent to
// the client's bare and full JID while the link is dead must each arrive
// exactly once, in order: after the client resumes, or, when the resume
// window passed, at its next login from offline storage with a delay
// stamp. Every message is counted.
package blackhole

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"roost/server"
	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

// result is the script's result line.
type result struct {
	Sent    []string `json:"sent"`
	Got     []string `json:"got"`
	Stamped int      `json:"stamped"`
	Bounced []string `json:"bounced"`
	Resumed bool     `json:"resumed"`
	IQ      string   `json:"iq"` // what became of an iq sent to the dead resource
}

func startRoost(t *testing.T, resume time.Duration) *server.Server {
	t.Helper()
	cfg := testutil.Config(t)
	cfg.Limits.ResumeTimeout = server.Duration(resume)
	// The server finds the dead link by itself (limits.idle_ping), as it
	// must for the offline case: nothing is closed on its side.
	cfg.Limits.IdlePing = server.Duration(time.Second)
	srv := testutil.Start(t, cfg)
	for _, u := range []string{"receiver", "sender"} {
		if err := srv.Store().AddUser(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	return srv
}

func TestBlackhole(t *testing.T) {
	testutil.Need(t, "python3-slixmpp", exec.Command(python, "-c", "import slixmpp.plugins.xep_0198").Run() == nil)
	testutil.Need(t, "python3-aioxmpp", exec.Command(python, "-c", "import aioxmpp").Run() == nil)
	for _, lib := range []string{"slixmpp", "aioxmpp"} {
		for _, which := range []string{"resume", "offline"} {
			t.Run(lib+"/"+which, func(t *testing.T) { play(t, lib, which) })
		}
	}
}

// play runs one case: cut the link, send, then resume (or wait for the
// session to be dropped and log in again), and account for every message.
func play(t *testing.T, lib, which string) {
	resume := 60 * time.Second
	if which == "offline" {
		resume = time.Second
	}
	srv := startRoost(t, resume)
	direct := srv.Addrs()[0].String()
	px := testutil.NewBlackhole(t, direct)
	sc := testutil.RunScript(t, lib+"/"+which, 120*time.Second, python, "receiver.py", lib, which, "--domain", srv.Config().Domain,
		"--via", px.Addr(), "--direct", direct, "--cafile", srv.CertPath(), "--n", "5")
	sc.Expect("ready", 40*time.Second)
	px.Cut()
	sc.Tell("cut")
	sc.Expect("sent", 30*time.Second)
	if which == "resume" {
		px.Restore()
		sc.Tell("restore")
	} else {
		// The server notices the dead link (idle_ping), waits the resume
		// window, and hands what it held to offline storage: only the
		// sender's session is left then.
		deadline := time.Now().Add(30 * time.Second)
		for srv.Sessions() != 1 {
			if time.Now().After(deadline) {
				sc.Fail("the receiver's session was not dropped within 30s (%d sessions)", srv.Sessions())
			}
			time.Sleep(20 * time.Millisecond)
		}
		sc.Tell("gone")
	}
	res := sc.Expect("result", 90*time.Second)
	var r result
	if err := json.Unmarshal([]byte(res), &r); err != nil {
		sc.Fail("result %q: %v", res, err)
	}
	t.Logf("%s/%s: %s", lib, which, res)
	if len(r.Bounced) != 0 {
		t.Errorf("bounced to the sender: %v", r.Bounced)
	}
	if strings.Join(r.Got, ",") != strings.Join(r.Sent, ",") {
		t.Errorf("want every message exactly once, in order:\n sent %v\n got  %v", r.Sent, r.Got)
	}
	switch which {
	case "resume":
		if !r.Resumed {
			t.Errorf("the client did not resume")
		}
	case "offline":
		if r.Stamped != len(r.Sent) {
			t.Errorf("%d of %d offline messages carry a delay stamp", r.Stamped, len(r.Sent))
		}
		if r.IQ != "service-unavailable" {
			t.Errorf("the iq sent to the dead resource: %q, want service-unavailable back to its sender", r.IQ)
		}
	}
}
