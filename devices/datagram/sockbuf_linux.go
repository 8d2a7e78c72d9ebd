package datagram

import (
	"syscall"
)

// setRecvBuffer sizes the listening socket's receive buffer to n bytes:
// SO_RCVBUFFORCE when the process may (CAP_NET_ADMIN, as a system service
// run as root), else SO_RCVBUF, which Linux caps at net.core.rmem_max. It
// returns the size the kernel reports (twice what it grants, socket(7)).
func setRecvBuffer(c syscall.RawConn, n int) (got int, err error) {
	cerr := c.Control(func(fd uintptr) {
		if err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n); err != nil {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}
		if err == nil {
			got, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	return got, err
}
