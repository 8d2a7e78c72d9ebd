// Package datagram is Roost's XMPP-over-DTLS binding for constrained
// devices (docs/datagram-binding.md is its specification): a DTLS 1.2
// association authenticated with a per-device pre-shared key is a bound
// session; each datagram carries one or more complete stanzas in the
// jabber:client namespace; the server stamps from.
//
// github.com/pion/dtls/v3 does the DTLS (v2 has an unfixed AES-GCM nonce
// advisory; v3 adds Connection IDs, RFC 9146, which keep a session when a
// device's address changes).
package datagram

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"

	"roost/devices"
	"roost/server"
)

// CipherSuites are the PSK suites offered: AES-128-CCM-8 (the constrained
// devices' usual choice), AES-128-GCM, and ChaCha20-Poly1305 for boards
// without AES instructions (Raspberry Pi 3 and Zero).
var CipherSuites = []dtls.CipherSuiteID{
	dtls.TLS_PSK_WITH_AES_128_CCM_8,
	dtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	dtls.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
}

// Listener accepts device associations for a running server.
type Listener struct {
	srv  *server.Server
	ln   net.Listener
	log  *slog.Logger
	cfg  server.DevicesConfig
	max  int // datagram_bytes
	sem  chan struct{}
	wg   sync.WaitGroup
	fail *failures

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
}

// Listen starts the DTLS listener on addr (UDP) for srv.
func Listen(srv *server.Server, addr string, log *slog.Logger) (*Listener, error) {
	cfg := srv.Config()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen.dtls %q: %w", addr, err)
	}
	l := &Listener{
		srv:      srv,
		log:      log,
		cfg:      cfg.Devices,
		max:      cfg.Limits.DatagramBytes,
		sem:      make(chan struct{}, cfg.Devices.MaxHandshakes),
		fail:     newFailures(cfg.Devices.HandshakeFailuresPerMinute),
		sessions: make(map[*session]struct{}),
	}
	conf := &dtls.Config{
		PSK: func(identity []byte) ([]byte, error) {
			d, _, err := devices.Lookup(srv.Store(), cfg.Domain, string(identity))
			if err != nil {
				return nil, err
			}
			return d.PSK, nil
		},
		PSKIdentityHint:       []byte("roost"),
		CipherSuites:          CipherSuites,
		ExtendedMasterSecret:  dtls.RequestExtendedMasterSecret,
		ConnectionIDGenerator: dtls.RandomCIDGenerator(8),
		// InsecureSkipVerifyHello stays false: the cookie exchange is
		// what proves a client's address before a failure counts.
		OnConnectionAttempt: func(a net.Addr) error {
			if l.fail.over(hostOf(a)) {
				return errors.New("too many failed handshakes from this address")
			}
			return nil
		},
	}
	l.ln, err = dtls.Listen("udp", ua, conf)
	if err != nil {
		return nil, fmt.Errorf("listen.dtls %s: %w", addr, err)
	}
	log.Info("listening for devices", "addr", l.ln.Addr().String(), "transport", "dtls")
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Addr is the UDP address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

func (l *Listener) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Debug("dtls: accept", "err", err)
			continue
		}
		select {
		case l.sem <- struct{}{}:
		default:
			// Too many handshakes at once: drop this one; the device
			// retransmits its ClientHello and gets in a moment later.
			c.Close()
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(c.(*dtls.Conn))
		}()
	}
}

// serve runs the handshake (off the accept loop, under a deadline) and
// then the session.
func (l *Listener) serve(c *dtls.Conn) {
	remote := c.RemoteAddr()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.HandshakeTimeout.D())
	err := c.HandshakeContext(ctx)
	cancel()
	<-l.sem
	if err != nil {
		// A wrong key gives no alert, only this timeout. The failure
		// counts against the address only when the client echoed our
		// HelloVerifyRequest cookie (RFC 6347 §4.2.1), which proves it
		// receives at that address: pion negotiates the cipher suite,
		// which ConnectionState needs, only after the cookie matched
		// (flight2 in pion/dtls v3). ClientHellos sent from a forged
		// source never get that far, so they cannot lock a device out.
		_, proven := c.ConnectionState()
		if proven {
			l.fail.add(hostOf(remote))
		}
		l.log.Info("dtls: device handshake failed", "remote", remote.String(), "address_proven", proven, "err", err)
		c.Close()
		return
	}
	state, _ := c.ConnectionState()
	d, full, err := devices.Lookup(l.srv.Store(), l.srv.Config().Domain, string(state.IdentityHint))
	if err != nil {
		l.log.Info("dtls: unknown device", "remote", remote.String(), "err", err)
		c.Close()
		return
	}
	s := newSession(l, c, full, d.Name)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.sessions[s] = struct{}{}
	l.mu.Unlock()
	l.log.Info("dtls: device connected", "jid", full.String(), "remote", remote.String())
	s.run()
	l.mu.Lock()
	delete(l.sessions, s)
	l.mu.Unlock()
	l.log.Info("dtls: device gone", "jid", full.String(), "reason", s.endReason)
}

// Close stops accepting, ends every device session (each goes
// unavailable) and waits for them.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	for s := range l.sessions {
		s.end("server shutting down")
	}
	l.mu.Unlock()
	err := l.ln.Close()
	l.wg.Wait()
	return err
}

func hostOf(a net.Addr) string {
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// maxFailureAddrs bounds the addresses the failure table remembers.
const maxFailureAddrs = 10000

// failures counts failed handshakes per address over a minute. Only
// failures of handshakes that got past the HelloVerifyRequest cookie
// exchange are added (see serve), so a forged source address cannot
// lock a device out. Windows age out after their minute; past
// maxFailureAddrs addresses the oldest window goes first, so the table is
// bounded without forgetting every address at once.
type failures struct {
	limit int
	max   int
	now   func() time.Time
	mu    sync.Mutex
	by    map[string]*list.Element // of *window, by address
	order *list.List               // windows, oldest start first
}

type window struct {
	ip    string
	start time.Time
	n     int
}

func newFailures(limit int) *failures {
	return &failures{limit: limit, max: maxFailureAddrs, now: time.Now, by: make(map[string]*list.Element), order: list.New()}
}

// expire drops the windows whose minute is over; f.mu is held.
func (f *failures) expire(now time.Time) {
	for e := f.order.Front(); e != nil; e = f.order.Front() {
		w := e.Value.(*window)
		if now.Sub(w.start) <= time.Minute {
			return
		}
		f.order.Remove(e)
		delete(f.by, w.ip)
	}
}

func (f *failures) add(ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.expire(now)
	if e := f.by[ip]; e != nil {
		e.Value.(*window).n++
		return
	}
	for f.order.Len() >= f.max {
		oldest := f.order.Front()
		f.order.Remove(oldest)
		delete(f.by, oldest.Value.(*window).ip)
	}
	f.by[ip] = f.order.PushBack(&window{ip: ip, start: now, n: 1})
}

func (f *failures) over(ip string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.by[ip]
	if e == nil {
		return false
	}
	w := e.Value.(*window)
	return f.now().Sub(w.start) <= time.Minute && w.n >= f.limit
}
