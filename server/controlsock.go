package server

import (
	"fmt"
	"time"

	"roost/server/admin"
	"roost/server/control"
)

// startControl opens the control socket in data_dir: the CLI's admin
// commands reach the running server there (admin.Handler), since the
// server holds the store's lock.
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
			"domain " + s.cfg.Domain,
			"up " + time.Since(started).Round(time.Second).String(),
			fmt.Sprintf("sessions %d", s.router.Count()),
			"data_dir " + s.cfg.DataDir,
		}
		return append(lines, s.RemoteStatus()...)
	}
	a := admin.Admin{Store: s.store, Domain: s.cfg.Domain, DeviceOwners: s.cfg.Devices.Owners}
	go control.Serve(l, admin.Handler(a, status, s.log), s.log)
	return nil
}
