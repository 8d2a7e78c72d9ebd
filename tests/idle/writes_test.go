package idle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"roost/bench/load"
	"roost/storage"
)

// TestPresenceWritesNothing: ten sessions with mutual subscriptions change
// presence over and over; the store file must not change (presence is
// held in memory, never written: an SD card's wear is per write). In CI
// it runs for 3 s at 200 ms per change; ROOST_IDLE_WRITES=1h runs the
// measurement of issue 7 (every 10 s) and reports the bytes the server
// wrote to disk (/proc/PID/io write_bytes).
func TestPresenceWritesNothing(t *testing.T) {
	const n = 10
	span, every := 3*time.Second, 200*time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("ROOST_IDLE_WRITES")); err == nil && d > 0 {
		span, every = d, 10*time.Second
	}
	m := runRoost(t, "", false, func(st *storage.Store) {
		for i := 1; i <= n; i++ {
			if err := st.AddUser(fmt.Sprintf("u%d", i), "pw"); err != nil {
				t.Fatal(err)
			}
			for j := 1; j <= n; j++ {
				if j != i {
					st.PutRosterItem(fmt.Sprintf("u%d", i), storage.RosterItem{JID: fmt.Sprintf("u%d@localhost", j), Subscription: "both"})
				}
			}
		}
	})
	conns := make([]*load.Conn, n)
	heard := newPresenceLog()
	for i := range conns {
		c, err := load.Dial(load.Options{Target: m.c2s, Domain: "localhost", Password: "pw", TLS: true, Timeout: 10 * time.Second}, fmt.Sprintf("u%d", i+1), "w", true)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() { // read every broadcast, so the server never queues
			for {
				tok, err := c.Next()
				if err != nil {
					return
				}
				if string(tok.Local) == "presence" {
					from, _ := tok.Attr("from")
					heard.add(i, string(from), bytes.Contains(tok.Raw, []byte("<status>done</status>")))
				}
			}
		}()
		conns[i] = c
	}
	// Logins and initial presence have settled once every session has
	// heard every other's presence.
	heard.wait(t, "initial presence", func(seen, _ int) bool { return seen >= n-1 }, n)
	db := filepath.Join(m.dir, "roost-data", "roost.db")
	before, _ := os.ReadFile(db)
	fi0, _ := os.Stat(db)
	w0 := writeBytes(t, m.proc.Process.Pid)
	changes := 0
	shows := []string{"away", "chat", "dnd", "xa"}
	for end := time.Now().Add(span); time.Now().Before(end); time.Sleep(every) {
		for i, c := range conns {
			if err := c.Send([]byte("<presence><show>" + shows[(changes+i)%4] + "</show></presence>")); err != nil {
				t.Fatal(err)
			}
		}
		changes += n
	}
	// The server has handled every change once every session has heard a
	// last presence from each of the others (each sender's stanzas are
	// routed in order).
	for _, c := range conns {
		if err := c.Send([]byte("<presence><status>done</status></presence>")); err != nil {
			t.Fatal(err)
		}
	}
	heard.wait(t, "the last presence", func(_, done int) bool { return done >= n-1 }, n)
	after, _ := os.ReadFile(db)
	fi1, _ := os.Stat(db)
	w1 := writeBytes(t, m.proc.Process.Pid)
	t.Logf("%d presence changes by %d sessions over %s: store %d -> %d bytes, mtime changed %v; server wrote %d bytes to disk (/proc write_bytes)",
		changes, n, span, len(before), len(after), !fi0.ModTime().Equal(fi1.ModTime()), w1-w0)
	if !bytes.Equal(before, after) || !fi0.ModTime().Equal(fi1.ModTime()) {
		t.Fatal("presence changes wrote to the store")
	}
}

// writeBytes is what the process has caused to be written to storage.
func writeBytes(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Skipf("no /proc/PID/io here: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// presenceLog records, for each session, whose presence it has heard
// (by full JID, its own excluded) and who has sent the final "done".
type presenceLog struct {
	mu      sync.Mutex
	seen    map[int]map[string]bool
	done    map[int]map[string]bool
	changed chan struct{}
}

func newPresenceLog() *presenceLog {
	return &presenceLog{seen: map[int]map[string]bool{}, done: map[int]map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (p *presenceLog) add(session int, from string, done bool) {
	p.mu.Lock()
	own := fmt.Sprintf("u%d@localhost/w", session+1)
	if from != own && from != "" {
		if p.seen[session] == nil {
			p.seen[session], p.done[session] = map[string]bool{}, map[string]bool{}
		}
		p.seen[session][from] = true
		if done {
			p.done[session][from] = true
		}
	}
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// wait blocks until ok holds for each of the n sessions (given how many
// others it heard and how many said done), 30 s at most.
func (p *presenceLog) wait(t *testing.T, what string, ok func(seen, done int) bool, n int) {
	t.Helper()
	all := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i := range n {
			if !ok(len(p.seen[i]), len(p.done[i])) {
				return false
			}
		}
		return true
	}
	timeout := time.After(30 * time.Second)
	for !all() {
		select {
		case <-p.changed:
		case <-timeout:
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("%s: not heard by every session in 30 s (heard: %v, done: %v)", what, p.seen, p.done)
		}
	}
}
