package server

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"roost/server/c2s"
	"roost/tls/certs"
)

// live is the configuration as SIGHUP last reloaded it (the one Start
// got until then). Only the keys Reload applies are read from it.
func (s *Server) live() *Config {
	if c := s.reloaded.Load(); c != nil {
		return c
	}
	return s.cfg
}

// clientEnv is the c2s environment for a new client connection: the
// limits as last reloaded. Connections already open keep theirs.
func (s *Server) clientEnv() *c2s.Env {
	if e := s.liveEnv.Load(); e != nil {
		return e
	}
	return s.env
}

// Reload applies next, a configuration read again (SIGHUP, as prosodyctl
// reload does), without dropping a session: the certificate and key
// (read again from tls.cert/tls.key or data_dir, so a renewed certificate
// is presented to the connections that follow), the client limits for new
// connections, devices.owners, s2s.routes and admins. It returns what it
// applied and the keys that changed but need a restart; the log level is
// the caller's (it owns the logger). An error (a certificate that does
// not load) leaves everything as it was.
func (s *Server) Reload(next *Config) (applied, restart []string, err error) {
	cur := s.live()
	cert, _, _, err := certs.LoadOrGenerate(next.DataDir, s.cfg.Domain, next.TLS.Cert, next.TLS.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("reload: certificate: %w", err)
	}
	if old := s.cert.Get(); old == nil || !slices.EqualFunc(old.Certificate, cert.Certificate, func(a, b []byte) bool { return string(a) == string(b) }) {
		applied = append(applied, "tls certificate")
	}
	s.cert.Set(cert)
	if err := s.reloadMDNS(); err != nil { // the TXT fingerprint follows the certificate
		s.log.Warn("mdns: re-advertising with the new certificate failed", "err", err)
	}

	env := *s.env // the Budget, router, handler and limiter stay the same objects
	l := next.Limits
	env.Limits.MaxElementBytes, env.Limits.MaxDepth = l.StanzaBytes, l.MaxDepth
	env.PreauthStanzaBytes = l.PreauthStanzaBytes
	env.AuthTimeout, env.WriteTimeout = l.AuthTimeout.D(), l.WriteTimeout.D()
	env.QueueBytes, env.SessionsPerUser = l.OutboundQueueBytes, l.SessionsPerUser
	env.SMQueueBytes, env.CSIHoldBytes, env.IdlePing = l.SMQueueBytes, l.CSIHoldBytes, l.IdlePing.D()
	if !reflect.DeepEqual(cur.Limits, next.Limits) {
		applied = append(applied, "limits (for new connections)")
	}
	s.liveEnv.Store(&env)
	if !slices.Equal(cur.Devices.Owners, next.Devices.Owners) {
		applied = append(applied, "devices.owners")
	}
	if !slices.Equal(cur.Admins, next.Admins) {
		applied = append(applied, "admins")
	}
	if s.route != nil && s.route.Commands != nil {
		s.route.Commands.SetAdmins(next.Admins)
	}
	if !reflect.DeepEqual(cur.S2S.Routes, next.S2S.Routes) {
		applied = append(applied, "s2s.routes")
	}
	if s.s2s != nil {
		s.s2s.SetRoutes(next.S2S.Routes)
	}
	if cur.LogLevel != next.LogLevel {
		applied = append(applied, "log_level")
	}

	// What a running server cannot change: named so the operator knows
	// to restart.
	for _, k := range []struct {
		key      string
		was, now any
	}{
		{"domain", cur.Domain, next.Domain},
		{"data_dir", cur.DataDir, next.DataDir},
		{"listen", cur.Listen, next.Listen},
		{"tls.required", cur.TLS.Required, next.TLS.Required},
		{"uplink", cur.Uplink, next.Uplink},
		{"components", cur.Components, next.Components},
		{"pep", cur.PEP, next.PEP},
		{"s2s (other than routes)", [5]any{cur.S2S.CAFile, cur.S2S.MaxInbound, cur.S2S.MaxOutbound, cur.S2S.IdleTimeout, cur.S2S.QueueBytes},
			[5]any{next.S2S.CAFile, next.S2S.MaxInbound, next.S2S.MaxOutbound, next.S2S.IdleTimeout, next.S2S.QueueBytes}},
		{"devices (other than owners)", devicesBut(cur.Devices), devicesBut(next.Devices)},
		{"http", cur.HTTP, next.HTTP},
		{"scram_iterations", cur.ScramIterations, next.ScramIterations},
	} {
		if !reflect.DeepEqual(k.was, k.now) {
			restart = append(restart, k.key)
		}
	}
	if cur.Limits.PartialStanzaBytes != next.Limits.PartialStanzaBytes || cur.Limits.AuthFailuresPerMinute != next.Limits.AuthFailuresPerMinute ||
		cur.Limits.AuthFailuresPerAccount != next.Limits.AuthFailuresPerAccount || cur.Limits.ResumeTimeout != next.Limits.ResumeTimeout ||
		cur.Limits.Connections != next.Limits.Connections || cur.Limits.ConnectionsPerIP != next.Limits.ConnectionsPerIP {
		restart = append(restart, "limits.partial_stanza_bytes, auth_failures_*, resume_timeout, connections*")
	}
	kept := *next
	kept.Domain, kept.DataDir = s.cfg.Domain, s.cfg.DataDir
	s.reloaded.Store(&kept)
	s.log.Info("configuration reloaded", "applied", strings.Join(applied, ", "), "needs_restart", strings.Join(restart, ", "))
	return applied, restart, nil
}

// devicesBut is devices.* without owners, for comparing.
func devicesBut(d DevicesConfig) DevicesConfig {
	d.Owners = nil
	return d
}
