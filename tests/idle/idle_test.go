// Package idle measures what idle authenticated sessions cost the server:
// it starts the roost binary, opens N sessions with the load tool's client
// (bench/load: SASL PLAIN, bind, initial presence) over STARTTLS and then,
// against a fresh server, the same N over WebSocket (RFC 7395, wss), and
// reads the server's RSS from /proc before and after each. It only
// reports; it asserts nothing about the figures (they depend on the
// machine).
//
//	ROOST_IDLE_SESSIONS=1000 go test -run TestIdleSessionsRSS -v ./tests/idle/
//	ROOST_IDLE_SESSIONS=1000 go test -run 'TestIdleSessionsRSS/websocket' -v ./tests/idle/
package idle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roost/bench/load"
	"roost/storage"
)

// transports are the ways a client reaches the server, measured side by
// side: the same client code, only the transport differs.
var transports = []struct {
	name string
	opts func(m *measured) load.Options
}{
	{"tcp", func(m *measured) load.Options {
		return load.Options{Target: m.c2s, Domain: "localhost", Password: "pw", TLS: true, TLSConfig: m.tls, Timeout: 60 * time.Second}
	}},
	{"websocket", func(m *measured) load.Options {
		return load.Options{WebSocket: m.ws, Domain: "localhost", Password: "pw", TLSConfig: m.tls, Timeout: 60 * time.Second}
	}},
}

func TestIdleSessionsRSS(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ROOST_IDLE_SESSIONS"))
	if n <= 0 {
		t.Skip("set ROOST_IDLE_SESSIONS=N to measure N idle sessions (./build.sh measure)")
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { measureIdle(t, n, tr.name, tr.opts) })
	}
}

// measureIdle opens n idle sessions against a fresh server and reports
// the server's RSS per session.
func measureIdle(t *testing.T, n int, name string, opts func(*measured) load.Options) {
	m := runRoost(t, fmt.Sprintf(`"limits":{"connections_per_ip":%d,"sessions_per_user":%d}`, n+10, n+10), false, func(st *storage.Store) {
		for i := range n {
			if err := st.AddUser(fmt.Sprintf("idle%d", i), "pw"); err != nil {
				t.Fatal(err)
			}
		}
	})
	o := opts(m)
	before := rss(t, m.proc.Process.Pid)
	start := time.Now()
	conns := make([]*load.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := load.Dial(o, fmt.Sprintf("idle%d", i), "idle", true)
			if err != nil {
				errs <- err
				return
			}
			go drain(c) // keep reading whatever comes
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for err := range errs {
		t.Fatalf("%s session: %v", name, err)
	}
	elapsed := time.Since(start)
	time.Sleep(time.Second)
	after := rss(t, m.proc.Process.Pid)
	per := float64(after.rss-before.rss) / float64(n)
	perAnon := float64(after.anon-before.anon) / float64(n)
	t.Logf("%s: sessions=%d login_time=%s (%.0f/s) rss_before=%d KiB rss_after=%d KiB per_session=%.1f KiB (RssAnon %.1f KiB)",
		name, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), before.rss, after.rss, per, perAnon)
}

func drain(c *load.Conn) {
	for {
		if _, err := c.Next(); err != nil {
			return
		}
	}
}

// TestIdleWebSocketScenario: `roost bench -scenario idle` over WebSocket
// against a real `roost run` logs in 5 sessions and holds them. A sixth
// account, subscribed to the five, watches over TCP: it hears each
// session come online (login, bind, initial presence) and, only once
// the scenario is cancelled, go offline.
func TestIdleWebSocketScenario(t *testing.T) {
	const n = 5
	m := runRoost(t, "", false, func(st *storage.Store) {
		for i := 1; i <= n+1; i++ {
			if err := st.AddUser(fmt.Sprintf("user%d", i), fmt.Sprintf("pass%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i <= n; i++ {
			st.PutRosterItem(fmt.Sprintf("user%d", i), storage.RosterItem{JID: fmt.Sprintf("user%d@localhost", n+1), Subscription: "both"})
			st.PutRosterItem(fmt.Sprintf("user%d", n+1), storage.RosterItem{JID: fmt.Sprintf("user%d@localhost", i), Subscription: "both"})
		}
	})
	watcher, err := load.Dial(load.Options{Target: m.c2s, Domain: "localhost", Password: fmt.Sprintf("pass%d", n+1), TLS: true, TLSConfig: m.tls, Timeout: 10 * time.Second},
		fmt.Sprintf("user%d", n+1), "w", true)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	type presence struct {
		from      string
		available bool
	}
	heard := make(chan presence, 4*n)
	go func() {
		defer close(heard)
		for {
			tok, err := watcher.Next()
			if err != nil {
				return
			}
			if string(tok.Local) == "presence" {
				from, _ := tok.Attr("from")
				typ, _ := tok.Attr("type")
				heard <- presence{string(from), len(typ) == 0}
			}
		}
	}()
	// await collects presences until every one of the n idle sessions has
	// been heard available (or unavailable), 30 s at most.
	await := func(available bool, ended <-chan struct{}) {
		t.Helper()
		seen := map[string]bool{}
		timeout := time.After(30 * time.Second)
		for len(seen) < n {
			select {
			case p, ok := <-heard:
				if !ok {
					t.Fatal("the watcher's stream ended")
				}
				if strings.HasSuffix(p.from, "/idle") && p.available == available {
					seen[p.from] = true
				} else if strings.HasSuffix(p.from, "/idle") {
					t.Fatalf("presence from %s, available=%v, while waiting for available=%v", p.from, p.available, available)
				}
			case <-ended:
				t.Fatalf("the scenario ended with %d of %d sessions online", len(seen), n)
			case <-timeout:
				t.Fatalf("after 30 s heard %d of %d sessions (available=%v): %v", len(seen), n, available, seen)
			}
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	holding := &signalWriter{want: []byte("sessions open"), ch: make(chan struct{})}
	var res load.Result
	var runErr error
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		res, runErr = load.Run(ctx, load.Config{
			Options: load.Options{WebSocket: m.ws, Domain: "localhost", TLSConfig: m.tls},
			Users:   n, Prefix: "user", Password: "pass%d", Scenario: "idle", Duration: 10 * time.Minute,
			Progress: holding,
		})
	}()
	await(true, ended)
	select { // the scenario says it holds them
	case <-holding.ch:
	case <-ended:
		t.Fatalf("the scenario ended before holding its sessions: %v", runErr)
	case <-time.After(30 * time.Second):
		t.Fatal("the scenario did not report holding its sessions in 30 s")
	}
	cancel()
	await(false, nil)
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the scenario did not end when cancelled")
	}
	if runErr != nil || res.Logins != n || res.Errors != 0 {
		t.Fatalf("%+v %v", res, runErr)
	}
}

// signalWriter closes ch once what is written contains want.
type signalWriter struct {
	mu   sync.Mutex
	got  []byte
	want []byte
	ch   chan struct{}
	done bool
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, p...)
	if !w.done && bytes.Contains(w.got, w.want) {
		w.done = true
		close(w.ch)
	}
	return len(p), nil
}

type mem struct{ rss, anon int }

func rss(t *testing.T, pid int) mem {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var m mem
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			m.rss, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "RssAnon:" {
			m.anon, _ = strconv.Atoi(f[1])
		}
	}
	return m
}

const header = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

// session logs in one idle client: STARTTLS, PLAIN, bind, presence.
func session(addr string, conf *tls.Config, user string) (net.Conn, error) {
	return sessionTo(addr, conf, user, io.Discard)
}

// sessionTo is session with what arrives afterwards copied to sink.
func sessionTo(addr string, conf *tls.Config, user string, sink io.Writer) (net.Conn, error) {
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(raw)
	step := func(c io.Writer, send, want string) error {
		if send != "" {
			if _, err := io.WriteString(c, send); err != nil {
				return err
			}
		}
		return readUntil(r, want)
	}
	if err := step(raw, header, "</stream:features>"); err != nil {
		return nil, err
	}
	if err := step(raw, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<proceed"); err != nil {
		return nil, err
	}
	tc := tls.Client(raw, conf)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	r = bufio.NewReader(tc)
	if err := step(tc, header, "</stream:features>"); err != nil {
		return nil, err
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00pw"))
	if err := step(tc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+auth+"</auth>", "<success"); err != nil {
		return nil, err
	}
	if err := step(tc, header, "</stream:features>"); err != nil {
		return nil, err
	}
	if err := step(tc, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>idle</resource></bind></iq>", "</iq>"); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tc, "<presence/>"); err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	go io.Copy(sink, r) // keep reading whatever comes
	return tc, nil
}

func readUntil(r *bufio.Reader, want string) error {
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), want) {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			return fmt.Errorf("waiting for %q: %v (got %q)", want, err, got.String())
		}
		if strings.Contains(got.String(), "stream:error") {
			return fmt.Errorf("stream error: %s", got.String())
		}
	}
	return nil
}
