package server

import (
	"fmt"
	"net"

	"roost/server/component"
	"roost/server/route"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// startComponents accepts external components on listen.component
// (XEP-0114) when it is set: bridges (Zigbee, Modbus, MQTT) that run
// beside Roost and authenticate with their domain's secret ("components").
// Stanzas to a component's domain leave through route.Remote, wrapped so
// that a component's domain goes to its session and any other domain to
// the way out that was there before (s2s, the uplink, or none).
//
// prepareComponents runs before federation and the uplink are started
// (they set the way out behind it with setRemote, before anything reads
// it); startComponents then accepts.
func (s *Server) prepareComponents() error {
	addr := s.cfg.Listen.Component
	if addr == "" {
		return nil
	}
	domains := make(map[string]string, len(s.cfg.Components))
	for d, secret := range s.cfg.Components {
		domains[d] = secret // Validate checked they are prepared domains
	}
	if len(domains) == 0 {
		s.log.Warn("listen.component is set but \"components\" is empty: every component will be refused")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (component): %w", addr, err)
	}
	s.listeners = append(s.listeners, ln)
	l := s.cfg.Limits
	svc := component.New(component.Config{
		Domains:      domains,
		Limits:       xmlscan.Limits{MaxElementBytes: l.StanzaBytes, MaxDepth: l.MaxDepth, Budget: s.env.Limits.Budget},
		PreauthBytes: l.PreauthStanzaBytes,
		AuthTimeout:  l.AuthTimeout.D(),
		WriteTimeout: l.WriteTimeout.D(),
		QueueBytes:   l.OutboundQueueBytes,
		PendingPerIP: l.ConnectionsPerIP,
		MaxPending:   max(len(domains)*4, 16),
	}, s.route, s.log)
	s.compOut = &componentOut{comps: svc, refuse: s.route.Refused}
	s.route.Remote = s.compOut
	s.im.Remote = s.route.SendRemote
	s.components, s.componentLn = svc, ln
	return nil
}

// startComponents starts accepting components (prepareComponents made
// the listener and the service).
func (s *Server) startComponents() {
	if s.components == nil {
		return
	}
	s.log.Info("listening", "addr", s.componentLn.Addr().String(), "component", true, "domains", len(s.cfg.Components))
	s.components.Start(s.componentLn)
}

// setRemote sets the way out to other domains (s2s or the uplink): behind
// the components when there are some. Called during Start, before any
// stanza is routed.
func (s *Server) setRemote(r route.Remote) {
	if s.compOut != nil {
		s.compOut.next = r
	} else {
		s.route.Remote = r
	}
	s.im.Remote = s.route.SendRemote
}

// stopComponents ends every component session with system-shutdown and
// waits for them; Shutdown calls it before the store closes (what a
// component sends is routed into the store: offline messages, rosters).
func (s *Server) stopComponents() {
	if s.components != nil {
		s.components.Close()
	}
}

// ComponentAddr is the address listen.component is bound to (useful when
// the config asked for port 0); nil when components are off.
func (s *Server) ComponentAddr() net.Addr {
	if s.components == nil {
		return nil
	}
	return s.components.Addr()
}

// ComponentStatus describes each configured component (connected or not).
func (s *Server) ComponentStatus() []string {
	if s.components == nil {
		return nil
	}
	return s.components.Status()
}

// componentOut is route.Remote with components: a stanza for a
// component's domain goes to its session; for another domain to next.
// What cannot go (the component is not connected, no way to other
// domains) is answered to its sender at once through refuse: a message or
// an iq with service-unavailable (XEP-0114 components are services) or
// remote-server-not-found; presence is dropped.
type componentOut struct {
	comps  *component.Service
	next   route.Remote
	refuse func(b []byte, cond stanza.Condition, text string)
}

func (o *componentOut) Send(domain string, kind stanza.Kind, b []byte) error {
	if !o.comps.Serves(domain) {
		if o.next == nil {
			o.refuse(b, stanza.RemoteServerNotFound, "this server is not connected to other domains (see uplink and listen.s2s in the configuration)")
			return nil
		}
		return o.next.Send(domain, kind, b)
	}
	if err := o.comps.Send(domain, b); err != nil {
		o.refuse(b, stanza.ServiceUnavailable, "the component "+domain+" is not connected")
	}
	return nil
}
