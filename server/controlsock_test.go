package server_test

import (
	"strings"
	"testing"
	"time"

	"roost/devices"
	"roost/server"
	"roost/server/control"
)

// TestControlEndsVoidSessions (issue 17): through the running server's
// control socket, device list shows a device online with its address and
// last seen, device set changes owners and label without a new key, and
// rekeying a device ends its session on the old key at once (the device
// then needs the new key); kick ends one user session.
func TestControlEndsVoidSessions(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Listen.DTLS = "127.0.0.1:0" })
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "carol", "pw")
	d, err := devices.Add(ts.Store(), "localhost", "sensor", "thermometer", "Hall", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	sock := server.ControlPath(ts.Config())
	call := func(req control.Request) control.Response {
		t.Helper()
		resp, err := control.Call(sock, req)
		if err != nil {
			t.Fatalf("%s: %v", req.Op, err)
		}
		if resp.Error != "" {
			t.Fatalf("%s: %s", req.Op, resp.Error)
		}
		return resp
	}
	alice := login(t, ts, "alice", "pw", "r")
	alice.send("<presence/>")
	dev := dialDevice(t, ts, "sensor@localhost/device", d.PSK)
	dev.send(t, "<presence/>")
	alice.expect("the device's presence", func(e *element) bool {
		return e.XMLName.Local == "presence" && e.attr("from") == "sensor@localhost/device"
	})

	list := call(control.Request{Op: "device.list"})
	if len(list.Lines) != 1 || !strings.Contains(list.Lines[0], "online") || !strings.Contains(list.Lines[0], "address=127.0.0.1:") || strings.Contains(list.Lines[0], "last_seen=never") {
		t.Fatalf("device list: %q", list.Lines)
	}
	set := call(control.Request{Op: "device.set", JID: "sensor", Label: "Kitchen", Owner: "alice,carol", SetLabel: true, SetOwner: true})
	if !strings.Contains(set.Message, `label "Kitchen"`) || !strings.Contains(set.Message, "carol@localhost") {
		t.Fatalf("device set: %q", set.Message)
	}
	if got, _ := devices.List(ts.Store()); string(got[0].PSK) != string(d.PSK) || got[0].Label != "Kitchen" {
		t.Fatalf("after set: %+v (the key must not change)", got[0])
	}

	rekey := call(control.Request{Op: "device.rekey", JID: "sensor"})
	if !strings.Contains(strings.Join(rekey.Lines, "\n"), "ended 1 live session(s) of sensor@localhost") {
		t.Fatalf("rekey: %q", rekey.Lines)
	}
	alice.expect("the device going unavailable", func(e *element) bool {
		return e.XMLName.Local == "presence" && e.attr("from") == "sensor@localhost/device" && e.attr("type") == "unavailable"
	})
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-dev.in:
		case <-deadline:
			t.Fatal("the device's association on the old key is still open 10 s after rekey")
		}
	}
	if n := len(call(control.Request{Op: "sessions"}).Lines); n != 1 {
		t.Fatalf("sessions after rekey: %d, want alice's only", n)
	}
	kick := call(control.Request{Op: "kick", JID: "alice@localhost/r"})
	if !strings.Contains(kick.Message, "ended 1 session") {
		t.Fatalf("kick: %q", kick.Message)
	}
	alice.expectStreamError("policy-violation")
}
