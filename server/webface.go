package server

import (
	"context"
	"net"
	"time"

	"roost/server/ratelimit"
	"roost/server/web"
	"roost/server/web/page"
	"roost/server/ws"
)

// webFace is the running web face (listen.https, listen.http).
type webFace struct {
	srv *web.Server
	ws  *ws.Handler
}

// startWeb starts the web face (issue 15) when listen.https or
// listen.http is set: XMPP over WebSocket (RFC 7395) into the same c2s
// negotiation and router, XEP-0156 host-meta, /metrics and the status
// page, over the certificate c2s presents.
func (s *Server) startWeb() error {
	cfg := s.cfg
	if cfg.Listen.HTTPS == "" && cfg.Listen.HTTP == "" {
		return nil
	}
	h := &ws.Handler{Env: s.env, EnvFunc: s.clientEnv, Origins: cfg.HTTP.Origins, Admit: s.admitWeb, Log: s.log}
	srv, err := web.Start(web.Options{
		HTTPS: cfg.Listen.HTTPS, HTTP: cfg.Listen.HTTP, TLS: s.env.TLS,
		HeaderTimeout: cfg.HTTP.HeaderTimeout.D(), MaxHeaderBytes: cfg.HTTP.MaxHeaderBytes,
		WebSocket: h, Metrics: s.MetricsHandler(), Page: page.Handler(), Log: s.log,
	})
	if err != nil {
		return err
	}
	s.web = &webFace{srv: srv, ws: h}
	return nil
}

// admitWeb counts a WebSocket connection against limits.connections and
// limits.connections_per_ip, like a TCP one.
func (s *Server) admitWeb(nc net.Conn) (func(), string) {
	ip := ratelimit.HostOf(nc.RemoteAddr())
	if why := s.track(nc, ip); why != "" {
		return nil, why
	}
	return func() { s.untrack(nc, ip) }, ""
}

// stopWeb stops the web face: no new requests, and the WebSocket streams
// (already told of the shutdown with the other sessions) finished before
// the store closes.
func (s *Server) stopWeb(ctx context.Context) {
	if s.web == nil {
		return
	}
	if err := s.web.srv.Shutdown(ctx); err != nil {
		s.log.Warn("shutdown: web", "err", err)
	}
	// Bound WebSocket sessions were closed with the others; streams still
	// negotiating are closed after they had a moment, as TCP ones are.
	wait, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err := s.web.ws.Wait(wait)
	cancel()
	if err != nil {
		s.mu.Lock()
		for nc := range s.conns {
			nc.Close()
		}
		s.mu.Unlock()
	}
	if err := s.web.ws.Wait(ctx); err != nil {
		s.log.Warn("shutdown: websocket streams still open", "err", err)
	}
	s.web = nil
}

// WebAddr is the HTTPS listener's address, or the plain HTTP one when
// only listen.http is set; nil when the web face is off.
func (s *Server) WebAddr() net.Addr {
	if s.web == nil {
		return nil
	}
	if a := s.web.srv.Addr(); a != nil {
		return a
	}
	return s.web.srv.HTTPAddr()
}

// WebHTTPAddr is the plain HTTP listener's address (nil when off).
func (s *Server) WebHTTPAddr() net.Addr {
	if s.web == nil {
		return nil
	}
	return s.web.srv.HTTPAddr()
}
