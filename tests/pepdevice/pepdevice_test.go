// Package pepdevice tests devices publishing their readings over PEP
// (XEP-0163; docs/datagram-binding.md §6) end to end: the simulator over
// real DTLS publishes, its owner's slixmpp client gets the notifications,
// a user on a real Prosody behind the uplink gets them too, the latest
// item survives a clean restart and a kill -9, and a device reporting ten
// times a second costs the SD card a few commits a minute.
package pepdevice

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"roost/server/control"
	"strings"
	"testing"
	"time"

	"roost/devices"
	"roost/devices/simulator"
	"roost/server"
	"roost/storage"
	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

func needSlixmpp(t *testing.T) {
	t.Helper()
	testutil.Need(t, "python3-slixmpp", exec.Command(python, "-c", "import slixmpp").Run() == nil)
}

// gateway is an in-process Roost with the DTLS listener, a user alice and
// a device thermo1 she owns (a mutual presence subscription, as `roost
// device add -owner alice` makes).
type gateway struct {
	srv *server.Server
	cfg *server.Config
	dev storage.Device
}

func newGateway(t *testing.T, edit func(*server.Config)) *gateway {
	t.Helper()
	cfg := testutil.Config(t)
	cfg.Listen.DTLS = "127.0.0.1:0"
	if edit != nil {
		edit(cfg)
	}
	srv := testutil.Start(t, cfg)
	if err := srv.Store().AddUser("alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	dev, err := devices.Add(srv.Store(), cfg.Domain, "thermo1", "thermometer", "Kitchen", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	return &gateway{srv: srv, cfg: cfg, dev: dev}
}

func (g *gateway) bare() string { return g.dev.Name + "@" + g.cfg.Domain }

// device runs the simulator (`roost device simulate`'s code) over DTLS
// until the test ends.
func (g *gateway) device(t *testing.T, every time.Duration, readings int) *simulator.Sensor {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	var logs testutil.LockedBuffer
	s, err := simulator.Dial(dctx, simulator.Options{Server: g.srv.DevicesAddr().String(), Identity: devices.Identity(g.dev, g.cfg.Domain),
		PSK: g.dev.PSK, Every: every, Readings: readings, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("simulator: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the simulator did not stop within 10 s")
		}
		s.Close()
		if os.Getenv("ROOST_TEST_LOG") != "" || t.Failed() {
			t.Logf("simulator log:\n%s", logs.String())
		}
	})
	return s
}

// owner starts owner.py as jid (password pw) on the server at addr.
func owner(t *testing.T, label, addr, jid, pw string, extra ...string) *testutil.Script {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"owner.py", jid, pw, host, port}, extra...)
	return testutil.RunScript(t, label, 3*time.Minute, python, args...)
}

// expectReading waits for a reading from the device from and checks the
// payload's fields (docs/datagram-binding.md §6.1).
func expectReading(t *testing.T, s *testutil.Script, from string, within time.Duration) []string {
	t.Helper()
	f := strings.Fields(s.Expect("reading", within))
	// FROM ITEM_ID SENSOR VALUE UNIT TIME
	if len(f) != 6 || f[0] != from || f[1] != "temperature" || f[2] != "temperature" || f[4] != "Cel" {
		s.Fail("reading %q: want from %s, item and sensor temperature, unit Cel", f, from)
	}
	if _, err := time.Parse(time.RFC3339, f[5]); err != nil {
		s.Fail("reading time %q: %v", f[5], err)
	}
	return f
}

// TestOwnerGetsReadings: slixmpp users get every reading of a device as
// PEP notifications: its owner alice by caps (urn:roost:sensor:0+notify,
// XEP-0163 §4.3), and bob, a client without that interest (a "from"
// subscription to the device), by an explicit subscription (XEP-0060
// §6.1), which also hands over the latest item at once.
func TestOwnerGetsReadings(t *testing.T) {
	needSlixmpp(t)
	g := newGateway(t, nil)
	if err := g.srv.Store().AddUser("bob", "bob-pw"); err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Store().Update(func(tx *storage.Tx) error {
		_, err := tx.PutRosterItem(g.dev.Name, storage.RosterItem{JID: "bob@" + g.cfg.Domain, Subscription: "from"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	addr := g.srv.Addrs()[0].String()
	sim := g.device(t, 200*time.Millisecond, 0)
	t.Run("caps", func(t *testing.T) {
		// alice/plain has no +notify in its caps: it gets nothing, which
		// shows once alice/caps, notified in the same fan-out, got five.
		plain := owner(t, "alice without +notify", addr, "alice@"+g.cfg.Domain+"/plain", "alice-pw", "--cafile", g.srv.CertPath())
		plain.Expect("ready", 30*time.Second)
		c := owner(t, "alice by caps", addr, "alice@"+g.cfg.Domain+"/caps", "alice-pw", "--cafile", g.srv.CertPath(), "--notify")
		c.Expect("ready", 30*time.Second)
		for i := 0; i < 5; i++ {
			expectReading(t, c, g.bare(), 10*time.Second)
		}
		c.Tell("quit")
		c.Finish(10 * time.Second)
		plain.Tell("quit")
		if n := plain.Expect("bye", 10*time.Second); n != "0" {
			plain.Fail("a client without urn:roost:sensor:0+notify got %s readings", n)
		}
	})
	t.Run("subscribe", func(t *testing.T) {
		c := owner(t, "bob by subscription", addr, "bob@"+g.cfg.Domain+"/sub", "bob-pw", "--cafile", g.srv.CertPath(),
			"--subscribe", g.bare())
		if got := c.Expect("subscription", 30*time.Second); got != "subscribed" {
			c.Fail("subscription state %q, want subscribed", got)
		}
		c.Expect("ready", 10*time.Second)
		for i := 0; i < 5; i++ {
			expectReading(t, c, g.bare(), 10*time.Second)
		}
		c.Tell("quit")
		c.Finish(10 * time.Second)
	})
	if sim.Published() == 0 {
		t.Errorf("the simulator counted no publish confirmed")
	}
	t.Logf("%d readings reported, %d publishes confirmed", sim.Reported(), sim.Published())
}

// TestProsodyUserGetsReadings: user1 on the real Prosody of tests/peers,
// to which Roost is a component (gw.prosody.test, XEP-0114), subscribes
// explicitly to the device's node across the uplink and gets its
// readings. The device's roster gives user1 a "from" subscription (what
// the presence access model asks, XEP-0060 §4.5), as `device add -owner`
// does for local owners; an explicit subscription rather than caps,
// because a Prosody user's caps-based interest would need Prosody to send
// its presence to the device, that is a roster subscription on Prosody's
// side too.
func TestProsodyUserGetsReadings(t *testing.T) {
	_, err := exec.LookPath("prosodyctl")
	testutil.Need(t, "prosody", err == nil)
	needSlixmpp(t)
	testutil.LockPeers(t)
	peers(t, "wipe", "prosody")
	peers(t, "start", "prosody")
	t.Cleanup(func() { peers(t, "stop", "prosody") })
	peers(t, "users", "prosody", "1")

	g := newGateway(t, func(c *server.Config) {
		c.Domain = "gw.prosody.test"
		c.Uplink.Component.Address = "127.0.0.1:16347"
		c.Uplink.Component.Secret = "gwsecret"
	})
	user := "user1@prosody.test"
	// What the operator runs: roost device share NAME user1@prosody.test
	// (through the running server's control socket).
	resp, err := control.Call(server.ControlPath(g.cfg), control.Request{Op: "device.share", JID: g.dev.Name, Owner: user})
	if err != nil || resp.Error != "" {
		t.Fatalf("device share: %v %s", err, resp.Error)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(strings.Join(g.srv.RemoteStatus(), " "), ": up ") {
		if time.Now().After(deadline) {
			t.Fatalf("the uplink to Prosody is not up after 30 s: %q", g.srv.RemoteStatus())
		}
		time.Sleep(100 * time.Millisecond)
	}
	sim := g.device(t, 200*time.Millisecond, 0)
	u := owner(t, "user1 on prosody", "127.0.0.1:16222", user, "pass1", "--subscribe", g.bare())
	if got := u.Expect("subscription", 30*time.Second); got != "subscribed" {
		u.Fail("subscription state %q, want subscribed", got)
	}
	u.Expect("ready", 10*time.Second)
	for i := 0; i < 5; i++ {
		expectReading(t, u, g.bare(), 10*time.Second)
	}
	u.Tell("quit")
	u.Finish(10 * time.Second)
	t.Logf("uplink %q; %d readings reported, %d publishes confirmed", g.srv.RemoteStatus(), sim.Reported(), sim.Published())
}

// peersDir keeps this package's Prosody state apart from the others'
// (they all hold testutil.LockPeers while it runs: fixed ports).
const peersDir = "/tmp/roost-peers-pepdevice"

func peers(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("../peers/peers.sh", args...)
	cmd.Env = append(os.Environ(), "PEERS_DIR="+peersDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("peers.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
