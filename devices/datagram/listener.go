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
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/pion/dtls/v3"

	"roost/devices"
	"roost/devices/datagram/ack"
	"roost/server/ratelimit"
	"roost/server/router"
	"roost/server/session"
	"roost/storage"
)

// CipherSuites are the PSK suites offered: AES-128-CCM-8 (the constrained
// devices' usual choice), AES-128-GCM, and ChaCha20-Poly1305 for boards
// without AES instructions (Raspberry Pi 3 and Zero).
var CipherSuites = []dtls.CipherSuiteID{
	dtls.TLS_PSK_WITH_AES_128_CCM_8,
	dtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	dtls.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
}

// Config is the DTLS side of the server's configuration (listen.dtls,
// devices.*, limits.datagram_bytes).
type Config struct {
	Addr                       string // UDP host:port
	Domain                     string
	IdleTimeout                time.Duration // a device silent this long goes unavailable
	HandshakeTimeout           time.Duration // bound on one handshake (a wrong key shows as this)
	MaxHandshakes              int           // handshakes running at once
	HandshakeFailuresPerMinute int           // proven failures per address before it is refused
	DatagramBytes              int           // largest stanza sent to a device

	// The acknowledgements and the socket (docs/datagram-binding.md §5):
	// bounds a device could otherwise make the server hold. Zero takes
	// the default named, which is also config.json's.
	AckRetries        int // devices.ack_retries: timeouts in a row before a device is gone (ack.DefaultMaxRetries)
	AckWindow         int // devices.ack_window: stanzas in flight to a device (ack.DefaultWindow)
	MaxUnacked        int // devices.max_unacked: stanzas held for a device before its session ends (ack.DefaultMaxQueue)
	SocketBufferBytes int // devices.socket_buffer_bytes: UDP receive buffer asked for (DefaultSocketBufferBytes)
}

// ackOptions are the acknowledgement bounds for one device's sender; the
// ack package turns zeros into its defaults.
func (c *Config) ackOptions() ack.Options {
	return ack.Options{MaxRetries: c.AckRetries, Window: c.AckWindow, MaxQueue: c.MaxUnacked}
}

// socketBuffer is the receive buffer to ask for.
func (c *Config) socketBuffer() int {
	if c.SocketBufferBytes > 0 {
		return c.SocketBufferBytes
	}
	return DefaultSocketBufferBytes
}

// Listener accepts device associations. Each is a bound session of the
// session core: its stanzas go to host, and the routing table delivers
// to it like to any other session.
type Listener struct {
	cfg    Config
	store  *storage.Store
	router *router.Router
	host   session.Host
	ln     net.Listener
	log    *slog.Logger
	sem    chan struct{}
	wg     sync.WaitGroup
	fail   *ratelimit.Failures // proven handshake failures per address

	mu       sync.Mutex
	sessions map[*device]struct{}
	closed   bool

	smu    sync.Mutex            // guards status (not the records in it)
	status map[string]*devStatus // by device full JID, for Status
}

// Listen starts the DTLS listener on cfg.Addr (UDP). Devices are looked
// up in store (devices.Lookup); their sessions are bound in rt and their
// stanzas handed to host.
func Listen(cfg Config, store *storage.Store, rt *router.Router, host session.Host, log *slog.Logger) (*Listener, error) {
	addr := cfg.Addr
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen.dtls %q: %w", addr, err)
	}
	l := &Listener{
		cfg:      cfg,
		store:    store,
		router:   rt,
		host:     host,
		log:      log,
		sem:      make(chan struct{}, max(cfg.MaxHandshakes, 1)),
		fail:     ratelimit.NewFailures(cfg.HandshakeFailuresPerMinute, time.Minute, maxFailureAddrs),
		sessions: make(map[*device]struct{}),
	}
	rcvbuf, wantBuf := 0, cfg.socketBuffer()
	l.ln, err = dtls.ListenWithOptions("udp", ua,
		dtls.WithPSK(func(identity []byte) ([]byte, error) {
			d, _, err := devices.Lookup(store, cfg.Domain, string(identity))
			if err != nil {
				// pion ends such a handshake with a fatal alert
				// (internal_error); the operator learns here which
				// identity it was (issue 17).
				if errors.Is(err, devices.ErrUnknown) {
					l.log.Warn("dtls: unknown device: its PSK identity is not in the registry (add it with `roost device add NAME`, or fix the identity the device sends: name@domain/resource)",
						"identity", string(identity))
				} else {
					l.log.Warn("dtls: device identity refused", "identity", string(identity), "err", err)
				}
				return nil, err
			}
			return d.PSK, nil
		}),
		dtls.WithPSKIdentityHint([]byte("roost")),
		dtls.WithCipherSuites(CipherSuites...),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(8)),
		// InsecureSkipVerifyHello stays false: the cookie exchange is
		// what proves a client's address before a failure counts.
		dtls.WithOnConnectionAttempt(func(a net.Addr) error {
			if l.fail.Over(ratelimit.HostOf(a)) {
				return errors.New("too many failed handshakes from this address")
			}
			return nil
		}),
		// One socket carries every device, read by one goroutine (pion's
		// listener). The default receive buffer (212,992 bytes on Linux)
		// held only about 300 datagrams: an unpaced burst from 20 devices
		// lost a third of them in the kernel ("receive buffer errors" in
		// netstat -su), before pion or Roost saw them. A larger buffer
		// absorbs bursts; the binding's acknowledgements recover the rest.
		dtls.WithListenConfig(net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			rcvbuf, _ = setRecvBuffer(c, wantBuf)
			return nil
		}}),
	)
	if err != nil {
		return nil, fmt.Errorf("listen.dtls %s: %w", addr, err)
	}
	log.Info("listening for devices", "addr", l.ln.Addr().String(), "transport", "dtls", "receive_buffer", rcvbuf)
	if rcvbuf > 0 && rcvbuf < wantBuf {
		log.Warn("dtls: the UDP receive buffer is smaller than asked; bursts from many devices may be lost and retransmitted (raise net.core.rmem_max, or lower devices.socket_buffer_bytes)",
			"asked", wantBuf, "got", rcvbuf)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.HandshakeTimeout)
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
		state, proven := c.ConnectionState()
		if proven {
			l.fail.Add(ratelimit.HostOf(remote))
		}
		if proven && len(state.IdentityHint) > 0 {
			// The identity was known and a key derived from it, yet the
			// device's Finished never decrypted: its key is not ours. DTLS
			// drops such records silently (RFC 6347 §4.1.2.7), so the
			// device sees only a timeout; this line names it.
			l.log.Warn("dtls: device handshake failed: wrong key (the device's PSK is not the one `roost device add` or `rekey` printed for it)",
				"device", string(state.IdentityHint), "remote", remote.String(), "err", err)
		} else {
			l.log.Info("dtls: device handshake failed", "remote", remote.String(), "address_proven", proven, "err", err)
		}
		c.Close()
		return
	}
	state, _ := c.ConnectionState()
	d, full, err := devices.Lookup(l.store, l.cfg.Domain, string(state.IdentityHint))
	if err != nil {
		l.log.Info("dtls: unknown device", "remote", remote.String(), "err", err)
		c.Close()
		return
	}
	s := newDevice(l, c, full, d.Name)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		return
	}
	l.sessions[s] = struct{}{}
	l.mu.Unlock()
	s.stat = l.statusFor(s.b.Full())
	l.log.Info("dtls: device connected", "jid", full.String(), "remote", remote.String())
	s.run()
	s.stat.gone()
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

// maxFailureAddrs bounds the addresses the handshake failure table
// remembers. Only failures of handshakes that got past the
// HelloVerifyRequest cookie exchange are counted (see serve), so a forged
// source address cannot lock a device out; an address with
// devices.handshake_failures_per_minute of them is refused for the rest of
// its minute.
const maxFailureAddrs = 10000

// DefaultSocketBufferBytes is the receive buffer asked for the devices'
// UDP socket unless devices.socket_buffer_bytes says otherwise: 4 MiB, the
// usual net.core.rmem_max, about 6,000 small datagrams queued.
const DefaultSocketBufferBytes = 4 << 20
