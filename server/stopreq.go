package server

import (
	"errors"
	"os"
	"sync"
)

// stopRequest is how `roost shutdown` (the control socket) asks the
// process that runs the server to stop it as SIGTERM would.
type stopRequest struct {
	once sync.Once
	ch   chan struct{}
}

func (s *Server) stopReq() *stopRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopR == nil {
		s.stopR = &stopRequest{ch: make(chan struct{})}
	}
	return s.stopR
}

// ShutdownRequested is closed when `roost shutdown` asked the server to
// stop; whoever runs it then calls Shutdown.
func (s *Server) ShutdownRequested() <-chan struct{} { return s.stopReq().ch }

func (s *Server) requestShutdown() {
	r := s.stopReq()
	r.once.Do(func() { close(r.ch) })
}

func pid() int { return os.Getpid() }

// SetReloader sets what reloads the configuration (the process that runs
// the server knows its config file and logger): SIGHUP and `roost reload`
// both call it, one at a time.
func (s *Server) SetReloader(fn func() (applied, restart []string, err error)) {
	s.mu.Lock()
	s.reloader = fn
	s.mu.Unlock()
}

// ReloadNow reloads the configuration with the reloader (SetReloader);
// reloads are serialised.
func (s *Server) ReloadNow() (applied, restart []string, err error) {
	s.mu.Lock()
	fn := s.reloader
	s.mu.Unlock()
	if fn == nil {
		return nil, nil, errors.New("this server cannot reload its configuration (it was not started with roost run): restart it")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return fn()
}
