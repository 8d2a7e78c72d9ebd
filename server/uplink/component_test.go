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

	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// fakeUpstream is a component port on loopback: it checks the handshake
// against secret and then runs serve on the stream.
type fakeUpstream struct {
	ln       net.Listener
	secret   string
	mu       sync.Mutex
	attempts int
	at       chan time.Time // when each connection was accepted
	serve    func(nc net.Conn, scan *xmlscan.Scanner)
}

func newUpstream(t *testing.T, secret string, serve func(net.Conn, *xmlscan.Scanner)) *fakeUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUpstream{ln: ln, secret: secret, serve: serve, at: make(chan time.Time, 64)}
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
			select {
			case u.at <- time.Now():
			default:
			}
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
// hot loop: the gaps between attempts grow with the backoff steps.
func TestWrongSecretBacksOff(t *testing.T) {
	up := newUpstream(t, "right", nil)
	var logs syncBuf
	l := New(Config{Address: up.ln.Addr().String(), Domain: "gw.test", Secret: "wrong", MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}, &inbox{}, quietLog(&logs))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	// Waits are drawn from [step/2, step] with steps 200, 400, 800 ms:
	// attempt i+1 comes at least step_i/2 after attempt i.
	var at []time.Time
	deadline := time.After(10 * time.Second)
	for len(at) < 4 {
		select {
		case a := <-up.at:
			at = append(at, a)
		case <-deadline:
			t.Fatalf("only %d connection attempts in 10 s", len(at))
		}
	}
	for i, step := range []time.Duration{200, 400, 800} {
		// 20 ms of slack for the accept and the handshake read.
		if gap := at[i+1].Sub(at[i]); gap < step*time.Millisecond/2-20*time.Millisecond {
			t.Fatalf("attempt %d came %v after the previous one; the backoff step is %v", i+2, gap, step*time.Millisecond)
		}
	}
	waitFor(t, "the log to say what is wrong", func() bool {
		return strings.Contains(logs.String(), "refused us; check uplink.component.domain and uplink.component.secret") && strings.Contains(logs.String(), "not-authorized")
	})
	// Between attempts the status is down or connecting again, and keeps
	// the last error either way.
	if s := l.Status(); strings.Contains(s, ": up") || !strings.Contains(s, "not-authorized") {
		t.Fatalf("status: %s", s)
	}
	// "down since" is the first attempt's time, not the last retry's
	// (issue 17): four attempts later it has not moved.
	first := at[0].Truncate(time.Second)
	if s := l.Status(); !strings.Contains(s, "down since "+first.Format(time.RFC3339)) && !strings.Contains(s, "down since "+first.Add(-time.Second).Format(time.RFC3339)) {
		t.Fatalf("status %q: want down since %s, the first attempt", s, first.Format(time.RFC3339))
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
		// Our domain in another form is still our domain (RFC 7622 §3.2).
		{"alice@gw.test", "alice@GW.TEST/x", stanza.StreamInvalidFrom},
		{"alice@gw.test", "alice@gw.test.", stanza.StreamInvalidFrom},
		{"alice@gw.test", "alice@ｇｗ.ｔｅｓｔ", stanza.StreamInvalidFrom},
		{"alice@gw.test", "alice@Gw.Test./r", stanza.StreamInvalidFrom},
		{"alice@GW.test.", "bob@remote", ""},
		{"alice@gw.test", "bob@REMOTE.", ""},
		// Not addresses at all.
		{"alice@gw.test", "a@b@c", stanza.StreamImproperAddressing},
		{"a@b@c", "bob@remote", stanza.StreamImproperAddressing},
		{"alice@gw.test", "bob@remote&amp", stanza.StreamImproperAddressing},
		{"alice@gw.test", "", stanza.StreamImproperAddressing},
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

// An upstream speaking for our own users in any spelling of our domain
// (case, trailing dot, full width) ends the stream with invalid-from and
// none of its stanzas is passed in (issue 12, item 1).
func TestSpoofedOwnDomain(t *testing.T) {
	for _, from := range []string{"alice@GW.TEST/x", "alice@gw.test.", "alice@ｇｗ.ｔｅｓｔ/x", "gw.test."} {
		t.Run(from, func(t *testing.T) {
			closing := make(chan string, 1)
			up := newUpstream(t, "s", func(nc net.Conn, scan *xmlscan.Scanner) {
				nc.Write([]byte("<iq type='set' id='r1' from='" + from + "' to='alice@gw.test'><query xmlns='jabber:iq:roster'><item jid='mallory@evil.test'/></query></iq>"))
				nc.SetReadDeadline(time.Now().Add(10 * time.Second))
				b, _ := io.ReadAll(nc)
				closing <- string(b)
			})
			in := &inbox{}
			l := New(Config{Address: up.ln.Addr().String(), Domain: "gw.test", Secret: "s", MinBackoff: time.Minute}, in, quietLog(io.Discard))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go l.Run(ctx)
			select {
			case b := <-closing:
				if !strings.Contains(b, "<invalid-from") {
					t.Fatalf("want invalid-from, the stream ended with %q", b)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the stream was not closed")
			}
			in.mu.Lock()
			defer in.mu.Unlock()
			if len(in.got) != 0 {
				t.Fatalf("a spoofed stanza was passed in: %v", in.got)
			}
		})
	}
}

// While the link is down, held messages are bounded in bytes
// (uplink.component.queue_bytes) as well as in count.
func TestQueueBytes(t *testing.T) {
	l := New(Config{Address: "127.0.0.1:1", Domain: "gw.test", Secret: "s", QueueMessages: 100, QueueBytes: 100}, &inbox{}, quietLog(io.Discard))
	msg := []byte("<message to='a@remote' id='1'><body>" + strings.Repeat("x", 20) + "</body></message>") // 69 bytes
	if err := l.Send(stanza.Message, msg); err != nil {
		t.Fatal(err)
	}
	if err := l.Send(stanza.Message, msg); err != ErrQueueFull {
		t.Fatalf("past queue_bytes: %v, want ErrQueueFull", err)
	}
	if err := l.Send(stanza.Message, []byte("<message/>")); err != nil {
		t.Fatalf("a small one still fits: %v", err)
	}
}
