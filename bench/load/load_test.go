package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"roost/bench/relay"
	"roost/server"
	"roost/tests/testutil"
)

// startRoost runs a real server with user1..userN (pass1..passN).
func startRoost(t *testing.T, n int) string {
	addr, _ := startRoostWeb(t, n, false)
	return addr
}

// startRoostWeb is startRoost, with the web face (and so the WebSocket
// at the second result) on an ephemeral port when web is set.
func startRoostWeb(t *testing.T, n int, web bool) (string, string) {
	t.Helper()
	cfg := testutil.Config(t)
	if web {
		cfg.Listen.HTTPS = "127.0.0.1:0"
	}
	srv := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	for i := 1; i <= n; i++ {
		if err := srv.Store().AddUser(fmt.Sprintf("user%d", i), fmt.Sprintf("pass%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	ws := ""
	if web {
		ws = "wss://" + srv.WebAddr().String() + "/xmpp-websocket"
	}
	return srv.Addrs()[0].String(), ws
}

// The load tool's own tests: each scenario briefly against Roost, with
// exact counts.
func TestScenarios(t *testing.T) {
	addr := startRoost(t, 6)
	// Window as roost bench sets it by default: an unbounded sender can
	// outrun its receivers (then dropped as slow readers, by design) when
	// the test runs without -race.
	base := Config{Options: Options{Target: addr, Domain: "localhost", TLS: true}, Users: 6, Prefix: "user", Password: "pass%d", Window: 64}
	t.Run("chat, every message arrives once", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration, c.Rate = "chat", time.Second, 300
		r, err := Run(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		if r.Sent == 0 || r.Sent != r.Received || r.Errors != 0 || r.P50 <= 0 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("chat with SCRAM-SHA-256 and no TLS limit", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration, c.Mech = "chat", 500*time.Millisecond, "SCRAM-SHA-256"
		r, err := Run(t.Context(), c)
		if err != nil || r.Sent != r.Received || r.Errors != 0 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("login", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration, c.Workers = "login", time.Second, 4
		r, err := Run(t.Context(), c)
		if err != nil || r.Logins == 0 || r.Errors != 0 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("presence fan-out: every change reaches every contact and the sender", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration, c.Rate, c.Contacts = "presence", time.Second, 60, 2
		r, err := Run(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		if r.Sent == 0 || r.Received != r.Sent*3 {
			t.Fatalf("%d changes should give %d deliveries (2 contacts + self), got %+v", r.Sent, r.Sent*3, r)
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration = "idle", 300*time.Millisecond
		r, err := Run(t.Context(), c)
		if err != nil || r.Logins != 6 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("wrong password is an error, not a hang", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration, c.Password = "idle", 100*time.Millisecond, "nope"
		if _, err := Run(t.Context(), c); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("logins to missing accounts say why and count as nothing done", func(t *testing.T) { missingAccountsSayWhy(t, base) })
}

// The same scenarios over WebSocket (RFC 7395): the login code is the
// TCP client's, the transport frames it.
func TestScenariosWebSocket(t *testing.T) {
	_, ws := startRoostWeb(t, 6, true)
	base := Config{Options: Options{WebSocket: ws, Domain: "localhost", TLS: true}, Users: 6, Prefix: "user", Password: "pass%d"}
	t.Run("idle", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration = "idle", 300*time.Millisecond
		r, err := Run(t.Context(), c)
		if err != nil || r.Logins != 6 || r.Errors != 0 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("chat, every message arrives once", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration, c.Rate = "chat", time.Second, 300
		r, err := Run(t.Context(), c)
		if err != nil || r.Sent == 0 || r.Sent != r.Received || r.Errors != 0 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("SCRAM-SHA-256", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration, c.Mech = "login", 300*time.Millisecond, "SCRAM-SHA-256"
		r, err := Run(t.Context(), c)
		if err != nil || r.Logins == 0 || r.Errors != 0 {
			t.Fatalf("%+v %v", r, err)
		}
	})
	t.Run("wrong password is an error, not a hang", func(t *testing.T) {
		c := base
		c.Scenario, c.Duration, c.Password = "idle", 100*time.Millisecond, "nope"
		if _, err := Run(t.Context(), c); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("logins to missing accounts say why and count as nothing done", func(t *testing.T) { missingAccountsSayWhy(t, base) })
}

// The raw ceiling: the same chat load through the relay, exact counts.
func TestRawRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go relay.New(slog.New(slog.NewTextHandler(io.Discard, nil))).Serve(t.Context(), ln)
	c := Config{Options: Options{Target: ln.Addr().String(), Domain: "localhost", Raw: true, Timeout: 5 * time.Second},
		Users: 6, Prefix: "user", Password: "x", Scenario: "chat", Duration: time.Second, Rate: 300}
	r, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.Sent != r.Received || r.Errors != 0 {
		t.Fatalf("%+v", r)
	}
	c.Scenario = "presence"
	if _, err := Run(t.Context(), c); err == nil {
		t.Fatal("presence over the relay should be refused")
	}
}

// The pep scenario against Roost: each reading published reaches each
// subscriber of its publisher exactly once, with caps (+notify) and with
// explicit subscriptions, and every publish is acknowledged.
func TestPEPScenario(t *testing.T) {
	const pubs, subs = 2, 3
	addr := startRoost(t, pubs*(subs+1))
	for _, mode := range []string{"caps", "explicit", "caps"} { // caps again: the explicit subscriptions are cancelled
		t.Run(mode, func(t *testing.T) {
			c := Config{Options: Options{Target: addr, Domain: "localhost", TLS: true}, Users: pubs, Prefix: "user",
				Password: "pass%d", Scenario: "pep", Duration: time.Second, Rate: 40, Subscribers: subs, PEPSubscribe: mode, Window: 16}
			r, err := Run(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			if r.Sent == 0 || r.Received != r.Sent*subs || r.Acked != r.Sent || r.Errors != 0 || r.P50 <= 0 || r.Throughput <= 0 {
				t.Fatalf("%d publishes should give %d notifications and %d acks, no errors: %+v", r.Sent, r.Sent*subs, r.Sent, r)
			}
		})
	}
}

// The caps verification string is XEP-0115 §5.2's example.
func TestCapsVer(t *testing.T) {
	got := capsVer([]discoIdentity{{Category: "client", Type: "pc", Name: "Exodus 0.9.1"}},
		[]string{"http://jabber.org/protocol/muc", "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#items"})
	if got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Fatalf("ver %q", got)
	}
}

// missingAccountsSayWhy (issue 17): logins to accounts that do not exist
// report their cause (the SASL condition, without the account) and count
// as nothing done, whatever the transport.
func missingAccountsSayWhy(t *testing.T, base Config) {
	c := base
	c.Scenario, c.Duration, c.Workers, c.Prefix = "login", 300*time.Millisecond, 2, "nobody"
	c.Options.Mech = "SCRAM-SHA-1"
	r, err := Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Succeeded() || r.Errors == 0 || len(r.Causes) == 0 {
		t.Fatalf("%+v", r)
	}
	// Each cause is a SASL condition without the account: the wrong
	// password itself, and (once the address's budget is spent, issue
	// 12) the rate limit's temporary-auth-failure.
	for cause := range r.Causes {
		if !strings.HasPrefix(cause, "SASL ") || strings.Contains(cause, "nobody") {
			t.Fatalf("cause %q: want the SASL condition, without the account", cause)
		}
	}
	if r.Causes["SASL not-authorized: no such account, or a wrong password"] == 0 {
		t.Fatalf("causes %v: want not-authorized among them", r.Causes)
	}
	var out strings.Builder
	r.Print(&out)
	if !strings.Contains(out.String(), "error: ") {
		t.Fatalf("printed no cause:\n%s", out.String())
	}
}
