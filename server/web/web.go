// Package web is the gateway's web face: one HTTP mux served over TLS on
// listen.https (the certificate c2s presents) and, for a reverse proxy on
// loopback, without TLS on listen.http. It mounts XMPP over WebSocket
// (RFC 7395) at /xmpp-websocket, XEP-0156 host-meta at
// /.well-known/host-meta (XRD) and /.well-known/host-meta.json (JRD),
// /metrics and the status page at /. Every response carries the security
// headers: a Content-Security-Policy without inline script, no MIME
// sniffing, no referrer.
package web

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Paths of the mux.
const (
	WebSocketPath    = "/xmpp-websocket"
	HostMetaPath     = "/.well-known/host-meta"
	HostMetaJSONPath = "/.well-known/host-meta.json"
	MetricsPath      = "/metrics"
)

// CSP is the Content-Security-Policy of every response: only the
// gateway's own files, no inline script or style, WebSocket connections to
// the page's origin, and no framing (clickjacking).
const CSP = "default-src 'self'; connect-src 'self' wss: ws:; frame-ancestors 'none'"

// MaxBodyBytes bounds a request body; the web face takes no uploads.
const MaxBodyBytes = 64 << 10

// bodyTimeout bounds the time to read a request's body and write its
// answer (the WebSocket is exempt: it lives on).
const bodyTimeout = 30 * time.Second

// Options configure the web face. A nil handler is not mounted.
type Options struct {
	HTTPS string      // listen.https; "" off
	HTTP  string      // listen.http; "" off
	TLS   *tls.Config // the server's certificate (for HTTPS)

	HeaderTimeout  time.Duration // http.header_timeout
	MaxHeaderBytes int           // http.max_header_bytes
	IdleTimeout    time.Duration // keep-alive; 0: 2 minutes

	WebSocket http.Handler
	Metrics   http.Handler
	Page      http.Handler
	Log       *slog.Logger
}

// Server is the running web face.
type Server struct {
	https, http *http.Server
	httpsLn     net.Listener
	httpLn      net.Listener
	wg          sync.WaitGroup
}

// Start opens the listeners and serves them.
func Start(o Options) (*Server, error) {
	s := &Server{}
	if o.HTTPS != "" {
		if o.TLS == nil {
			return nil, errors.New("listen.https needs a certificate")
		}
		ln, err := net.Listen("tcp", o.HTTPS)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", o.HTTPS, err)
		}
		tc := o.TLS.Clone()
		// HTTP/1.1 only: the WebSocket upgrade (RFC 6455) is an HTTP/1.1
		// request, and browsers would otherwise multiplex over h2.
		tc.NextProtos = []string{"http/1.1"}
		s.httpsLn = tls.NewListener(ln, tc)
		s.https = newHTTPServer(o, "wss")
	}
	if o.HTTP != "" {
		ln, err := net.Listen("tcp", o.HTTP)
		if err != nil {
			if s.httpsLn != nil {
				s.httpsLn.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", o.HTTP, err)
		}
		s.httpLn = ln
		s.http = newHTTPServer(o, "ws")
	}
	for _, p := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{s.https, s.httpsLn}, {s.http, s.httpLn}} {
		if p.srv == nil {
			continue
		}
		o.Log.Info("web: listening", "addr", p.ln.Addr().String(), "tls", p.srv == s.https)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := p.srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				o.Log.Error("web: serve failed", "err", err)
			}
		}()
	}
	return s, nil
}

func newHTTPServer(o Options, wsScheme string) *http.Server {
	idle := o.IdleTimeout
	if idle == 0 {
		idle = 2 * time.Minute
	}
	return &http.Server{
		Handler:           Mux(o, wsScheme),
		ReadHeaderTimeout: o.HeaderTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		IdleTimeout:       idle,
		// TLS handshake failures and the like are a peer's problem.
		ErrorLog: slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
}

// Mux is the web face's handler for one listener; wsScheme ("wss" or
// "ws") is the scheme host-meta announces.
func Mux(o Options, wsScheme string) http.Handler {
	mux := http.NewServeMux()
	if o.WebSocket != nil {
		mux.Handle(WebSocketPath, o.WebSocket)
	}
	if o.WebSocket != nil {
		mux.Handle(HostMetaPath, hostMeta(wsScheme, false))
		mux.Handle(HostMetaJSONPath, hostMeta(wsScheme, true))
	}
	if o.Metrics != nil {
		mux.Handle(MetricsPath, o.Metrics)
	}
	if o.Page != nil {
		mux.Handle("/", o.Page)
	}
	return secure(mux)
}

// secure sets the security headers on every response and bounds what a
// request may send and how long it may take (the WebSocket, which lives
// on, excepted).
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if r.URL.Path != WebSocketPath {
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Now().Add(bodyTimeout))
			rc.SetWriteDeadline(time.Now().Add(bodyTimeout))
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// relWebSocket is the XEP-0156 §3 link relation of RFC 7395.
const relWebSocket = "urn:xmpp:alt-connections:websocket"

// hostMeta answers XEP-0156 §3 discovery: the WebSocket endpoint at the
// host the client asked for, as XRD (RFC 6415 §3) or as JSON (JRD,
// RFC 6415 Appendix A). Anyone may read it (Access-Control-Allow-Origin,
// XEP-0156 §3.1): it holds no secret.
func hostMeta(scheme string, asJSON bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		href := scheme + "://" + r.Host + WebSocketPath
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if asJSON {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"links": []map[string]string{{"rel": relWebSocket, "href": href}},
			})
			return
		}
		w.Header().Set("Content-Type", "application/xrd+xml")
		var b strings.Builder
		b.WriteString("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  <Link rel='" + relWebSocket + "' href='")
		xml.EscapeText(&b, []byte(href))
		b.WriteString("'/>\n</XRD>\n")
		w.Write([]byte(b.String()))
	})
}

// Addr is the HTTPS listener's address (nil when off).
func (s *Server) Addr() net.Addr {
	if s.httpsLn == nil {
		return nil
	}
	return s.httpsLn.Addr()
}

// HTTPAddr is the plain HTTP listener's address (nil when off).
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Shutdown stops accepting and waits (until ctx ends) for requests under
// way. Upgraded WebSocket connections are not its business: they are
// client streams, ended by the server like any other.
func (s *Server) Shutdown(ctx context.Context) error {
	var first error
	for _, srv := range []*http.Server{s.https, s.http} {
		if srv == nil {
			continue
		}
		if err := srv.Shutdown(ctx); err != nil && first == nil {
			first = err
		}
	}
	s.wg.Wait()
	return first
}
