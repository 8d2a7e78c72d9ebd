package testutil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"roost/server"
)

// Start runs a Roost server for cfg inside the test and shuts it down when
// the test ends. It logs nothing unless ROOST_TEST_LOG is set (then
// everything, to stderr).
func Start(t testing.TB, cfg *server.Config) *server.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ROOST_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := server.New(cfg, log)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// Script is a client program (a python script with slixmpp or aioxmpp)
// the test drives line by line: it prints words the test waits for
// (Expect) and reads commands (Tell). Every wait has a deadline; a
// failure shows the script's whole output.
type Script struct {
	t          testing.TB
	name       string
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	lines      chan string
	transcript LockedBuffer
	stderr     LockedBuffer
	cancel     context.CancelFunc
}

// RunScript starts name with args, ended after timeout at the latest and
// when the test ends; label names it in failures.
func RunScript(t testing.TB, label string, timeout time.Duration, name string, args ...string) *Script {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	s := &Script{t: t, name: label, cancel: cancel, lines: make(chan string, 16)}
	s.cmd = exec.CommandContext(ctx, name, args...)
	s.cmd.Stderr = &s.stderr
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		cancel()
	})
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintln(&s.transcript, sc.Text())
			s.lines <- sc.Text()
		}
	}()
	return s
}

// Fail ends the test with what the script printed.
func (s *Script) Fail(format string, a ...any) {
	s.t.Helper()
	s.cmd.Process.Kill()
	s.t.Fatalf("%s: %s\nscript stdout:\n%s\nstderr:\n%s", s.name, fmt.Sprintf(format, a...), s.transcript.String(), s.stderr.String())
}

// Expect waits for the script's next line starting with word and returns
// the rest of it.
func (s *Script) Expect(word string, within time.Duration) string {
	s.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				s.Fail("the script ended before %q", word)
			}
			if rest, found := strings.CutPrefix(l, word); found {
				return strings.TrimSpace(rest)
			}
		case <-deadline.C:
			s.Fail("no %q within %v", word, within)
		}
	}
}

// Tell writes a command line to the script.
func (s *Script) Tell(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		s.Fail("tell %q: %v", line, err)
	}
}

// Finish closes the script's input and waits, within d, for it to exit
// successfully.
func (s *Script) Finish(d time.Duration) {
	s.t.Helper()
	s.stdin.Close()
	waited := make(chan error, 1)
	go func() { waited <- s.cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			s.t.Errorf("%s: script: %v\n%s", s.name, err, s.stderr.String())
		}
	case <-time.After(d):
		s.Fail("the script did not exit within %v", d)
	}
}

// Checks reads a script that reports one line "check NAME ok" (or
// "check NAME reason it failed") per assertion and "info ..." lines to
// log, until a line starting with "done"; then it finishes the script.
// Each name in want becomes a subtest that fails when the check failed or
// was never reached; any other check reported must be ok too.
func (s *Script) Checks(t *testing.T, within time.Duration, want ...string) {
	t.Helper()
	got := map[string]string{}
	var order []string
	for {
		line := s.Expect("", within)
		if strings.HasPrefix(line, "done") {
			break
		}
		if strings.HasPrefix(line, "info ") {
			t.Log(line)
			continue
		}
		rest, ok := strings.CutPrefix(line, "check ")
		if !ok {
			continue
		}
		name, res, _ := strings.Cut(rest, " ")
		if _, dup := got[name]; !dup {
			order = append(order, name)
		}
		got[name] = res
	}
	s.Finish(20 * time.Second)
	wanted := map[string]bool{}
	for _, name := range want {
		wanted[name] = true
		t.Run(name, func(t *testing.T) {
			switch res, ok := got[name]; {
			case !ok:
				t.Errorf("not reached (an earlier step failed)")
			case res != "ok":
				t.Errorf("%s", res)
			}
		})
	}
	for _, name := range order {
		if !wanted[name] && got[name] != "ok" {
			t.Errorf("%s: %s", name, got[name])
		}
	}
}

// C2SPort is the port of srv's client listener on 127.0.0.1, for
// scripts given a host and a port.
func C2SPort(t testing.TB, srv *server.Server) string {
	t.Helper()
	for _, a := range srv.Addrs() {
		if s := a.String(); strings.HasPrefix(s, "127.0.0.1:") {
			return strings.TrimPrefix(s, "127.0.0.1:")
		}
	}
	t.Fatalf("no client address in %v", srv.Addrs())
	return ""
}
