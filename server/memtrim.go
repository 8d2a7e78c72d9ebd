package server

import (
	"runtime/debug"
	"time"
)

// trimQuiet is how long connections must neither open nor close before
// freed memory is handed back.
const trimQuiet = 5 * time.Second

// trimMemory hands freed heap back to the OS once the server has been
// quiet for trimQuiet after connections came or went. A burst (a power
// cut's reconnect storm, logins with TLS and SCRAM) leaves garbage that
// the Go runtime would return only slowly; on a gateway, RSS is the
// budget. It never runs while connections keep churning.
func (s *Server) trimMemory(stop <-chan struct{}) {
	t := time.NewTicker(trimQuiet)
	defer t.Stop()
	last := s.churn.Load()
	trimmed := last
	for {
		select {
		case <-t.C:
			c := s.churn.Load()
			if c == last && c != trimmed {
				debug.FreeOSMemory()
				trimmed = c
			}
			last = c
		case <-stop:
			return
		}
	}
}
