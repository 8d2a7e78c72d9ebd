// Package profanity logs in with the real profanity console client (the
// one issue 16 was found with: at login it reported errors for carbons,
// its block list and its bookmarks), driven through tmux, and checks from
// its XMPP debug log that every request it sent was answered without an
// error, then blocks a contact from its own command line.
package profanity

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"roost/tests/testutil"
)

// term is profanity running in a tmux session of its own (its own
// server socket, so nothing else's tmux is touched).
type term struct {
	t      *testing.T
	socket string
}

func (m term) tmux(args ...string) string {
	m.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", m.socket}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (m term) screen() string { return m.tmux("capture-pane", "-p", "-t", "p") }

func (m term) typeLine(s string) {
	m.tmux("send-keys", "-t", "p", "-l", s)
	m.tmux("send-keys", "-t", "p", "Enter")
}

// waitFor waits for cond on the screen, the log or both.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool, show func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v:\n%s", what, within, show())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestProfanityLogin(t *testing.T) {
	for _, bin := range []string{"profanity", "tmux"} {
		_, err := exec.LookPath(bin)
		testutil.Need(t, bin, err == nil)
	}
	cfg := testutil.Config(t)
	srv := testutil.Start(t, cfg)
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Store().AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(srv.Addrs()[0].String())

	home := t.TempDir()
	m := term{t: t, socket: fmt.Sprintf("roost-prof-%d", os.Getpid())}
	env := fmt.Sprintf("env -i HOME=%s XDG_CONFIG_HOME=%s/.config XDG_DATA_HOME=%s/.local/share TERM=xterm-256color LANG=C.UTF-8 profanity -l DEBUG", home, home, home)
	m.tmux("new-session", "-d", "-s", "p", "-x", "200", "-y", "50", env)
	t.Cleanup(func() { exec.Command("tmux", "-L", m.socket, "kill-server").Run() })
	logPath := filepath.Join(home, ".local", "share", "profanity", "logs", "profanity.log")
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	show := func() string { return m.screen() + "\n--- log:\n" + readLog() }

	waitFor(t, "profanity's window", 20*time.Second, func() bool { return strings.Contains(m.screen(), "Profanity") }, show)
	m.typeLine("/connect alice@" + cfg.Domain + " server 127.0.0.1 port " + port + " tls trust")
	waitFor(t, "the password prompt", 20*time.Second, func() bool { return strings.Contains(m.screen(), "Enter password") }, show)
	m.typeLine("alice-pw")
	waitFor(t, "the login", 20*time.Second, func() bool { return strings.Contains(m.screen(), "logged in successfully") }, show)

	// What profanity asks at login (issue 16): each of these must have
	// been sent and answered with a result.
	asked := map[string]*regexp.Regexp{
		"carbons":   regexp.MustCompile(`<enable xmlns="urn:xmpp:carbons:2"/>`),
		"blocklist": regexp.MustCompile(`<blocklist xmlns="urn:xmpp:blocking"/>`),
		"bookmarks": regexp.MustCompile(`storage:bookmarks`),
	}
	sentIQ := regexp.MustCompile(`SENT: <iq id="([^"]+)"[^>]* type="(get|set)"`)
	answered := func(log string) (missing []string) {
		for _, line := range strings.Split(log, "\n") {
			m := sentIQ.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			if !regexp.MustCompile(`RECV: <iq id="` + regexp.QuoteMeta(m[1]) + `"[^>]*type="result"`).MatchString(log) {
				missing = append(missing, m[1])
			}
		}
		return missing
	}
	waitFor(t, "answers to every request of the login", 20*time.Second, func() bool {
		log := readLog()
		for _, re := range asked {
			if !re.MatchString(log) {
				return false
			}
		}
		return len(answered(log)) == 0
	}, func() string {
		return fmt.Sprintf("unanswered or refused: %v\n%s", answered(readLog()), show())
	})
	if log := readLog(); strings.Contains(log, `type="error"`) {
		t.Fatalf("the server answered an error to profanity at login:\n%s", log)
	}

	// Blocking from profanity's own command line works end to end.
	m.typeLine("/blocked add bob@" + cfg.Domain)
	waitFor(t, "the block", 10*time.Second, func() bool { return strings.Contains(m.screen(), "successfully blocked") }, show)
	m.typeLine("/blocked")
	waitFor(t, "the block list", 10*time.Second, func() bool {
		return strings.Contains(m.screen(), "Blocked users:") && strings.Contains(m.screen(), "  bob@"+cfg.Domain)
	}, show)
}
