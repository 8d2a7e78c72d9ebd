package uplink

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"roost/server/stanza"
	"roost/server/xmlscan"
)

// fakeUpstream is a component port on loopback: it checks the handshake
// against secret and then runs serve on the stream.
type fakeUpstream struct {
	ln       net.Listener
	secret   string
	mu       sync.Mutex
	attempts int
	serve    func(nc net.Conn, scan *xmlscan.Scanner)
}

func newUpstream(t *testing.T, secret string, serve func(net.Conn, *xmlscan.Scanner)) *fakeUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUpstream{ln: ln, secret: secret, serve: serve}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.attempts++
			u.mu.Unlock()
			go u.handle(nc)
		}
	}()
	return u
}

func (u *fakeUpstream) handle(nc net.Conn) {
	defer nc.Close()
	scan := xmlscan.New(nc, xmlscan.Limits{})
	if tok, err := scan.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		return
	}
	nc.Write([]byte("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='abc123' from='gw.test'>"))
	tok, err := scan.Next()
	if err != nil {
		return
	}
	sum := sha1.Sum([]byte("abc123" + u.secret))
	if !bytes.Contains(tok.Raw, []byte(hex.EncodeToString(sum[:]))) {
		nc.Write([]byte("<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"))
		return
	}
	nc.Write([]byte("<handshake/>"))
	if u.serve != nil {
		u.serve(nc, scan)
	}
}

func (u *fakeUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.attempts
}

type inbox struct {
	mu  sync.Mutex
	got []string
	ups int
}

func (i *inbox) FromUplink(st *stanza.Stanza) {
	i.mu.Lock()
	i.got = append(i.got, string(st.Tok.Raw))
	i.mu.Unlock()
}

func (i *inbox) LinkUp() { i.mu.Lock(); i.ups++; i.mu.Unlock() }

func quietLog(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A wrong secret is logged as such and retried with backoff, not in a
// hot loop.
func TestWrongSecretBacksOff(t *testing.T) {
	up := newUpstream(t, "right", nil)
	var logs syncBuf
	l := New(Config{Address: up.ln.Addr().String(), Domain: "gw.test", Secret: "wrong", MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}, &inbox{}, quietLog(&logs))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	time.Sleep(2 * time.Second)
	cancel()
	// Waits are 100-200, 200-400, 400-800, 500-1000 ms: at most 5 tries in 2 s.
	if n := up.count(); n < 2 || n > 6 {
		t.Fatalf("%d connection attempts in 2 s", n)
	}
	if !strings.Contains(logs.String(), "refused us; check uplink.component.domain and uplink.component.secret") || !strings.Contains(logs.String(), "not-authorized") {
		t.Fatalf("log does not say what is wrong:\n%s", logs.String())
	}
	if s := l.Status(); !strings.Contains(s, "down") || !strings.Contains(s, "not-authorized") {
		t.Fatalf("status: %s", s)
	}
}

// While down, iqs fail, messages queue (bounded) and go out in order on
// connect; what upstream sends arrives; a stanza from our own domain ends
// the stream with invalid-from, one to another domain with host-unknown.
func TestQueueAndAddressing(t *testing.T) {
	l := New(Config{Address: "127.0.0.1:1", Domain: "gw.test", Secret: "s", QueueMessages: 3, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, &inbox{}, quietLog(io.Discard))
	if err := l.Send(stanza.IQ, []byte("<iq/>")); err != ErrDown {
		t.Fatalf("iq while down: %v", err)
	}
	for i := range 3 {
		if err := l.Send(stanza.Message, []byte("<message to='a@remote' id='"+string(rune('1'+i))+"'/>")); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Send(stanza.Message, []byte("<message/>")); err != ErrQueueFull {
		t.Fatalf("past the bound: %v", err)
	}
	if err := l.Send(stanza.Presence, []byte("<presence/>")); err != nil {
		t.Fatalf("presence while down: %v", err)
	}

	received := make(chan string, 10)
	closing := make(chan string, 1)
	up := newUpstream(t, "s", func(nc net.Conn, scan *xmlscan.Scanner) {
		for range 3 {
			tok, err := scan.Next()
			if err != nil {
				return
			}
			received <- string(tok.Raw)
		}
		nc.Write([]byte("<message from='bob@remote/x' to='alice@gw.test'><body>hi</body></message>"))
		nc.Write([]byte("<message from='mallory@gw.test' to='alice@gw.test'/>"))
		b, _ := io.ReadAll(nc)
		closing <- string(b)
	})
	in := &inbox{}
	l.cfg.Address, l.in = up.ln.Addr().String(), in
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	for i := range 3 {
		select {
		case got := <-received:
			if !strings.Contains(got, "id='"+string(rune('1'+i))+"'") {
				t.Fatalf("message %d out of order: %s", i+1, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("queued messages not sent")
		}
	}
	select {
	case b := <-closing:
		if !strings.Contains(b, "<invalid-from") {
			t.Fatalf("a stanza from our own domain should end the stream with invalid-from: %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream was not closed")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.got) != 1 || !strings.Contains(in.got[0], "<body>hi</body>") || in.ups < 1 {
		t.Fatalf("inbound: %v, link-ups %d", in.got, in.ups)
	}
}

func TestHostUnknown(t *testing.T) {
	l := &Link{cfg: Config{Domain: "gw.test"}}
	for _, tc := range []struct {
		to, from string
		want     stanza.StreamCondition
	}{
		{"alice@gw.test", "bob@remote", ""},
		{"alice@other.test", "bob@remote", stanza.StreamHostUnknown},
		{"alice@gw.test", "gw.test", stanza.StreamInvalidFrom},
		{"alice@gw.test", "x@gw.test/r", stanza.StreamInvalidFrom},
	} {
		st := stanza.Stanza{To: []byte(tc.to), From: []byte(tc.from)}
		if got, _ := l.check(&st); got != tc.want {
			t.Errorf("to %s from %s: %q, want %q", tc.to, tc.from, got, tc.want)
		}
	}
	if got, _ := l.check(&stanza.Stanza{To: []byte("a@gw.test")}); got != stanza.StreamImproperAddressing {
		t.Errorf("no from: %q", got)
	}
}
