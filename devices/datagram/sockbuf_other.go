//go:build !linux

package datagram

import (
	"errors"
	"syscall"
)

// setRecvBuffer leaves the operating system's default receive buffer on
// systems other than Linux (the gateways Roost targets run Linux).
func setRecvBuffer(c syscall.RawConn, n int) (int, error) {
	return 0, errors.ErrUnsupported
}
