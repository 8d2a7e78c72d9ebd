package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"roost/devices"
	"roost/devices/simulator"
	"roost/server"
)

// TestDeviceHandshakeMessages (issue 17): what a device (the simulator)
// is told when its handshake fails: an unknown identity is refused at once
// with an alert and a hint, a wrong key times out with a hint saying so.
func TestDeviceHandshakeMessages(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Listen.DTLS = "127.0.0.1:0"
		c.Devices.HandshakeTimeout = server.Duration(time.Second)
	})
	d, err := devices.Add(ts.Store(), "localhost", "sensor", "thermometer", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(identity string, psk []byte, within time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		s, err := simulator.Dial(ctx, simulator.Options{Server: ts.DevicesAddr().String(), Identity: identity, PSK: psk})
		if err == nil {
			s.Close()
		}
		return err
	}
	start := time.Now()
	err = dial("ghost@localhost/device", d.PSK, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "refused the identity") || !strings.Contains(err.Error(), "roost device list") {
		t.Fatalf("unknown identity: %v", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("an unknown identity took %v: it should be refused at once, not time out", took)
	}
	wrong := make([]byte, len(d.PSK))
	err = dial("sensor@localhost/device", wrong, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "wrong key") {
		t.Fatalf("wrong key: %v", err)
	}
}
