package ws

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"roost/server/c2s"
	"roost/wire/stanza"
)

// Subprotocol is the WebSocket subprotocol of XMPP (RFC 7395 §3.1).
const Subprotocol = "xmpp"

// Handler serves XMPP over WebSocket (RFC 7395) at /xmpp-websocket.
type Handler struct {
	Env *c2s.Env
	// EnvFunc, when set, gives the Env for each new connection instead
	// (the server's limits as SIGHUP last reloaded them).
	EnvFunc func() *c2s.Env
	// Origins are the Origin values (scheme://host[:port]) allowed
	// besides the request's own host (http.origins).
	Origins []string
	// Admit counts a connection against the server's connection limits
	// (limits.connections, limits.connections_per_ip); it returns why it
	// refuses ("" when admitted) and, when admitted, the function that
	// releases the connection's place. nil: no limits.
	Admit func(nc net.Conn) (release func(), why string)
	Log   *slog.Logger

	mu     sync.Mutex
	active int           // streams running
	closed bool          // Wait was called: no new streams
	idle   chan struct{} // closed when active drops to 0 after Wait
}

// upgrader answers the opening handshake (RFC 6455 §4.2). Its own small
// buffers replace the ones net/http hijacked the connection with, and the
// write buffer comes from a pool only while a message is written, so an
// idle session holds neither. The Origin is checked before, against full
// origins.
var upgrader = websocket.Upgrader{
	ReadBufferSize:  512,
	WriteBufferSize: 1024,
	WriteBufferPool: &sync.Pool{},
	Subprotocols:    []string{Subprotocol},
	CheckOrigin:     func(*http.Request) bool { return true },
}

// ServeHTTP checks the Origin, upgrades with the xmpp subprotocol and
// runs the client stream over the connection until it ends.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.originOK(r) {
		// RFC 6455 §10.2: a browser's Origin is what keeps other sites'
		// pages from using the visitor's network position.
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	wc, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.Log.Debug("websocket: upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	if wc.Subprotocol() != Subprotocol {
		// RFC 7395 §3.1: the xmpp subprotocol is required.
		wc.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseProtocolError, "the xmpp subprotocol is required (RFC 7395)"), time.Now().Add(time.Second))
		wc.Close()
		return
	}
	// The scanner bounds a stanza (limits.stanza_bytes, with a
	// <policy-violation/>); the library's own limit only backs it up.
	env := h.Env
	if h.EnvFunc != nil {
		env = h.EnvFunc()
	}
	wc.SetReadLimit(int64(2*env.Limits.MaxElementBytes + 4096))
	remote := tcpAddr(r.RemoteAddr)
	var local net.Addr
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a
	}
	nc := newConn(wc, remote, local)
	release := func() {}
	if h.Admit != nil {
		var why string
		if release, why = h.Admit(nc); why != "" {
			h.Log.Warn("refusing connection: "+why, "remote", r.RemoteAddr)
			nc.Write(stanza.AppendStreamError([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"), stanza.StreamPolicyViolation, why))
			nc.Close()
			return
		}
	}
	if !h.enter() {
		release()
		nc.Write(stanza.AppendStreamError([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"), stanza.StreamSystemShutdown, ""))
		nc.Close()
		return
	}
	// wss is encrypted; ws:// is trusted as such only from loopback, the
	// reverse proxy that terminates TLS in front of listen.http.
	secure := r.TLS != nil || remote.IP.IsLoopback()
	// The stream runs on a goroutine of its own and the handler returns:
	// the connection is hijacked, so net/http has no more use for it, and
	// its request and its connection goroutine's grown stack (16 KiB) are
	// not held for the life of an idle session.
	go c2s.ServeConn(env, nc, c2s.ConnOptions{Framed: true, Secure: secure, Transport: "websocket",
		Done: func() { release(); h.leave() }})
}

// originOK accepts no Origin (not a browser), the request's own host, or
// one of h.Origins.
func (h *Handler) originOK(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	for _, allowed := range h.Origins {
		if strings.EqualFold(o, allowed) {
			return true
		}
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && strings.EqualFold(u.Host, r.Host)
}

func tcpAddr(s string) *net.TCPAddr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}

// enter counts a stream that starts, unless the handler is shutting down.
func (h *Handler) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.active++
	return true
}

func (h *Handler) leave() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.active--; h.active == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// Wait refuses new streams and blocks until every WebSocket stream has
// ended or ctx is done.
func (h *Handler) Wait(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	if h.active == 0 {
		h.mu.Unlock()
		return nil
	}
	if h.idle == nil {
		h.idle = make(chan struct{})
	}
	idle := h.idle
	h.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
