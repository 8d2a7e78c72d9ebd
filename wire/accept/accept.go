// Package accept is the one accept loop of the server's TCP listeners
// (client streams, s2s, components): a failed Accept other than a closed
// listener (too many open files, say) is logged and retried after a pause
// instead of spinning or ending the listener, and every TCP connection
// gets keepalive, so that a peer that vanished without a FIN (Wi-Fi,
// cellular, a bridge whose host lost power) is found by the kernel even
// on an idle stream.
package accept

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// retryPause is how long Loop waits after a failed Accept.
const retryPause = 50 * time.Millisecond

// Loop accepts connections on ln until it is closed, handing each to
// handle on the accepting goroutine (handle starts the connection's own
// goroutine, or refuses and closes it). handle returning false ends the
// loop (the service is closing). what names the listener in the log.
func Loop(ln net.Listener, log *slog.Logger, what string, handle func(nc net.Conn) bool) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn(what+": accept failed", "err", err)
			time.Sleep(retryPause)
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3})
		}
		if !handle(nc) {
			return
		}
	}
}
