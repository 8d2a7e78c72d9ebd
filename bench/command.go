// Package bench is the `roost bench` command: the load generator (load)
// and the raw TCP relay (relay) that measures the machine's ceiling.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/signal"
	"syscall"
	"time"

	"roost/bench/load"
	"roost/bench/relay"
)

// ErrUsage marks a command line that could not be parsed; the caller
// prints the usage text.
var ErrUsage = errors.New("usage")

// Command runs `roost bench ARGS` or `roost bench relay ARGS`.
func Command(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "relay" {
		return runRelay(ctx, args[1:], stderr)
	}
	fs := flag.NewFlagSet("roost bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c load.Config
	fs.StringVar(&c.Target, "target", "127.0.0.1:5222", "server address host:port")
	fs.StringVar(&c.WebSocket, "ws", "", "XMPP over WebSocket (RFC 7395) at this URL, e.g. wss://HOST:5281/xmpp-websocket, instead of TCP at -target")
	fs.StringVar(&c.Domain, "domain", "localhost", "XMPP domain of the accounts")
	fs.IntVar(&c.Users, "users", 10, "accounts PREFIX1..PREFIXN (pep: the publishers)")
	fs.StringVar(&c.Prefix, "prefix", "user", "account name prefix")
	fs.StringVar(&c.Password, "password", "pass%d", "password; %d is replaced by the account number")
	fs.StringVar(&c.Scenario, "scenario", "chat", "login, chat, idle, presence or pep")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long the load runs")
	fs.IntVar(&c.Rate, "rate", 0, "chat: messages, presence: changes, pep: publishes per second in total (0: as fast as possible)")
	fs.IntVar(&c.Subscribers, "subscribers", 10, "pep: subscribers per publisher (accounts USERS+1..USERS*(SUBSCRIBERS+1))")
	fs.StringVar(&c.PEPSubscribe, "pep-subscribe", "caps", "pep: how subscribers ask for notifications: caps (+notify, XEP-0163) or explicit (pubsub subscribe)")
	fs.IntVar(&c.Workers, "workers", 8, "login: concurrent logins")
	fs.IntVar(&c.Contacts, "contacts", 5, "presence: contacts per user (mutual subscriptions are made first)")
	fs.IntVar(&c.Window, "window", 64, "chat, presence: most sends one sender may have unanswered; pep: most publishes a publisher may have with notifications outstanding (0: unbounded)")
	fs.BoolVar(&c.TLS, "tls", true, "use STARTTLS when offered")
	fs.StringVar(&c.Mech, "mech", "", "SASL mechanism: PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256 (default: PLAIN over TLS, else SCRAM-SHA-1)")
	fs.BoolVar(&c.Raw, "raw", false, "drive `roost bench relay` instead of an XMPP server (the raw ceiling)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: bench: %v", ErrUsage, err)
	}
	c.Progress = stderr
	r, err := load.Run(ctx, c)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.Print(stdout)
	if !r.Succeeded() {
		cause := "see the error lines above"
		if len(r.Causes) == 0 {
			cause = "no login, message or notification got through"
		}
		return fmt.Errorf("bench: nothing succeeded against %s (%s; do the accounts %s1..%s%d exist with password %q?)", c.Target, cause, c.Prefix, c.Prefix, c.Users, c.Password)
	}
	return nil
}

func runRelay(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("roost bench relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:35599", "address to relay on")
	d := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: bench relay: %v", ErrUsage, err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("bench relay: %w", err)
	}
	if *d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *d)
		defer cancel()
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintf(stderr, "relay listening on %s\n", ln.Addr())
	return relay.New(log).Serve(ctx, ln)
}
