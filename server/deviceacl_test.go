package server_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"roost/devices"
	"roost/server"
	"roost/storage"
)

// testDevice is a real DTLS device association whose received datagrams
// the test reads.
type testDevice struct {
	conn *dtls.Conn
	in   chan string
}

func dialDevice(t *testing.T, ts *testServer, identity string, psk []byte) *testDevice {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dtls.Client(udp, ts.DevicesAddr(), &dtls.Config{
		PSK:             func([]byte) ([]byte, error) { return psk, nil },
		PSKIdentityHint: []byte(identity),
		CipherSuites:    []dtls.CipherSuiteID{dtls.TLS_PSK_WITH_AES_128_CCM_8},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatalf("DTLS handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	d := &testDevice{conn: c, in: make(chan string, 64)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(d.in)
				return
			}
			d.in <- string(buf[:n])
		}
	}()
	return d
}

func (d *testDevice) send(t *testing.T, s string) {
	t.Helper()
	if _, err := d.conn.Write([]byte(s)); err != nil {
		t.Fatalf("device write: %v", err)
	}
}

// nextIQ returns the next iq datagram the device receives.
func (d *testDevice) nextIQ(t *testing.T) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s, ok := <-d.in:
			if !ok {
				t.Fatal("device association closed")
			}
			if strings.HasPrefix(s, "<iq") {
				return s
			}
		case <-deadline:
			t.Fatal("the device received no iq within 10s")
		}
	}
}

// TestDeviceAcceptsRequestsFrom is issue 12 item 4: mallory, no relation
// to the device, could run its XEP-0050 commands. A device takes iq
// requests only from whom devices.accept_from allows; others get
// forbidden from the device's address, and the device never sees them.
func TestDeviceAcceptsRequestsFrom(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		allowed map[string]bool
	}{
		// root is one of the gateway's admins: allowed whatever the mode.
		{"owners", map[string]bool{"alice": true, "root": true}},
		{"contacts", map[string]bool{"alice": true, "carol": true, "root": true}},
		{"anyone", map[string]bool{"alice": true, "carol": true, "mallory": true, "root": true}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ts := startServer(t, func(c *server.Config) {
				c.Devices.AcceptFrom = tc.mode
				c.Listen.DTLS = "127.0.0.1:0"
				c.Admins = []string{"root@localhost"}
			})
			for _, u := range []string{"alice", "carol", "mallory", "root"} {
				ts.addUser(t, u, "pw")
			}
			d, err := devices.Add(ts.Store(), "localhost", "sensor2", "thermostat", "Hall", []string{"alice"})
			if err != nil {
				t.Fatal(err)
			}
			// carol is a contact: the device's roster gives her a
			// subscription from the device (she sees its presence).
			err = ts.Store().Update(func(tx *storage.Tx) error {
				_, err := tx.PutRosterItem("sensor2", storage.RosterItem{JID: "carol@localhost", Subscription: "from"})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			clients := map[string]*rawClient{}
			for _, u := range []string{"alice", "carol", "mallory", "root"} {
				clients[u] = login(t, ts, u, "pw", "r")
			}
			alice := clients["alice"]
			alice.send("<presence/>")
			dev := dialDevice(t, ts, "sensor2@localhost/device", d.PSK)
			dev.send(t, "<presence><status>on</status></presence>")
			// The owner seeing the device's presence means it is bound.
			alice.expect("the device's presence", func(e *element) bool {
				return e.XMLName.Local == "presence" && e.attr("from") == "sensor2@localhost/device"
			})
			for _, u := range []string{"mallory", "carol", "root", "alice"} {
				c := clients[u]
				for _, typ := range []string{"set", "get"} {
					id := u + "-" + typ
					c.send("<iq type='" + typ + "' id='" + id + "' to='sensor2@localhost/device'><command xmlns='http://jabber.org/protocol/commands' node='set' action='execute'/></iq>")
					if !tc.allowed[u] {
						e := c.expect("the forbidden error", func(e *element) bool { return e.XMLName.Local == "iq" && e.attr("id") == id })
						if e.attr("type") != "error" || !strings.Contains(e.Inner, "<forbidden ") || e.attr("from") != "sensor2@localhost/device" {
							t.Fatalf("%s's %s: got %s, want forbidden from the device", u, typ, e)
						}
						continue
					}
					// The device's next iq is this one: refused requests
					// sent before it never reached the device.
					got := dev.nextIQ(t)
					if !strings.Contains(got, "id='"+id+"'") || !strings.Contains(got, "from='"+u+"@localhost/r'") {
						t.Fatalf("device got %s, want %s's request %s", got, u, id)
					}
					dev.send(t, "<iq type='result' id='"+id+"' to='"+u+"@localhost/r'/>")
					e := c.expect("the device's answer", func(e *element) bool { return e.XMLName.Local == "iq" && e.attr("id") == id })
					if e.attr("type") != "result" || e.attr("from") != "sensor2@localhost/device" {
						t.Fatalf("%s's %s: got %s, want the device's result", u, typ, e)
					}
				}
			}
			// Nothing refused is still on its way to the device.
			alice.send("<iq type='get' id='last' to='sensor2@localhost/device'><ping xmlns='urn:xmpp:ping'/></iq>")
			if got := dev.nextIQ(t); !strings.Contains(got, "id='last'") {
				t.Fatalf("device got %s, want alice's last ping", got)
			}
		})
	}
}
