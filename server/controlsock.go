package server

import (
	"fmt"
	"strings"
	"time"

	"roost/server/admin"
	"roost/server/control"
	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// startControl opens the control socket in data_dir: the CLI's admin
// commands reach the running server there (admin.Handler), since the
// server holds the store's lock. The running server adds what only it
// knows (sessions, kick, shutdown, devices' live state) and ends the
// sessions an operation makes void (a deleted user, a rekeyed or deleted
// device).
func (s *Server) startControl() error {
	l, err := control.Listen(ControlPath(s.cfg))
	if err != nil {
		return err
	}
	s.control = l
	started := time.Now()
	status := func() []string {
		lines := []string{
			"version " + Version,
			fmt.Sprintf("pid %d", pid()),
			"domain " + s.cfg.Domain,
			"up " + time.Since(started).Round(time.Second).String(),
			fmt.Sprintf("sessions %d", s.router.Count()),
			"data_dir " + s.cfg.DataDir,
		}
		return append(lines, s.RemoteStatus()...)
	}
	a := admin.Admin{Store: s.store, Domain: s.cfg.Domain,
		Owners: func() []string { return s.live().Devices.Owners },
		Live:   s.deviceLive}
	h := admin.Handler(a, status, s.log)
	go control.Serve(l, func(req control.Request) control.Response { return s.controlRequest(h, req) }, s.log)
	return nil
}

// controlRequest answers the requests only a running server can, and
// passes the others to the admin handler h.
func (s *Server) controlRequest(h control.Handler, req control.Request) control.Response {
	switch req.Op {
	case "sessions":
		var lines []string
		s.router.Each(func(b *session.Bound) { lines = append(lines, sessionLine(b)) })
		return control.Response{Message: fmt.Sprintf("%d sessions", len(lines)), Lines: lines}
	case "kick":
		j, err := jid.Parse(req.JID)
		if err != nil || j.Local() == "" {
			return control.Response{Error: fmt.Sprintf("kick: %q is not a user's JID (alice@%s or alice@%s/phone)", req.JID, s.cfg.Domain, s.cfg.Domain)}
		}
		n := s.endSessions(j, stanza.StreamPolicyViolation, "the server's operator ended this session")
		if n == 0 {
			return control.Response{Error: fmt.Sprintf("kick: %s has no session", j)}
		}
		s.log.Info("control: kick", "jid", j.String(), "sessions", n)
		return control.Response{Message: fmt.Sprintf("ended %d session(s) of %s", n, j)}
	case "reload":
		applied, restart, err := s.ReloadNow()
		if err != nil {
			return control.Response{Error: "reload: " + err.Error()}
		}
		resp := control.Response{Message: "configuration reloaded"}
		if len(applied) == 0 {
			resp.Lines = append(resp.Lines, "applied: nothing changed that a running server can take")
		} else {
			resp.Lines = append(resp.Lines, "applied: "+strings.Join(applied, ", "))
		}
		if len(restart) > 0 {
			resp.Lines = append(resp.Lines, "needs a restart: "+strings.Join(restart, ", "))
		}
		return resp
	case "shutdown":
		s.log.Info("control: shutdown requested")
		s.requestShutdown()
		return control.Response{Message: "shutting down"}
	}
	resp := h(req)
	if resp.Error != "" {
		return resp
	}
	// What an operation made void ends now, not at the session's next
	// login (issue 17).
	var end jid.JID
	var text string
	switch req.Op {
	case "user.del":
		end, text = s.bareOf(req.JID), "this account was deleted"
	case "device.del":
		end, text = s.bareOf(req.JID), "this device was deleted"
	case "device.rekey":
		end, text = s.bareOf(req.JID), "this device has a new key"
	}
	if end.Local() != "" {
		if n := s.endSessions(end, stanza.StreamNotAuthorized, text); n > 0 {
			resp.Lines = append(resp.Lines, fmt.Sprintf("ended %d live session(s) of %s", n, end))
		}
	}
	return resp
}

// bareOf is the bare JID a command's user or device argument names on
// this domain (a bare localpart is taken as local@domain).
func (s *Server) bareOf(arg string) jid.JID {
	j, err := jid.Parse(arg)
	if err == nil && j.Local() == "" {
		j, err = jid.New(arg, s.cfg.Domain, "")
	}
	if err != nil || j.Domain() != s.cfg.Domain {
		return jid.JID{}
	}
	return j.Bare()
}

// endSessions closes j's sessions (every one for a bare JID) with a
// stream error and returns how many.
func (s *Server) endSessions(j jid.JID, cond stanza.StreamCondition, text string) int {
	var victims []*session.Bound
	for _, b := range s.router.Sessions([]byte(j.Bare().String())) {
		if j.Resource() == "" || b.JID().Resource() == j.Resource() {
			victims = append(victims, b)
		}
	}
	for _, b := range victims {
		b.Close(cond, text)
	}
	return len(victims)
}

// sessionLine describes one bound session for `roost sessions`.
func sessionLine(b *session.Bound) string {
	sm := "-"
	if b.SMEnabled() {
		sm = "sm"
		if b.ResumeID() != "" {
			sm = "sm+resume"
		}
	}
	addr := "-"
	if a := b.RemoteAddr(); a != nil {
		addr = a.String()
	}
	avail := "unavailable"
	if b.Available() {
		avail = "available"
	}
	return strings.Join([]string{b.JID().Bare().String(), b.JID().Resource(), b.TransportName(), addr,
		b.Since().UTC().Format(time.RFC3339), sm, avail}, "\t")
}

// deviceLive describes a device's live state for `roost device list`.
func (s *Server) deviceLive(bare string) string {
	online, addr := "offline", "-"
	for _, b := range s.router.Sessions([]byte(bare)) {
		if b.Device() {
			online = "online"
			if a := b.RemoteAddr(); a != nil {
				addr = a.String()
			}
		}
	}
	seen := "never"
	if s.devices != nil {
		for _, d := range s.devices.Status() {
			if (d.JID == bare || strings.HasPrefix(d.JID, bare+"/")) && !d.LastSeen.IsZero() { // status is by full JID
				seen = d.LastSeen.UTC().Format(time.RFC3339)
			}
		}
	}
	return fmt.Sprintf("%s\tlast_seen=%s\taddress=%s", online, seen, addr)
}
