package idle

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	for i := range conns {
		c, err := load.Dial(load.Options{Target: m.c2s, Domain: "localhost", Password: "pw", TLS: true, Timeout: 10 * time.Second}, fmt.Sprintf("u%d", i+1), "w", true)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() { // read every broadcast, so the server never queues
			for {
				if _, err := c.Next(); err != nil {
					return
				}
			}
		}()
		conns[i] = c
	}
	time.Sleep(500 * time.Millisecond) // logins and initial presence settle
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
	time.Sleep(300 * time.Millisecond)
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
