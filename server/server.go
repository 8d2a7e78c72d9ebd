// Package server is the Roost XMPP server: it owns the listeners, the
// routing table and the store, and wires client streams (c2s) to the
// stanza handlers (im, iq). Start-up runs in a fixed order (store,
// certificates, router, listeners, control channel) and shutdown reverses
// it, so nothing is written to a closed store.
package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"roost/devices/datagram"
	"roost/server/session"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdg-go/scram"

	"roost/server/adhoc"
	"roost/server/c2s"
	"roost/server/carbons"
	"roost/server/component"
	"roost/server/control"
	"roost/server/im"
	"roost/server/ratelimit"
	"roost/server/route"
	"roost/server/router"
	"roost/server/s2s"
	"roost/server/uplink"
	"roost/storage"
	"roost/tls/certs"
	"roost/wire/accept"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Version is the server's version, stamped at build time by build.sh
// (-ldflags "-X roost/server.Version=...").
var Version = "dev"

// Server is one running Roost instance.
type Server struct {
	cfg    *Config
	log    *slog.Logger
	store  *storage.Store
	router *router.Router
	im     *im.Service
	route  *route.Service
	env    *c2s.Env

	certPath  string
	cert      *certs.Holder           // what every TLS listener presents; Reload replaces it
	reloaded  atomic.Pointer[Config]  // the config as SIGHUP last reloaded it (live)
	liveEnv   atomic.Pointer[c2s.Env] // the client environment for new connections (clientEnv)
	listeners []net.Listener
	control   net.Listener
	wg        sync.WaitGroup

	mu    sync.Mutex
	stopR *stopRequest // see ShutdownRequested
	// reloader reloads the configuration (SetReloader); reloadMu makes
	// SIGHUP and `roost reload` take turns.
	reloader func() (applied, restart []string, err error)
	reloadMu sync.Mutex
	perIP    map[string]int
	closing  bool
	conns    map[net.Conn]struct{}

	devices    *datagram.Listener // nil unless listen.dtls is set
	uplink     *uplink.Link       // nil unless uplink.component is configured
	s2s        *s2s.Service       // nil unless listen.s2s is set
	stopUplink context.CancelFunc
	web        *webFace // nil unless listen.https or listen.http is set

	components  *component.Service // nil unless listen.component is set
	componentLn net.Listener
	compOut     *componentOut // route.Remote when there are components

	churn    atomic.Int64  // connections opened plus closed, for trimMemory
	stopTrim chan struct{} // closed by Shutdown
}

// New returns a server for cfg; nothing runs until Start.
func New(cfg *Config, log *slog.Logger) *Server {
	return &Server{cfg: cfg, log: log, perIP: make(map[string]int), conns: make(map[net.Conn]struct{})}
}

// StorePath is the bbolt file of a configuration.
func StorePath(cfg *Config) string { return filepath.Join(cfg.DataDir, "roost.db") }

// ControlPath is the control socket of a configuration.
func ControlPath(cfg *Config) string { return filepath.Join(cfg.DataDir, "roost.sock") }

// Start opens the store, loads or makes the certificate and starts the
// listeners and the control channel. On error everything it started is
// stopped again.
func (s *Server) Start() (err error) {
	cfg := s.cfg
	defer func() {
		if err != nil {
			s.Shutdown(context.Background())
		}
	}()
	if err := cfg.Check(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data_dir %s: %w", cfg.DataDir, err)
	}
	s.store, err = storage.Open(StorePath(cfg), storage.Options{ScramIterations: cfg.ScramIterations, Domain: cfg.Domain})
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("another roost is serving %s already (one server per store): stop it first (`roost shutdown` with the same -config, or Ctrl-C where it runs), or give this one another data_dir: %w", cfg.DataDir, err)
	}
	if err != nil {
		return err
	}
	cert, certPath, generated, err := certs.LoadOrGenerate(cfg.DataDir, cfg.Domain, cfg.TLS.Cert, cfg.TLS.Key)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	s.certPath = certPath
	if generated {
		s.log.Info("generated a self-signed certificate", "domain", cfg.Domain, "file", certPath)
	}
	s.cert = certs.NewHolder(cert)
	tlsCfg := certs.ServerConfig(s.cert)
	s.router = router.New()
	s.im = &im.Service{Domain: cfg.Domain, Store: s.store, Router: s.router, Log: s.log,
		RosterLimit: cfg.Limits.RosterItems, OfflineQuota: cfg.Limits.OfflineMessages,
		DirectedPresences: cfg.Limits.DirectedPresences, PendingSubscriptions: cfg.Limits.PendingSubscriptions}
	s.route = &route.Service{Domain: cfg.Domain, AcceptFrom: cfg.Devices.AcceptFrom, Version: Version,
		Store: s.store, Router: s.router, IM: s.im, Log: s.log, Carbons: carbons.New(),
		Commands: &adhoc.Service{Domain: cfg.Domain, Version: Version, Admins: cfg.Admins, Store: s.store, Router: s.router,
			Links: s.RemoteStatus, Started: time.Now(), Log: s.log,
			Devices: adhoc.DeviceStatusFunc(func() (out []adhoc.DeviceStatus) {
				if dl := s.devices; dl != nil { // nil: DTLS off, every device offline
					for _, d := range dl.Status() {
						out = append(out, adhoc.DeviceStatus(d))
					}
				}
				return out
			})}}
	s.wireExtensions()
	if err := s.route.PEP.Start(); err != nil {
		return fmt.Errorf("pep: %w", err)
	}
	s.env = &c2s.Env{
		Domain:      cfg.Domain,
		TLS:         tlsCfg,
		TLSRequired: cfg.TLS.Required,
		Limits: xmlscan.Limits{
			MaxElementBytes: cfg.Limits.StanzaBytes,
			MaxDepth:        cfg.Limits.MaxDepth,
			// One budget for the partial stanzas of every client
			// connection: many connections each holding an unfinished
			// large stanza cannot take more than this together.
			Budget: xmlscan.NewBudget(int64(cfg.Limits.PartialStanzaBytes)),
		},
		PreauthStanzaBytes: cfg.Limits.PreauthStanzaBytes,
		AuthTimeout:        cfg.Limits.AuthTimeout.D(),
		WriteTimeout:       cfg.Limits.WriteTimeout.D(),
		QueueBytes:         cfg.Limits.OutboundQueueBytes,
		SessionsPerUser:    cfg.Limits.SessionsPerUser,
		Auth:               authenticator{s.store},
		Router:             s.router,
		Handler:            s.route,
		Limiter:            c2s.NewAuthLimiter(cfg.Limits.AuthFailuresPerMinute, cfg.Limits.AuthFailuresPerAccount),
		Log:                s.log,
		SM:                 session.NewRegistry(cfg.Limits.ResumeTimeout.D()),
		SMQueueBytes:       cfg.Limits.SMQueueBytes,
		CSIHoldBytes:       cfg.Limits.CSIHoldBytes,
		IdlePing:           cfg.Limits.IdlePing.D(),
		StreamCaps:         s.route.CapsElement(),
	}
	type c2sListener struct {
		ln     net.Listener
		direct bool
	}
	var c2sListeners []c2sListener
	for _, l := range []struct {
		addr   string
		direct bool
	}{{cfg.Listen.C2S, false}, {cfg.Listen.C2STLS, true}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", l.addr, err)
		}
		s.listeners = append(s.listeners, ln)
		c2sListeners = append(c2sListeners, c2sListener{ln, l.direct})
	}
	if err := s.startDevices(); err != nil {
		return err
	}
	if err := s.prepareComponents(); err != nil {
		return err
	}
	if err := s.startFederation(tlsCfg); err != nil {
		return err
	}
	s.startUplink()
	s.startComponents()
	if err := s.startControl(); err != nil {
		return err
	}
	s.stopTrim = make(chan struct{})
	go s.trimMemory(s.stopTrim)
	// Clients are accepted last: their goroutines read s.s2s, s.uplink
	// and s.im.Remote, which must be set before the first one starts.
	// (The sockets were opened first so that a busy port fails Start
	// before anything else runs; connections wait in the backlog.)
	for _, l := range c2sListeners {
		s.log.Info("listening", "addr", l.ln.Addr().String(), "direct_tls", l.direct)
		s.wg.Add(1)
		go s.accept(l.ln, l.direct)
	}
	if err := s.startWeb(); err != nil {
		return err
	}
	// Last, once every port is bound: the advertisement names them. A
	// host without multicast (a container) still serves; it just is not
	// found by name.
	if err := s.startMDNS(); err != nil {
		s.log.Warn("mdns: not advertising the gateway on the LAN", "err", err)
	}
	return nil
}

// Addrs returns the listeners' addresses: c2s first, then direct TLS
// (useful when the config asked for port 0).
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// CertPath is the PEM file of the certificate the server presents.
func (s *Server) CertPath() string { return s.certPath }

// Store is the server's open store.
func (s *Server) Store() *storage.Store { return s.store }

// PartialStanzaBytes is how much of limits.partial_stanza_bytes the
// client connections' read buffers hold now.
func (s *Server) PartialStanzaBytes() int64 { return s.env.Limits.Budget.Used() }

// Sessions is how many resources are bound right now.
func (s *Server) Sessions() int { return s.router.Count() }

func (s *Server) accept(ln net.Listener, direct bool) {
	defer s.wg.Done()
	accept.Loop(ln, s.log, "c2s", func(nc net.Conn) bool {
		ip := ratelimit.HostOf(nc.RemoteAddr())
		if why := s.track(nc, ip); why != "" {
			s.log.Warn("refusing connection: "+why, "remote", ip)
			if !direct { // the XEP-0368 port speaks TLS first: no plaintext XML there
				nc.SetWriteDeadline(time.Now().Add(time.Second))
				nc.Write(stanza.AppendStreamError([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"), stanza.StreamPolicyViolation, why))
			}
			nc.Close()
			return true
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(nc, ip)
			c2s.Serve(s.clientEnv(), nc, direct)
		}()
		return true
	})
}

// track admits a connection unless the server is at limits.connections,
// its address is at limits.connections_per_ip, or the server is shutting
// down; it returns why it refused ("" when it admitted).
func (s *Server) track(nc net.Conn, ip string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return "the server is shutting down"
	case len(s.conns) >= s.cfg.Limits.Connections:
		return "the server has too many connections"
	case s.perIP[ip] >= s.cfg.Limits.ConnectionsPerIP:
		return "too many connections from your address"
	}
	s.perIP[ip]++
	s.conns[nc] = struct{}{}
	s.churn.Add(1)
	return ""
}

func (s *Server) untrack(nc net.Conn, ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, nc)
	s.churn.Add(1)
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// Shutdown stops accepting, ends every stream with <system-shutdown/>,
// waits for connections to finish (or ctx to expire) and closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.stopMDNS() // nobody is sent to a server that is going away
	for _, l := range s.listeners {
		l.Close()
	}
	if s.control != nil {
		s.control.Close()
	}
	if s.stopUplink != nil {
		s.stopUplink()
	}
	s.stopComponents() // XEP-0114 sessions end with system-shutdown while the store is open
	if s.stopTrim != nil {
		close(s.stopTrim)
		s.stopTrim = nil
	}
	if s.devices != nil {
		// Device sessions end (and go unavailable) while the store is
		// open; Close waits for them. The field stays set: an administration
		// command still running may ask the listener for device status,
		// which it answers after Close too.
		s.devices.Close()
	}
	if s.router != nil {
		s.router.Each(func(r *session.Bound) {
			r.Close(stanza.StreamSystemShutdown, "the server is shutting down")
		})
	}
	// Unbound connections (still negotiating) are simply closed after
	// the bound ones had a moment to flush their stream errors.
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
		s.mu.Lock()
		for nc := range s.conns {
			nc.Close()
		}
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("shutdown: connections still open", "err", ctx.Err())
		}
	}
	if cl, ok := s.control.(*control.Listener); ok {
		// Control requests (user.add, backup) use the store: let the
		// running ones finish before it closes.
		if err := cl.Wait(ctx); err != nil {
			s.log.Warn("shutdown", "err", err)
		}
	}
	s.stopWeb(ctx)
	if s.s2s != nil {
		s.s2s.Close() // its streams route into the store
	}
	if s.route != nil && s.route.PEP != nil {
		if err := s.route.PEP.Close(); err != nil { // items not yet flushed (pep.flush_interval)
			s.log.Error("shutdown: pep items not written", "err", err)
		}
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			return fmt.Errorf("close store: %w", err)
		}
		s.store = nil
	}
	return nil
}

// authenticator adapts the store to c2s.Authenticator.
type authenticator struct{ store *storage.Store }

func (a authenticator) SCRAMCredentials(local, hash string) (scram.StoredCredentials, bool, error) {
	h := storage.SHA256
	if hash == "SHA-1" {
		h = storage.SHA1
	}
	cred, err := a.store.Credentials(local, h)
	if err == nil {
		return cred, true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return scram.StoredCredentials{}, false, err
	}
	// An unknown account gets credentials that look real: a salt derived
	// from the server secret (stable per name, as a real one would be)
	// and random keys, so the exchange fails at the proof.
	mac := hmac.New(sha256.New, a.store.Secret())
	mac.Write([]byte(hash + "\x00" + local))
	salt := mac.Sum(nil)[:16]
	stored, server := make([]byte, 32), make([]byte, 32)
	rand.Read(stored)
	rand.Read(server)
	if hash == "SHA-1" {
		stored, server = stored[:20], server[:20]
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(salt), Iters: a.store.Iterations()},
		StoredKey:  stored,
		ServerKey:  server,
	}, false, nil
}

func (a authenticator) CheckPassword(local, password string) (bool, error) {
	return a.store.CheckPassword(local, password)
}

// compile-time checks
var (
	_ session.Host = (*route.Service)(nil)
	_ session.Peer = (*session.Bound)(nil)
)

// Config is the configuration the server runs with.
func (s *Server) Config() *Config { return s.cfg }

// BindLocal binds a session for full that is not negotiated over a client
// stream (an in-process transport, or a benchmark) and writes to nc. The
// session leaves the routing table when Unbind is called.
func (s *Server) BindLocal(full jid.JID, nc net.Conn) *c2s.Session {
	sess := c2s.NewLocalSession(s.env, full, nc)
	s.router.BindReplace(sess.Bound, 0)
	return sess
}

// Unbind takes a session out of the routing table and announces its
// departure as for a closed stream.
func (s *Server) Unbind(sess *c2s.Session) {
	s.router.Unbind(sess.Bound)
	s.im.Closed(sess.Bound)
	sess.Close("", "")
}
