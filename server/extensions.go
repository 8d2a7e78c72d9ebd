package server

import (
	"roost/server/blocking"
	"roost/server/caps"
	"roost/server/lastactivity"
	"roost/server/pep"
	"roost/server/private"
	"roost/server/vcard"
	"roost/wire/jid"
	"time"
)

// wireExtensions makes the XEPs the server answers beside RFC 6121 (issue
// 16): entity capabilities, PEP, blocking, private storage, vCards and
// last activity. Their Remote is set once federation is up (s.im.Remote).
func (s *Server) wireExtensions() {
	cfg := s.cfg
	r := s.route
	r.Caps = &caps.Cache{Domain: cfg.Domain, Max: cfg.PEP.CapsCache, Log: s.log,
		Send: func(to jid.JID, b []byte) { r.SendTo(to, b) }}
	r.PEP = &pep.Service{Domain: cfg.Domain, Store: s.store, Router: s.router, Caps: r.Caps, Log: s.log,
		Remote:        func(to string, b []byte) { r.SendRemote(to, b) },
		FlushInterval: cfg.PEP.FlushInterval.D(), MaxNodes: cfg.PEP.MaxNodes, MaxItems: cfg.PEP.MaxItems,
		MaxItemBytes: cfg.PEP.MaxItemBytes, MaxSubscribers: cfg.PEP.MaxSubscribers, MaxAccountBytes: cfg.PEP.AccountBytes}
	r.Caps.Known = r.PEP.Known
	r.Blocking = &blocking.Service{Domain: cfg.Domain, Store: s.store, Router: s.router, Max: cfg.Limits.BlockListItems, Log: s.log,
		Remote: func(to string, b []byte) { r.SendRemote(to, b) }}
	r.Private = &private.Service{Domain: cfg.Domain, Store: s.store, MaxBytes: cfg.Limits.PrivateBytes}
	r.VCard = &vcard.Service{Domain: cfg.Domain, Store: s.store, MaxBytes: cfg.Limits.VCardBytes}
	r.Last = &lastactivity.Service{Domain: cfg.Domain, Store: s.store, Router: s.router, Started: time.Now()}
}

// Caps is the server's entity-capabilities cache (XEP-0115), for tests
// that check what it learned.
func (s *Server) Caps() *caps.Cache { return s.route.Caps }
