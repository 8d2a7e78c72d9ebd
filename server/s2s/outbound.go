package s2s

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"roost/wire/outq"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// outbound is our stream to one remote domain: stanzas wait in order
// while it is being opened and authenticated. It leaves the service's
// map when its stream ends, fails or stays idle for Config.IdleTimeout,
// so that the map, its goroutines and connections stay bounded by
// Config.MaxOutbound; the next stanza for the domain opens a new one.
type outbound struct {
	svc    *Service
	domain string

	mu         sync.Mutex
	q          *outq.Queue  // the authenticated stream's writer; nil until then
	unsent     *outq.Unsent // what q was given and has not written yet
	queue      [][]byte     // stanzas waiting for the stream, in order
	queued     int          // bytes in queue
	connecting bool
	gone       bool      // removed from svc.out: senders must look the domain up again
	last       time.Time // last stanza sent on or read from the stream
	state      string
}

// errNotFound means no server for the domain could be reached.
var errNotFound = errors.New("no server for the domain answered")

// send queues b on the stream, or while it is being opened (bounded by
// Config.QueueStanzas and Config.QueueBytes; past them the sender gets
// resource-constraint). false means o has left the service and the
// caller must look the domain up again.
func (o *outbound) send(b []byte) bool {
	o.mu.Lock()
	if o.gone {
		o.mu.Unlock()
		return false
	}
	o.last = time.Now()
	if o.q != nil {
		if o.unsent.Push(o.q, b) {
			o.mu.Unlock()
			return true
		}
		o.q = nil // the stream ended: open a new one
	}
	if len(o.queue) >= o.svc.cfg.QueueStanzas || o.queued+len(b) > o.svc.cfg.QueueBytes {
		o.mu.Unlock()
		o.svc.undeliverable(b, stanza.ResourceConstraint, "too much is waiting for "+o.domain)
		return true
	}
	o.queue = append(o.queue, append([]byte(nil), b...))
	o.queued += len(b)
	start := !o.connecting
	o.connecting = true
	o.state = "connecting"
	o.mu.Unlock()
	if start {
		o.svc.wg.Add(1)
		go func() {
			defer o.svc.wg.Done()
			o.connect()
		}()
	}
	return true
}

// unused reports whether nothing uses o: no stream, no connect under
// way, nothing waiting. Called with o.mu held.
func (o *outbound) unused() bool { return o.q == nil && !o.connecting && len(o.queue) == 0 }

func (o *outbound) connect() {
	st, how, err := o.svc.dial(o.domain)
	o.mu.Lock()
	q := o.queue
	o.queue, o.queued, o.connecting = nil, 0, false
	if err != nil {
		o.state = "failed: " + err.Error()
		o.mu.Unlock()
		o.svc.log.Warn("s2s: cannot reach", "domain", o.domain, "err", err)
		// The sender learns that the domain could not be reached, not
		// how we tried: the error names resolver and peer addresses of
		// the gateway's network (issue 17); the log above has them.
		cond, text := stanza.RemoteServerTimeout, "could not connect to the server of "+o.domain
		if errors.Is(err, errNotFound) {
			cond, text = stanza.RemoteServerNotFound, "found no server for "+o.domain
		}
		for _, b := range q {
			o.svc.undeliverable(b, cond, text)
		}
		o.svc.drop(o, o.unused)
		return
	}
	// Queued stanzas first, in order, then whatever arrives meanwhile.
	wq := outq.New(st.nc, o.svc.cfg.QueueBytes, 30*time.Second, func() { st.nc.Close() })
	unsent := &outq.Unsent{}
	unsent.Track(wq)
	for _, b := range q {
		unsent.Push(wq, b)
	}
	o.q, o.unsent, o.state, o.last = wq, unsent, "up since "+time.Now().Format(time.TimeOnly)+", authenticated by "+how, time.Now()
	// The idle timer closes the stream when nothing was sent for
	// IdleTimeout: it is also what ends this goroutine's read of a peer
	// that went away without closing. idle is only used under o.mu.
	var idle *time.Timer
	idle = time.AfterFunc(o.svc.cfg.IdleTimeout, func() { o.idleCheck(wq, st.nc, &idle) })
	o.mu.Unlock()
	o.svc.log.Info("s2s: stream up", "domain", o.domain, "auth", how, "sent_from_queue", len(q))
	// An outbound stream carries nothing back but errors and its close.
	for {
		tok, err := st.next()
		if err != nil || (tok.Kind == xmlscan.KindElement && string(tok.Local) == "error") {
			break
		}
		o.mu.Lock()
		o.last = time.Now()
		o.mu.Unlock()
	}
	o.mu.Lock()
	idle.Stop()
	if o.q == wq {
		o.q, o.state = nil, "closed"
	}
	o.mu.Unlock()
	wq.CloseWith([]byte("</stream:stream>"), false)
	wq.Wait(time.Second)
	st.nc.Close()
	wq.Wait(time.Second)
	// What the stream never wrote goes back to its senders (issue 14:
	// accepted means delivered, stored or bounced, never dropped).
	for _, b := range unsent.Take() {
		o.svc.undeliverable(b, stanza.RemoteServerTimeout, "the stream to "+o.domain+" ended before this was sent")
	}
	o.svc.drop(o, o.unused)
}

// idleCheck closes wq's stream and forgets the domain when nothing was
// sent for IdleTimeout; otherwise it re-arms the timer for the rest.
func (o *outbound) idleCheck(wq *outq.Queue, nc net.Conn, idle **time.Timer) {
	limit := o.svc.cfg.IdleTimeout
	closed := o.svc.drop(o, func() bool {
		if o.q != wq {
			return false // that stream has already ended
		}
		if rest := limit - time.Since(o.last); rest > 0 {
			(*idle).Reset(rest)
			return false
		}
		o.q, o.state = nil, "closed (idle)"
		return true
	})
	if !closed {
		return
	}
	o.svc.log.Info("s2s: closing an idle stream", "domain", o.domain, "idle_timeout", limit)
	wq.CloseWith([]byte("</stream:stream>"), false)
	if !wq.Wait(time.Second) {
		nc.Close()
	}
}

// open connects to domain's server and opens a stream, with STARTTLS
// when offered (the peer's certificate is not checked: dialback is what
// authenticates it). It returns the stream, its id and its features.
func (s *Service) open(ctx context.Context, domain string) (*stream, string, xmlscan.Token, error) {
	st, id, feats, _, err := s.openTLS(ctx, domain)
	return st, id, feats, err
}

// openTLS is open that also says whether the peer's certificate is valid
// for domain (so SASL EXTERNAL may be tried).
func (s *Service) openTLS(ctx context.Context, domain string) (*stream, string, xmlscan.Token, bool, error) {
	var nc net.Conn
	var lastErr error
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	for _, a := range s.resolve(ctx, domain) {
		if nc, lastErr = d.DialContext(ctx, "tcp", a); lastErr == nil {
			break
		}
	}
	if nc == nil {
		if lastErr == nil {
			lastErr = errors.New("its SRV record says there is no XMPP server")
		}
		return nil, "", xmlscan.Token{}, false, fmt.Errorf("%w: %v", errNotFound, lastErr)
	}
	if !s.track(nc) {
		nc.Close()
		return nil, "", xmlscan.Token{}, false, errors.New("shutting down")
	}
	nc = &trackedConn{Conn: nc, svc: s}
	certOK := false
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	st := &stream{nc: nc, scan: xmlscan.New(nc, s.cfg.Limits)}
	id, feats, err := st.restart(s.cfg.Domain, domain)
	if err == nil && bytes.Contains(feats.Raw, []byte(nsTLS)) {
		if err = st.write("<starttls xmlns='" + nsTLS + "'/>"); err == nil {
			var tok xmlscan.Token
			if tok, err = st.next(); err == nil && string(tok.Local) != "proceed" {
				err = fmt.Errorf("starttls refused: %.100s", tok.Raw)
			}
		}
		if err == nil {
			tc := tls.Client(nc, s.clientTLS(domain))
			if err = tc.HandshakeContext(ctx); err == nil {
				certOK = s.certFor(tc.ConnectionState(), domain)
				st.nc = tc
				st.scan.Reset(tc)
				id, feats, err = st.restart(s.cfg.Domain, domain)
			}
		}
	}
	if err != nil {
		nc.Close()
		return nil, "", feats, false, err
	}
	return st, id, feats, certOK, nil
}

// restart sends our stream header and reads the peer's and its features.
func (st *stream) restart(from, to string) (string, xmlscan.Token, error) {
	if err := st.write(header(from, to, "")); err != nil {
		return "", xmlscan.Token{}, err
	}
	tok, err := st.scan.Next()
	if err != nil {
		return "", tok, fmt.Errorf("read stream header: %w", err)
	}
	if tok.Kind != xmlscan.KindHeader {
		return "", tok, fmt.Errorf("no stream header: %.100s", tok.Raw)
	}
	id := attr(&tok, "id")
	feats, err := st.next()
	if err != nil {
		return id, feats, fmt.Errorf("read features: %w", err)
	}
	if string(feats.Local) != "features" {
		return id, feats, fmt.Errorf("expected stream features, got %.100s", feats.Raw)
	}
	return id, feats, nil
}

// dial opens an authenticated stream to domain: SASL EXTERNAL when its
// certificate is valid and it offers it, dialback otherwise. how says which.
func (s *Service) dial(domain string) (st *stream, how string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, id, feats, certOK, err := s.openTLS(ctx, domain)
	if err != nil {
		return nil, "", err
	}
	if certOK && s.external(st, domain, feats) {
		st.nc.SetDeadline(time.Time{})
		return st, "SASL EXTERNAL", nil
	}
	if err := st.write("<db:result from='" + escape(s.cfg.Domain) + "' to='" + escape(domain) + "'>" + s.key(domain, s.cfg.Domain, id) + "</db:result>"); err != nil {
		st.nc.Close()
		return nil, "", err
	}
	for {
		tok, err := st.next()
		if err != nil {
			st.nc.Close()
			return nil, "", fmt.Errorf("dialback: %w", err)
		}
		if string(tok.Space) == NSDialback && string(tok.Local) == "result" {
			if typ := attr(&tok, "type"); typ != "valid" {
				st.nc.Close()
				return nil, "", fmt.Errorf("dialback: %s refused our key (%s)", domain, typ)
			}
			break
		}
		if string(tok.Local) == "error" {
			st.nc.Close()
			return nil, "", fmt.Errorf("stream error from %s: %.120s", domain, tok.Raw)
		}
	}
	st.nc.SetDeadline(time.Time{})
	return st, "dialback", nil
}

// verify asks domain's authoritative server whether key is the one it
// made for the stream streamID it opened to us (XEP-0220 §2.3).
func (s *Service) verify(domain, streamID, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, _, _, err := s.open(ctx, domain)
	if err != nil {
		return false, err
	}
	defer st.nc.Close()
	if err := st.write("<db:verify from='" + escape(s.cfg.Domain) + "' to='" + escape(domain) + "' id='" + escape(streamID) + "'>" + key + "</db:verify>"); err != nil {
		return false, err
	}
	for {
		tok, err := st.next()
		if err != nil {
			return false, err
		}
		if string(tok.Space) == NSDialback && string(tok.Local) == "verify" {
			st.write("</stream:stream>")
			return attr(&tok, "type") == "valid", nil
		}
	}
}

// trackedConn leaves the service's set of connections when closed.
type trackedConn struct {
	net.Conn
	svc  *Service
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.svc.untrack(c.Conn) })
	return c.Conn.Close()
}
