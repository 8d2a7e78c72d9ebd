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
	"bytes"
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

	"roost/wire/outq"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// NS is the content namespace of a component stream.
const NS = stanza.NSComponent

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
	// QueueBytes bounds the bytes of the messages kept while the link is
	// down (ErrQueueFull past it) and what waits to be written while it
	// is up (an upstream that does not read past it is disconnected).
	QueueBytes int
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

// ErrQueueFull is returned by Send for a message when the queue is full
// (Config.QueueMessages or Config.QueueBytes).
var ErrQueueFull = errors.New("uplink queue full")

// Link is the component connection and its state.
type Link struct {
	cfg Config
	own string // cfg.Domain prepared, what stanzas' domains are compared with
	log *slog.Logger
	in  Inbound

	mu     sync.Mutex
	q      *outq.Queue  // the up link's writer; nil while down
	unsent *outq.Unsent // what q was given and has not written
	queue  [][]byte     // messages held while down, in order
	queued int          // bytes in queue
	state  string
	since  time.Time // when state last changed
	// downSince is when the link was last lost (or first tried): the
	// retries in between do not reset it, so "down for" is the outage's
	// real length (issue 17). Zero while up.
	downSince time.Time
	lastErr   string
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
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 8 << 20
	}
	l := &Link{cfg: cfg, in: in, log: log, state: "connecting", since: time.Now()}
	l.own = l.ownDomain()
	return l
}

// Domain is the component's domain.
func (l *Link) Domain() string { return l.cfg.Domain }

// Status describes the link for `roost status` and the logs.
func (l *Link) Status() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s string
	if l.state == "up" {
		s = fmt.Sprintf("uplink %s as %s: up since %s (%s)", l.cfg.Address, l.cfg.Domain, l.since.Format(time.RFC3339), time.Since(l.since).Round(time.Second))
	} else {
		down := l.downSince
		if down.IsZero() {
			down = l.since
		}
		s = fmt.Sprintf("uplink %s as %s: down since %s (%s), %s", l.cfg.Address, l.cfg.Domain, down.Format(time.RFC3339), time.Since(down).Round(time.Second), l.state)
	}
	if len(l.queue) > 0 {
		s += fmt.Sprintf(", %d messages queued", len(l.queue))
	}
	if l.lastErr != "" && l.q == nil {
		s += " (last error: " + l.lastErr + ")"
	}
	return s
}

// Up reports whether the link is established: the XEP-0114 §3 handshake
// succeeded and the stream is open.
func (l *Link) Up() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == "up"
}

func (l *Link) setState(state, errText string) {
	l.mu.Lock()
	l.state, l.since = state, time.Now()
	if l.downSince.IsZero() {
		l.downSince = l.since
	}
	if errText != "" {
		l.lastErr = errText
	}
	l.mu.Unlock()
}

// Send routes one stanza up. A message is queued while the link is down
// (ErrQueueFull past either bound); an iq fails with ErrDown; presence is
// dropped (nil) since it is re-sent when the link returns.
func (l *Link) Send(kind stanza.Kind, b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.q != nil {
		if l.unsent.Push(l.q, b) {
			return nil
		}
		// The link's writer is closing (the stream failed under us):
		// treat the stanza as sent while down rather than drop it.
	}
	switch kind {
	case stanza.Message:
		if len(l.queue) >= l.cfg.QueueMessages || l.queued+len(b) > l.cfg.QueueBytes {
			return ErrQueueFull
		}
		l.queue = append(l.queue, append([]byte(nil), b...))
		l.queued += len(b)
		return nil
	case stanza.IQ:
		return ErrDown
	}
	return nil
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
	header := "<?xml version='1.0'?><stream:stream xmlns='" + NS + "' xmlns:stream='http://etherx.jabber.org/streams' to='" + string(stanza.AppendEscaped(nil, l.cfg.Domain)) + "'>"
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
	q := outq.New(nc, l.cfg.QueueBytes, 30*time.Second, func() {
		l.log.Warn("uplink: the upstream does not read; reconnecting")
		nc.Close()
	})
	unsent := &outq.Unsent{}
	unsent.Track(q)
	l.mu.Lock()
	l.q, l.unsent = q, unsent
	queued := len(l.queue)
	for _, b := range l.queue {
		unsent.Push(q, b)
	}
	l.queue, l.queued = nil, 0
	l.state, l.since, l.downSince = "up", time.Now(), time.Time{}
	l.mu.Unlock()
	l.log.Info("uplink: up", "address", l.cfg.Address, "domain", l.cfg.Domain, "sent_from_queue", queued)
	defer func() {
		l.mu.Lock()
		l.q = nil
		l.mu.Unlock()
		nc.Close()
		q.Wait(time.Second)
		// Messages the link never wrote wait for the next connection,
		// first, in order (issue 14: never dropped silently); an iq or
		// presence in flight is lost with the link, as when it is down.
		var again [][]byte
		for _, b := range unsent.Take() {
			if stanza.KindOf(b) == stanza.Message {
				again = append(again, b)
			}
		}
		if len(again) > 0 {
			l.mu.Lock()
			for _, b := range again {
				l.queued += len(b)
			}
			l.queue = append(again, l.queue...)
			l.mu.Unlock()
			l.log.Info("uplink: kept messages the link did not write for the next connection", "messages", len(again))
		}
	}()
	l.in.LinkUp()
	return l.read(q, scan)
}

// read passes the upstream's stanzas in until the stream ends.
func (l *Link) read(q *outq.Queue, scan *xmlscan.Scanner) error {
	for {
		tok, err := scan.Next()
		if err != nil {
			var se *xmlscan.Error
			if errors.As(err, &se) {
				closeWith(q, stanza.StreamCondition(se.Cond), se.Reason)
			}
			return fmt.Errorf("read: %w", err)
		}
		switch tok.Kind {
		case xmlscan.KindClose:
			q.CloseWith([]byte("</stream:stream>"), false)
			q.Wait(time.Second)
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
			closeWith(q, stanza.StreamUnsupportedStanzaType, "")
			return fmt.Errorf("unsupported element %.60s", tok.Raw)
		}
		if cond, why := l.check(&st); cond != "" {
			closeWith(q, cond, why)
			return fmt.Errorf("%s: %s", cond, why)
		}
		l.in.FromUplink(&st)
	}
}

// check applies the addressing rules to a stanza from upstream: it must
// be for our domain, and come from somewhere else (upstream may not speak
// for our own users). Domains are compared after preparation (RFC 7622
// §3.2: case and width mapped, a trailing dot stripped), since that is
// the form the router acts on: alice@LOCALHOST/x and alice@localhost. are
// alice@localhost. A to or from that is missing or not a JID is
// improper-addressing (RFC 6120 §4.9.3.12).
func (l *Link) check(st *stanza.Stanza) (stanza.StreamCondition, string) {
	to, from, problem := stanza.PeerDomains(st)
	if problem != "" {
		return stanza.StreamImproperAddressing, problem
	}
	own := l.ownDomain()
	if to != own {
		return stanza.StreamHostUnknown, "this component serves only " + own
	}
	if from == own {
		return stanza.StreamInvalidFrom, "the upstream may not send from " + own
	}
	return "", ""
}

// ownDomain is our domain, prepared.
func (l *Link) ownDomain() string {
	if l.own != "" {
		return l.own
	}
	if d, ok := stanza.AddrDomain([]byte(l.cfg.Domain)); ok {
		return d
	}
	return l.cfg.Domain
}

// closeWith ends the stream with a stream error, after what is queued,
// and waits (briefly) until it is written.
func closeWith(q *outq.Queue, cond stanza.StreamCondition, text string) {
	q.CloseWith(stanza.AppendStreamError(nil, cond, text), false)
	q.Wait(5 * time.Second)
}

// streamErrorText names the condition in a <stream:error/>.
func streamErrorText(raw []byte) string {
	for _, c := range []string{"not-authorized", "host-unknown", "conflict", "invalid-namespace", "improper-addressing", "invalid-from", "policy-violation", "system-shutdown"} {
		if bytes.Contains(raw, []byte("<"+c)) {
			return c
		}
	}
	return fmt.Sprintf("%.120s", raw)
}
