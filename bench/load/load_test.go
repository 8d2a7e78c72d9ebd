package load

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	base := Config{Options: Options{Target: addr, Domain: "localhost", TLS: true}, Users: 6, Prefix: "user", Password: "pass%d"}
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
