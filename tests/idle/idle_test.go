// Package idle measures what idle authenticated sessions cost the server:
// it starts the roost binary, opens N sessions over STARTTLS with a plain
// Go client (SASL PLAIN, bind, initial presence), and reads the server's
// RSS from /proc before and after. It only reports; it asserts nothing
// about the figures (they depend on the machine).
//
//	ROOST_IDLE_SESSIONS=1000 go test -run TestIdleSessionsRSS -v ./tests/idle/
package idle

import (
	"bufio"
	"bytes"
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

	"roost/storage"
)

func TestIdleSessionsRSS(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ROOST_IDLE_SESSIONS"))
	if n <= 0 {
		t.Skip("set ROOST_IDLE_SESSIONS=N to measure N idle sessions (./build.sh measure)")
	}
	m := runRoost(t, fmt.Sprintf(`"limits":{"connections_per_ip":%d,"sessions_per_user":%d}`, n+10, n+10), false, func(st *storage.Store) {
		for i := range n {
			if err := st.AddUser(fmt.Sprintf("idle%d", i), "pw"); err != nil {
				t.Fatal(err)
			}
		}
	})
	addr, tlsConf, srv := m.c2s, m.tls, m.proc
	before := rss(t, srv.Process.Pid)
	start := time.Now()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := session(addr, tlsConf, fmt.Sprintf("idle%d", i))
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("session: %v", err)
	}
	elapsed := time.Since(start)
	time.Sleep(time.Second)
	after := rss(t, srv.Process.Pid)
	per := float64(after.rss-before.rss) / float64(n)
	perAnon := float64(after.anon-before.anon) / float64(n)
	t.Logf("sessions=%d login_time=%s (%.0f/s) rss_before=%d KiB rss_after=%d KiB per_session=%.1f KiB (RssAnon %.1f KiB)",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), before.rss, after.rss, per, perAnon)
	for _, c := range conns {
		c.Close()
	}
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
