package server

import (
	"net"

	"roost/devices/datagram"
)

// startDevices starts the DTLS device transport when listen.dtls is set
// (docs/datagram-binding.md): device sessions are bound in the same
// routing table and their stanzas routed by the same rules as client
// streams'.
func (s *Server) startDevices() error {
	cfg := s.cfg
	if cfg.Listen.DTLS == "" {
		return nil
	}
	dl, err := datagram.Listen(datagram.Config{
		Addr:                       cfg.Listen.DTLS,
		Domain:                     cfg.Domain,
		IdleTimeout:                cfg.Devices.IdleTimeout.D(),
		HandshakeTimeout:           cfg.Devices.HandshakeTimeout.D(),
		MaxHandshakes:              cfg.Devices.MaxHandshakes,
		HandshakeFailuresPerMinute: cfg.Devices.HandshakeFailuresPerMinute,
		DatagramBytes:              cfg.Limits.DatagramBytes,
		AckRetries:                 cfg.Devices.AckRetries,
		AckWindow:                  cfg.Devices.AckWindow,
		MaxUnacked:                 cfg.Devices.MaxUnacked,
		SocketBufferBytes:          cfg.Devices.SocketBufferBytes,
	}, s.store, s.router, s.route, s.log)
	if err != nil {
		return err
	}
	s.devices = dl
	return nil
}

// DevicesAddr is the UDP address of the DTLS listener, or nil when
// listen.dtls is off (useful when the config asked for port 0).
func (s *Server) DevicesAddr() net.Addr {
	if s.devices == nil {
		return nil
	}
	return s.devices.Addr()
}
