package datagram_test

import (
	"io"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"roost/server"
)

// numbered matches the marker the server puts before a stanza (§5.1).
var numbered = regexp.MustCompile(`^<r xmlns='urn:xmpp:sm:3' seq='(\d+)'/>`)

// readUntil reads datagrams until one contains until (returns true) or
// the association ends (returns false), recording the numbers of the
// stanzas seen in seqs; it fails after within.
func readUntil(t *testing.T, c *dtls.Conn, until string, within time.Duration, seqs map[string]bool) bool {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(within))
	for {
		n, err := c.Read(buf)
		if err != nil {
			if until == "" && !isTimeout(err) {
				return false
			}
			if until == "" {
				t.Fatalf("device waiting for the server to end its session: %v", err)
			}
			t.Fatalf("device waiting for %q: %v", until, err)
		}
		d := string(buf[:n])
		if m := numbered.FindStringSubmatch(d); m != nil {
			seqs[m[1]] = true
		}
		if until != "" && strings.Contains(d, until) {
			return true
		}
	}
}

// String is the log so far.
func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func isTimeout(err error) bool {
	ne, ok := err.(interface{ Timeout() bool })
	return ok && ne.Timeout()
}

// waitLog waits for a line of the server's log containing s.
func (r *rig) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.logs.count(s) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", s, r.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAckWindowAndMaxUnackedFromConfig: devices.ack_window bounds what is
// in flight to a device that does not acknowledge, devices.max_unacked
// what is held for it: one more ends its session, and the messages held
// are not lost but reach the device at its next login.
func TestAckWindowAndMaxUnackedFromConfig(t *testing.T) {
	r := startWith(t, func(c *server.Config) { c.Devices.AckWindow, c.Devices.MaxUnacked = 2, 3 })
	o := r.owner(t)
	dev, _, err := r.device(t, r.psk)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[string]bool{}
	send(t, dev, "<r xmlns='urn:xmpp:sm:3' seq='1'/><presence/>")
	readUntil(t, dev, "h='1'", 5*time.Second, seqs)
	for i := 1; i <= 5; i++ {
		io.WriteString(o.conn, "<message to='sensor@localhost/device' type='chat'><body>m"+strconv.Itoa(i)+"</body></message>")
	}
	// The device never acknowledges: more than 3 held ends the session.
	if readUntil(t, dev, "", 10*time.Second, seqs) {
		t.Fatal("unreachable")
	}
	if len(seqs) != 2 {
		t.Fatalf("stanzas in flight to the device: numbers %v, want 2 (devices.ack_window)", seqs)
	}
	r.waitLog(t, `reason="too many unacknowledged stanzas"`)
	dev.Close()
	again, _, err := r.device(t, r.psk)
	if err != nil {
		t.Fatal(err)
	}
	send(t, again, "<presence/>")
	got := map[string]bool{}
	body := regexp.MustCompile(`<body>(m\d)</body>`)
	buf := make([]byte, 4096)
	again.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < 5 {
		n, err := again.Read(buf)
		if err != nil {
			t.Fatalf("at the next login the device got %v of m1..m5: %v", got, err)
		}
		if m := body.FindStringSubmatch(string(buf[:n])); m != nil {
			got[m[1]] = true
		}
	}
}

// TestAckRetriesFromConfig: with devices.ack_retries 1 a device that stops
// acknowledging is gone after two timeouts (0.5 s + 1 s), not the
// default eight (about 40 s).
func TestAckRetriesFromConfig(t *testing.T) {
	r := startWith(t, func(c *server.Config) { c.Devices.AckRetries = 1 })
	o := r.owner(t)
	dev, _, err := r.device(t, r.psk)
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[string]bool{}
	send(t, dev, "<r xmlns='urn:xmpp:sm:3' seq='1'/><presence/>")
	readUntil(t, dev, "h='1'", 5*time.Second, seqs)
	io.WriteString(o.conn, "<message to='sensor@localhost/device' type='chat'><body>ack me</body></message>")
	start := time.Now()
	readUntil(t, dev, "", 10*time.Second, seqs)
	r.waitLog(t, `reason="no acknowledgement from the device"`)
	t.Logf("gone after %s", time.Since(start).Round(time.Millisecond))
}

// TestSocketBufferFromConfig: the listener asks for
// devices.socket_buffer_bytes (Linux reports twice what it grants,
// socket(7)).
func TestSocketBufferFromConfig(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the receive buffer is sized on Linux only")
	}
	const want = 128 << 10
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
		if v, _ := strconv.Atoi(strings.TrimSpace(string(b))); v < want {
			t.Skipf("net.core.rmem_max %d is below %d", v, want)
		}
	}
	r := startWith(t, func(c *server.Config) { c.Devices.SocketBufferBytes = want })
	if r.logs.count("receive_buffer="+strconv.Itoa(2*want)) != 1 {
		t.Fatalf("want receive_buffer=%d in the log:\n%s", 2*want, r.logs.String())
	}
}
