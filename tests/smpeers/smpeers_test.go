// Package smpeers runs one XEP-0198 scenario behind a dead link against
// Roost and against the real Prosody and ejabberd of tests/peers (their
// stream-management modules on, a short resume timeout), and prints the
// results side by side: issue 14's "Tests that must exist".
//
// For each server, blackhole_sm.py logs a slixmpp receiver in through a
// testutil.Blackhole with SM and resumption enabled, the link is cut, a
// sender sends N chat messages to the receiver's bare JID and N to its full
// JID, and then either the receiver reconnects and resumes ("resume") or the
// connection ends and the resume timeout passes before a fresh login
// ("timeout"). Every message is accounted for: delivered after resume,
// delivered from offline storage (with a XEP-0203 delay stamp), bounced to
// the sender, or lost. A third case, "relogin", logs the fresh client in
// at once as a new resource while the old session still waits for its
// resume, and counts what reaches it once the old session is gone.
package smpeers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roost/server"
	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

// peersDir is the state directory tests/uplink and tests/federation use
// too (under testutil.LockPeers), apart from bench/compare.sh's.
const peersDir = "/tmp/roost-peers-test"

// resumeTimeout is every server's resume window in this test (seconds):
// short, so the "timeout" case stays quick. XEP-0198 §5 leaves it to the
// server.
const resumeTimeout = 3

// messages is N: messages to the bare JID, and as many to the full JID.
const messages = 5

// cases are the scenarios of blackhole_sm.py, in the order they run.
var cases = []string{"resume", "timeout", "relogin"}

// target is one server under test.
type target struct {
	name, domain string
	c2s          string     // direct address of its client port
	cafile       string     // certificate to trust; "" for the peers' self-signed ones
	users        [2]string  // receiver, sender
	pass         [2]string  //
	rows         *[]outcome // where the results go
}

// outcome is the script's result line.
type outcome struct {
	Server      string   `json:"-"`
	Case        string   `json:"case"`
	SM          bool     `json:"sm"`
	Resumed     bool     `json:"resumed"`
	Sent        int      `json:"sent"`
	AfterResume int      `json:"after_resume"`
	Fresh       int      `json:"fresh"`
	Stamped     int      `json:"stamped"`
	Live        int      `json:"live"`
	Bounced     int      `json:"bounced"`
	Lost        int      `json:"lost"`
	Duplicates  int      `json:"duplicates"`
	InOrder     bool     `json:"in_order"`
	Marker      bool     `json:"marker"`
	ExpiredS    *float64 `json:"expired_after_s"`
}

func TestBlackholeSideBySide(t *testing.T) {
	testutil.Need(t, "python3-slixmpp", exec.Command(python, "-c", "import slixmpp.plugins.xep_0198").Run() == nil)
	var rows []outcome
	out := os.Getenv("SMPEERS_TABLE")
	if out == "" {
		out = filepath.Join(t.TempDir(), "smpeers.md")
	}
	t.Cleanup(func() { report(t, rows, out) })

	t.Run("roost", func(t *testing.T) {
		srv := startRoost(t)
		for _, u := range []string{"receiver", "sender"} {
			if err := srv.Store().AddUser(u, "pw"); err != nil {
				t.Fatal(err)
			}
		}
		tg := target{name: "roost", domain: srv.Config().Domain, c2s: srv.Addrs()[0].String(), cafile: srv.CertPath(),
			users: [2]string{"receiver", "sender"}, pass: [2]string{"pw", "pw"}, rows: &rows}
		for _, c := range cases {
			o := run(t, tg, c)
			if !o.SM {
				t.Errorf("%s: Roost did not advertise urn:xmpp:sm:3", c)
				continue
			}
			checkNoLoss(t, o)
		}
	})
	for _, p := range []struct{ name, domain, c2s, ctl string }{
		{"prosody", "prosody.test", "127.0.0.1:16222", "prosodyctl"},
		{"ejabberd", "ejabberd.test", "127.0.0.1:26222", "ejabberdctl"},
	} {
		t.Run(p.name, func(t *testing.T) {
			_, err := exec.LookPath(p.ctl)
			testutil.Need(t, p.name, err == nil)
			testutil.LockPeers(t)
			peers(t, "wipe", p.name) // no messages or subscriptions left from an earlier run
			peers(t, "start", p.name)
			t.Cleanup(func() { peers(t, "stop", p.name) })
			peers(t, "users", p.name, "2")
			tg := target{name: p.name, domain: p.domain, c2s: p.c2s,
				users: [2]string{"user1", "user2"}, pass: [2]string{"pass1", "pass2"}, rows: &rows}
			for _, c := range cases {
				if o := run(t, tg, c); !o.SM {
					t.Errorf("%s did not enable stream management: is its SM module on in peers.sh?", p.name)
				}
			}
		})
	}
}

// checkNoLoss is issue 14's promise for Roost with SM: after a resume
// every message arrives exactly once and in order; after the resume
// timeout every message arrives at the next login from offline storage,
// delay-stamped.
func checkNoLoss(t *testing.T, o outcome) {
	t.Helper()
	switch o.Case {
	case "resume":
		if !o.Resumed || o.AfterResume != o.Sent {
			t.Errorf("resume: resumed=%v, %d of %d delivered after resume", o.Resumed, o.AfterResume, o.Sent)
		}
	case "timeout":
		if o.Fresh != o.Sent || o.Stamped != o.Sent {
			t.Errorf("timeout: %d of %d delivered at the next login, %d delay-stamped", o.Fresh, o.Sent, o.Stamped)
		}
	case "relogin":
		// The old session's messages go to the account's other
		// available resource when it is gone for good (stamped or not).
		if o.Fresh != o.Sent {
			t.Errorf("relogin: %d of %d delivered to the new resource", o.Fresh, o.Sent)
		}
	}
	if o.Lost != 0 || o.Duplicates != 0 || o.Bounced != 0 || !o.InOrder {
		t.Errorf("%s: lost %d, duplicates %d, bounced %d, in order %v; want none lost, none twice, in order",
			o.Case, o.Lost, o.Duplicates, o.Bounced, o.InOrder)
	}
}

// startRoost runs Roost in the test process with the default
// configuration and a short resume timeout.
func startRoost(t *testing.T) *server.Server {
	t.Helper()
	cfg := testutil.Config(t)
	cfg.Limits.ResumeTimeout = server.Duration(time.Duration(resumeTimeout) * time.Second)
	return testutil.Start(t, cfg)
}

func peers(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../peers/peers.sh", args...)
	cmd.Env = append(os.Environ(), "PEERS_DIR="+peersDir, fmt.Sprintf("PEERS_RESUME_TIMEOUT=%d", resumeTimeout))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peers.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// run plays one case against tg through a fresh blackhole and records
// its outcome.
func run(t *testing.T, tg target, which string) outcome {
	t.Helper()
	bh := testutil.NewBlackhole(t, tg.c2s)
	args := []string{"blackhole_sm.py", which, "--domain", tg.domain,
		"--receiver", tg.users[0], tg.pass[0], "--sender", tg.users[1], tg.pass[1],
		"--via", bh.Addr(), "--direct", tg.c2s, "--n", fmt.Sprint(messages),
		"--expire", fmt.Sprint(resumeTimeout + 20)}
	if tg.cafile != "" {
		args = append(args, "--cafile", tg.cafile)
	}
	sc := testutil.RunScript(t, tg.name+"/"+which, 60*time.Second, python, args...)
	sc.Expect("ready", 40*time.Second)
	bh.Cut()
	sc.Tell("cut")
	sc.Expect("sent", 30*time.Second)
	if which == "resume" {
		sc.Tell("reconnect")
	} else {
		bh.Close() // the server sees the connection end: its resume timer starts
		sc.Tell("closed")
	}
	res := sc.Expect("result", time.Duration(resumeTimeout+40)*time.Second)
	var o outcome
	if err := json.Unmarshal([]byte(res), &o); err != nil {
		sc.Fail("result %q: %v", res, err)
	}
	o.Server = tg.name
	sc.Finish(10 * time.Second)
	t.Logf("%s/%s: %s", tg.name, which, res)
	*tg.rows = append(*tg.rows, o)
	return o
}

// report prints the side-by-side table in the test log and writes it to
// path ($SMPEERS_TABLE when set) for BENCHMARKS.md.
func report(t *testing.T, rows []outcome, path string) {
	if len(rows) == 0 {
		return
	}
	cells := [][]string{
		{"server", "case", "sent", "delivered after resume", "delivered at next login (delay-stamped)", "bounced", "lost", "duplicates", "in order", "notes"},
		{"---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---", "---"},
	}
	for _, o := range rows {
		var notes []string
		if !o.SM {
			notes = append(notes, "no SM offered")
		}
		if o.Case == "resume" && !o.Resumed {
			notes = append(notes, "not resumed: a new session")
		}
		if o.ExpiredS != nil {
			notes = append(notes, fmt.Sprintf("session gone %.1f s after the close", *o.ExpiredS))
		} else if o.Case != "resume" {
			notes = append(notes, "the sender never saw the session end")
		}
		if o.Live > 0 {
			notes = append(notes, fmt.Sprintf("%d through the dead link", o.Live))
		}
		order := "yes"
		if !o.InOrder {
			order = "no"
		}
		cells = append(cells, []string{o.Server, o.Case, fmt.Sprint(o.Sent), fmt.Sprint(o.AfterResume),
			fmt.Sprintf("%d (%d)", o.Fresh, o.Stamped), fmt.Sprint(o.Bounced), fmt.Sprint(o.Lost),
			fmt.Sprint(o.Duplicates), order, strings.Join(notes, "; ")})
	}
	width := make([]int, len(cells[0]))
	for _, r := range cells {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "XEP-0198 behind a blackhole: a slixmpp receiver, %d chat messages to its bare JID and %d to its full JID while the link is dead; resume timeout %d s. \"Next login\" is a new client after the resume timeout (timeout) or at once, as a new resource (relogin); delay-stamped means from offline storage.\n\n",
		messages, messages, resumeTimeout)
	for _, r := range cells {
		b.WriteString("|")
		for i, c := range r {
			if strings.HasPrefix(c, "---") {
				c = strings.Repeat("-", width[i]-len(c)+3) + c[3:]
			}
			fmt.Fprintf(&b, " %-*s |", width[i], c)
		}
		b.WriteString("\n")
	}
	t.Logf("\n%s", b.String())
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("write table: %v", err)
		return
	}
	t.Logf("table written to %s (set SMPEERS_TABLE=path to keep it)", path)
}
