package server

import (
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
