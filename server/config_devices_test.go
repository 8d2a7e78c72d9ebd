package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigDeviceAckBounds: the datagram binding's bounds
// (docs/datagram-binding.md §5) have config.json defaults and each
// wrong value is refused with the key and what to put there.
func TestConfigDeviceAckBounds(t *testing.T) {
	c, err := LoadConfig(defaults(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Devices; d.AckRetries != 8 || d.AckWindow != 16 || d.MaxUnacked != 256 || d.SocketBufferBytes != 4<<20 {
		t.Fatalf("defaults: %+v", d)
	}
	for _, tc := range []struct{ file, want string }{
		{`{"devices": {"ack_retries": 0}}`, `key "devices.ack_retries": 0 is too small (at least 1)`},
		{`{"devices": {"ack_window": 0}}`, `key "devices.ack_window": 0 is too small (at least 1)`},
		{`{"devices": {"max_unacked": -1}}`, `key "devices.max_unacked": -1 is too small (at least 1)`},
		{`{"devices": {"ack_window": 32, "max_unacked": 20}}`, `key "devices.max_unacked": 20 is smaller than devices.ack_window 32`},
		{`{"devices": {"socket_buffer_bytes": 1000}}`, `key "devices.socket_buffer_bytes": 1000 is too small (at least 65536)`},
		{`{"devices": {"ack_window": "many"}}`, `devices.ack_window`},
		{`{"devices": {"ack_window": 4, "max_unacked": 4, "ack_retries": 3, "socket_buffer_bytes": 65536}}`, ``},
	} {
		path := filepath.Join(t.TempDir(), "c.json")
		os.WriteFile(path, []byte(tc.file), 0o600)
		_, err := LoadConfig(defaults(t), path)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.file, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.file, err, tc.want)
		}
	}
}
