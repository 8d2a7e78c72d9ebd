// Package component tests the accept side of XEP-0114 end to end: a real
// slixmpp ComponentXMPP (a protocol bridge) connects to listen.component
// of an in-process Roost and exchanges messages, iqs and a presence
// subscription with a local slixmpp user (bridge.py); a wrong secret and a
// spoofed from are refused with their stream errors.
package component

import (
	"crypto/sha1"
	"encoding/hex"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"roost/bench/load"
	"roost/storage"
	"roost/tests/testutil"
	"roost/wire/xmlscan"
)

const python = "/usr/bin/python3"

func TestComponentWithSlixmpp(t *testing.T) {
	testutil.Need(t, "python3-slixmpp", exec.Command(python, "-c", "import slixmpp.componentxmpp").Run() == nil)
	cfg := testutil.Config(t)
	cfg.Listen.Component = "127.0.0.1:0"
	const bridge = "bridge.localhost"
	cfg.Components = map[string]string{bridge: "bridge-secret"}
	srv := testutil.Start(t, cfg)
	if err := srv.Store().AddUser("alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	comp := srv.ComponentAddr()
	if comp == nil {
		t.Fatal("no component listener")
	}
	chost, cport, _ := net.SplitHostPort(comp.String())
	uhost, uport, _ := net.SplitHostPort(srv.Addrs()[0].String())
	sc := testutil.RunScript(t, "bridge.py", 120*time.Second, python, "bridge.py",
		"--component", bridge, "bridge-secret", chost, cport,
		"--user", "alice@"+cfg.Domain, "alice-pw", uhost, uport, srv.CertPath())
	for _, check := range []string{"connected", "msg_in", "msg_out", "iq_in", "iq_out", "iq_server",
		"subscribe", "subscribe_back", "wrong_secret", "still_connected", "spoof"} {
		if got := sc.Expect("", 60*time.Second); got != "ok "+check {
			sc.Fail("want ok %s, got %q", check, got)
		}
	}
	if got := sc.Expect("done", 30*time.Second); got != "PASS" {
		sc.Fail("done %s", got)
	}
	sc.Finish(30 * time.Second)
	// The subscription is in the store, as for any remote contact.
	item, found, err := srv.Store().RosterItem("alice", "sensor@"+bridge)
	if err != nil || !found || item.Subscription != "both" {
		t.Fatalf("alice's roster item for the sensor: %+v, %v", item, err)
	}
}

// TestComponentOffline: while the component is not connected, a message
// or an iq to its domain is answered with service-unavailable at once and
// presence is dropped; a domain that is no component's still gets
// remote-server-not-found (no s2s or uplink configured).
func TestComponentOffline(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Listen.Component = "127.0.0.1:0"
	cfg.Components = map[string]string{"bridge.localhost": "bridge-secret"}
	srv := testutil.Start(t, cfg)
	if err := srv.Store().AddUser("alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	c, err := load.Dial(load.Options{Target: srv.Addrs()[0].String(), Domain: cfg.Domain, Password: "alice-pw", TLS: true, Timeout: 10 * time.Second}, "alice", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := time.AfterFunc(20*time.Second, func() { c.Close() }) // every wait has a deadline
	defer stop.Stop()
	c.Send([]byte("<presence to='sensor@bridge.localhost'/>"))
	for _, tc := range []struct{ send, id, want string }{
		{"<message id='m1' to='sensor@bridge.localhost'><body>hi</body></message>", "m1", "service-unavailable"},
		{"<iq type='get' id='i1' to='bridge.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", "i1", "service-unavailable"},
		{"<iq type='get' id='i2' to='elsewhere.example'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", "i2", "remote-server-not-found"},
	} {
		c.Send([]byte(tc.send))
		for {
			tok, err := c.Next()
			if err != nil {
				t.Fatalf("no answer to %s: %v", tc.id, err)
			}
			raw := string(tok.Raw)
			if strings.HasPrefix(raw, "<presence") && strings.Contains(raw, "type='error'") {
				t.Fatalf("presence to an offline component was answered: %s", raw)
			}
			if strings.Contains(raw, "id='"+tc.id+"'") {
				if !strings.Contains(raw, "type='error'") || !strings.Contains(raw, "<"+tc.want) {
					t.Fatalf("%s: got %s, want %s", tc.id, raw, tc.want)
				}
				break
			}
		}
	}
}

// rawComponent connects a component over raw TCP and completes the
// handshake (XEP-0114 §3).
func rawComponent(t *testing.T, addr, domain, secret string) (net.Conn, *xmlscan.Scanner) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // every wait below has a deadline
	scan := xmlscan.New(nc, xmlscan.Limits{})
	nc.Write([]byte("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "'>"))
	tok, err := scan.Next()
	if err != nil || tok.Kind != xmlscan.KindHeader {
		t.Fatalf("stream header: %v", err)
	}
	id, _ := tok.Attr("id")
	sum := sha1.Sum(append(append([]byte(nil), id...), secret...))
	nc.Write([]byte("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>"))
	if tok, err := scan.Next(); err != nil || string(tok.Local) != "handshake" {
		t.Fatalf("handshake: %v %s", err, tok.Raw)
	}
	return nc, scan
}

// TestComponentToComponent: a component's stanza for another component's
// domain goes to that component (its from prepared); for a component that
// is not connected an iq gets service-unavailable back.
func TestComponentToComponent(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Listen.Component = "127.0.0.1:0"
	cfg.Components = map[string]string{"a.localhost": "sa", "b.localhost": "sb", "c.localhost": "sc"}
	srv := testutil.Start(t, cfg)
	addr := srv.ComponentAddr().String()
	ac, a := rawComponent(t, addr, "a.localhost", "sa")
	_, b := rawComponent(t, addr, "b.localhost", "sb")
	ac.Write([]byte("<message from='x@A.localhost' to='y@b.localhost' id='m1'><body>hello</body></message>"))
	tok, err := b.Next()
	if err != nil {
		t.Fatal(err)
	}
	if raw := string(tok.Raw); !strings.Contains(raw, "from='x@a.localhost'") || !strings.Contains(raw, "<body>hello</body>") {
		t.Fatalf("b got %s", raw)
	}
	ac.Write([]byte("<iq type='get' id='q1' from='x@a.localhost' to='c.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
	tok, err = a.Next()
	if err != nil {
		t.Fatal(err)
	}
	if raw := string(tok.Raw); !strings.Contains(raw, "id='q1'") || !strings.Contains(raw, "type='error'") || !strings.Contains(raw, "<service-unavailable") {
		t.Fatalf("a got %s", raw)
	}
}

// TestComponentGetsPresenceOnConnect: a user already online, with a
// contact at a component's domain, is not silent to a bridge that
// connects later: the bridge gets the user's presence (to its contact)
// and a probe for the contact's, as a link that comes up does (RFC 6121
// §4.2.2, §4.3).
func TestComponentGetsPresenceOnConnect(t *testing.T) {
	cfg := testutil.Config(t)
	cfg.Listen.Component = "127.0.0.1:0"
	cfg.Components = map[string]string{"zigbee.localhost": "sz"}
	srv := testutil.Start(t, cfg)
	if err := srv.Store().AddUser("alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	err := srv.Store().Update(func(tx *storage.Tx) error {
		_, err := tx.PutRosterItem("alice", storage.RosterItem{JID: "lamp@zigbee.localhost", Subscription: "both"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := load.Dial(load.Options{Target: srv.Addrs()[0].String(), Domain: cfg.Domain, TLS: true, Password: "alice-pw", Timeout: 10 * time.Second}, "alice", "desk", true)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	// alice's initial presence is routed once it is in (a ping round
	// trip orders it before the component connects).
	alice.Send([]byte("<iq type='get' id='p' to='" + cfg.Domain + "'><ping xmlns='urn:xmpp:ping'/></iq>"))
	for {
		tok, err := alice.Next()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(tok.Raw), "id='p'") {
			break
		}
	}
	_, z := rawComponent(t, srv.ComponentAddr().String(), "zigbee.localhost", "sz")
	got := map[string]bool{}
	for !got["presence"] || !got["probe"] {
		tok, err := z.Next()
		if err != nil {
			t.Fatalf("the component got %v and then: %v", got, err)
		}
		raw := string(tok.Raw)
		switch {
		case strings.Contains(raw, "type='probe'") && strings.Contains(raw, "to='lamp@zigbee.localhost'"):
			got["probe"] = true
		case strings.HasPrefix(raw, "<presence") && !strings.Contains(raw, "type=") && strings.Contains(raw, "from='alice@"+cfg.Domain+"/desk'"):
			got["presence"] = true
		}
	}
}
