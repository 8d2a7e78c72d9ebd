// Package uplink connects a gateway to a bigger XMPP deployment as an
// external component (XEP-0114): one outbound connection, made from
// behind NAT, over which Roost sends every stanza for a remote domain and
// receives every stanza for its own. Upstream (Prosody, ejabberd) routes
// the component's domain to it, so the gateway's users and devices are
// addressable from the whole network.
//
// The link keeps itself up: it reconnects with exponential backoff and
// jitter; while it is down iqs fail fast with remote-server-timeout,
// messages wait in a bounded queue and go out in order when it returns,
// and presence (state, not events) is dropped and re-sent on reconnect.
package uplink

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"roost/server/jid"
	"roost/server/stanza"
	"roost/server/xmlscan"
)

// NS is the content namespace of a component stream.
const NS = "jabber:component:accept"

// Config is the uplink.component section of the configuration.
type Config struct {
	Address string // upstream host:port
	Domain  string // the component's domain, which is Roost's domain
	Secret  string
	// QueueMessages bounds the messages kept while the link is down.
	QueueMessages int
	// MinBackoff and MaxBackoff bound the wait between attempts.
	MinBackoff, MaxBackoff time.Duration
	// Limits bound what the upstream may send in one stanza.
	Limits xmlscan.Limits
}

// Inbound takes the stanzas upstream routes to us. st is valid only
// during the call; from and to have been checked (to is in our domain,
// from is not).
type Inbound interface {
	FromUplink(st *stanza.Stanza)
	// LinkUp is called after each successful handshake, so that presence
	// can be re-sent to remote contacts.
	LinkUp()
}

// ErrDown is returned by Send for an iq while the link is down.
var ErrDown = errors.New("uplink down")

// ErrQueueFull is returned by Send for a message when the queue is full.
var ErrQueueFull = errors.New("uplink queue full")

// Link is the component connection and its state.
type Link struct {
	cfg Config
	log *slog.Logger
	in  Inbound

	mu      sync.Mutex
	conn    net.Conn // nil while down
	out     []byte   // stanzas waiting for the writer
	writing bool
	queue   [][]byte // messages held while down, in order
	state   string
	since   time.Time
	lastErr string
	wake    chan struct{}
}

// New prepares a link; Run connects it.
func New(cfg Config, in Inbound, log *slog.Logger) *Link {
	if cfg.QueueMessages <= 0 {
		cfg.QueueMessages = 1000
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = 60 * time.Second
	}
	return &Link{cfg: cfg, in: in, log: log, state: "connecting", since: time.Now(), wake: make(chan struct{}, 1)}
}

// Domain is the component's domain.
func (l *Link) Domain() string { return l.cfg.Domain }

// Status describes the link for `roost status` and the logs.
func (l *Link) Status() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := fmt.Sprintf("uplink %s as %s: %s for %s", l.cfg.Address, l.cfg.Domain, l.state, time.Since(l.since).Round(time.Second))
	if len(l.queue) > 0 {
		s += fmt.Sprintf(", %d messages queued", len(l.queue))
	}
	if l.lastErr != "" && l.conn == nil {
		s += " (last error: " + l.lastErr + ")"
	}
	return s
}

func (l *Link) setState(state, errText string) {
	l.mu.Lock()
	l.state, l.since = state, time.Now()
	if errText != "" {
		l.lastErr = errText
	}
	l.mu.Unlock()
}

// Send routes one stanza up. A message is queued while the link is down
// (ErrQueueFull past the bound); an iq fails with ErrDown; presence is
// dropped (nil) since it is re-sent when the link returns.
func (l *Link) Send(kind stanza.Kind, b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		switch kind {
		case stanza.Message:
			if len(l.queue) >= l.cfg.QueueMessages {
				return ErrQueueFull
			}
			l.queue = append(l.queue, append([]byte(nil), b...))
			return nil
		case stanza.IQ:
			return ErrDown
		}
		return nil
	}
	l.enqueueLocked(b)
	return nil
}

// enqueueLocked appends b to the output and makes sure a writer runs.
func (l *Link) enqueueLocked(b []byte) {
	l.out = append(l.out, b...)
	if !l.writing {
		l.writing = true
		go l.flush(l.conn)
	}
}

// flush writes what accumulates in out, in batches, until it is empty.
func (l *Link) flush(nc net.Conn) {
	var buf []byte
	for {
		l.mu.Lock()
		if len(l.out) == 0 || l.conn != nc {
			l.writing = false
			l.mu.Unlock()
			return
		}
		buf, l.out = l.out, buf[:0]
		l.mu.Unlock()
		nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := nc.Write(buf); err != nil {
			l.log.Warn("uplink: write failed", "err", err)
			nc.Close() // the reader notices and reconnects
			l.mu.Lock()
			l.writing = false
			l.mu.Unlock()
			return
		}
	}
}

// Run keeps the link up until ctx ends.
func (l *Link) Run(ctx context.Context) {
	backoff := l.cfg.MinBackoff
	for ctx.Err() == nil {
		start := time.Now()
		err := l.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 30*time.Second {
			backoff = l.cfg.MinBackoff // it was up a while: a fresh failure
		}
		// Full jitter around the current step, so that many gateways
		// behind one upstream do not reconnect in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		l.setState("down, retrying in "+wait.Round(100*time.Millisecond).String(), err.Error())
		var ae *authError
		if errors.As(err, &ae) {
			l.log.Error("uplink: the upstream refused us; check uplink.component.domain and uplink.component.secret", "address", l.cfg.Address, "domain", l.cfg.Domain, "err", err, "retry_in", wait)
		} else {
			l.log.Warn("uplink: down", "address", l.cfg.Address, "err", err, "retry_in", wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, l.cfg.MaxBackoff)
	}
}

// authError is a handshake the upstream refused.
type authError struct{ reason string }

func (e *authError) Error() string { return "handshake refused: " + e.reason }

// session connects, handshakes and serves until the link fails.
func (l *Link) session(ctx context.Context) error {
	l.setState("connecting", "")
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", l.cfg.Address)
	if err != nil {
		return fmt.Errorf("connect %s: %w", l.cfg.Address, err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	scan := xmlscan.New(nc, l.cfg.Limits)
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	header := "<?xml version='1.0'?><stream:stream xmlns='" + NS + "' xmlns:stream='http://etherx.jabber.org/streams' to='" + l.cfg.Domain + "'>"
	if _, err := nc.Write([]byte(header)); err != nil {
		return fmt.Errorf("send stream header: %w", err)
	}
	tok, err := scan.Next()
	if err != nil {
		return fmt.Errorf("read stream header: %w", err)
	}
	if tok.Kind != xmlscan.KindHeader {
		return fmt.Errorf("expected a stream header, got %.100s", tok.Raw)
	}
	id, ok := tok.Attr("id")
	if !ok || len(id) == 0 {
		return errors.New("the upstream's stream header has no id")
	}
	sum := sha1.Sum(append(append([]byte(nil), id...), l.cfg.Secret...))
	if _, err := nc.Write([]byte("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")); err != nil {
		return fmt.Errorf("send handshake: %w", err)
	}
	tok, err = scan.Next()
	if err != nil {
		return fmt.Errorf("read handshake reply: %w", err)
	}
	switch string(tok.Local) {
	case "handshake":
	case "error":
		return &authError{reason: streamErrorText(tok.Raw)}
	default:
		return fmt.Errorf("unexpected handshake reply %.100s", tok.Raw)
	}
	nc.SetDeadline(time.Time{})
	// Up: flush what waited, in order, before anything new.
	l.mu.Lock()
	l.conn = nc
	queued := len(l.queue)
	for _, b := range l.queue {
		l.enqueueLocked(b)
	}
	l.queue = nil
	l.state, l.since = "up", time.Now()
	l.mu.Unlock()
	l.log.Info("uplink: up", "address", l.cfg.Address, "domain", l.cfg.Domain, "sent_from_queue", queued)
	defer func() {
		l.mu.Lock()
		l.conn, l.out = nil, l.out[:0]
		l.mu.Unlock()
	}()
	l.in.LinkUp()
	return l.read(nc, scan)
}

// read passes the upstream's stanzas in until the stream ends.
func (l *Link) read(nc net.Conn, scan *xmlscan.Scanner) error {
	for {
		tok, err := scan.Next()
		if err != nil {
			var se *xmlscan.Error
			if errors.As(err, &se) {
				l.closeWith(nc, stanza.StreamCondition(se.Cond), se.Reason)
			}
			return fmt.Errorf("read: %w", err)
		}
		switch tok.Kind {
		case xmlscan.KindClose:
			nc.Write([]byte("</stream:stream>"))
			return errors.New("the upstream closed the stream")
		case xmlscan.KindElement:
		default:
			continue
		}
		if string(tok.Local) == "error" {
			return fmt.Errorf("stream error from the upstream: %s", streamErrorText(tok.Raw))
		}
		st, ok := stanza.Parse(&tok, NS)
		if !ok {
			l.closeWith(nc, stanza.StreamUnsupportedStanzaType, "")
			return fmt.Errorf("unsupported element %.60s", tok.Raw)
		}
		if cond, why := l.check(&st); cond != "" {
			l.closeWith(nc, cond, why)
			return fmt.Errorf("%s: %s", cond, why)
		}
		l.in.FromUplink(&st)
	}
}

// check applies the addressing rules to a stanza from upstream: it must
// be for our domain, and come from somewhere else (upstream may not speak
// for our own users).
func (l *Link) check(st *stanza.Stanza) (stanza.StreamCondition, string) {
	if st.To == nil || st.From == nil {
		return stanza.StreamImproperAddressing, "a stanza from the upstream needs both to and from"
	}
	to, err := stanza.Unescape(st.To)
	if err != nil || jid.DomainOf(to) != l.cfg.Domain {
		return stanza.StreamHostUnknown, "this component serves only " + l.cfg.Domain
	}
	from, err := stanza.Unescape(st.From)
	if err != nil || from == "" || jid.DomainOf(from) == l.cfg.Domain {
		return stanza.StreamInvalidFrom, "the upstream may not send from " + l.cfg.Domain
	}
	return "", ""
}

func (l *Link) closeWith(nc net.Conn, cond stanza.StreamCondition, text string) {
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	nc.Write(append(stanza.AppendStreamError(nil, cond, text), "</stream:stream>"...))
}

// streamErrorText names the condition in a <stream:error/>.
func streamErrorText(raw []byte) string {
	for _, c := range []string{"not-authorized", "host-unknown", "conflict", "invalid-namespace", "improper-addressing", "invalid-from", "policy-violation", "system-shutdown"} {
		if containsTag(raw, c) {
			return c
		}
	}
	return fmt.Sprintf("%.120s", raw)
}

func containsTag(raw []byte, name string) bool {
	for i := 0; i+len(name)+1 < len(raw); i++ {
		if raw[i] == '<' && string(raw[i+1:i+1+len(name)]) == name {
			return true
		}
	}
	return false
}
