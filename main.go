// Command roost is a single-binary XMPP server for edge and IoT gateways.
//
//	roost run [-config FILE]                      serve (the embedded config.json when no file is given)
//	roost user add|del|passwd [-config FILE] JID  manage accounts (password on standard input)
//	roost user list [-config FILE]
//	roost check-config [-config FILE]
//	roost version
//
// Account commands work whether or not the server runs: when the store is
// held by a running server they go through its control socket.
package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"roost/bench"
	"roost/devices"
	"roost/devices/datagram"
	"roost/devices/simulator"
	"roost/server"
	"roost/server/control"
	"roost/storage"
)

//go:embed config.json
var defaultConfig []byte

const usage = `usage: roost COMMAND [-config FILE] [ARGS]

commands:
  run                  run the server (embedded default config unless -config)
  user add JID         add an account; the password is read from standard input
  user passwd JID      change an account's password (from standard input)
  user del JID         delete an account and its roster
  user list            list accounts
  device add [-kind K] [-label L] [-owner JID[,JID]] NAME
                       add a DTLS device; prints its JID, PSK identity and PSK (once)
  device list          list devices (never prints keys)
  device del NAME      delete a device and its account data
  device rekey NAME    give a device a new PSK (printed once)
  device simulate -psk HEX [-every 5s] [-server HOST:PORT] NAME
                       run a virtual sensor over DTLS: reports a reading, answers
                       the XEP-0050 commands "read" and "set"
  bench -target HOST:PORT -domain D -users N -scenario login|chat|idle|presence [-duration 10s] [-rate R]
                       load any XMPP server and print figures (see BENCHMARKS.md);
                       -raw drives "bench relay" instead
  bench relay [-listen ADDR]
                       a trivial TCP relay (no XML): the machine's ceiling for bench -raw
  check-config         load and validate the configuration, print it
  version              print the version

Every command takes -config FILE after its name, so the CLI finds the same
data directory as the server it administers.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stderr)
	case "user":
		err = cmdUser(args[1:], stdin, stdout, stderr)
	case "device":
		err = cmdDevice(args[1:], stdout)
	case "bench":
		if err = bench.Command(args[1:], stdout, stderr); errors.Is(err, bench.ErrUsage) {
			err = usageError{err.Error()}
		}
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "roost %s (%s %s/%s)\n", server.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "roost: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "roost: %v\n\n%s", err, usage)
			return 2
		}
		fmt.Fprintf(stderr, "roost: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseFlags reads the flags every command takes and returns the loaded
// configuration and the remaining arguments.
func parseFlags(name string, args []string) (*server.Config, []string, error) {
	fs := flag.NewFlagSet("roost "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", "", "configuration file overlaid on the embedded defaults")
	if err := fs.Parse(args); err != nil {
		return nil, nil, usageError{fmt.Sprintf("%s: %v", name, err)}
	}
	cfg, err := server.LoadConfig(defaultConfig, *path)
	if err != nil {
		return nil, nil, err
	}
	return cfg, fs.Args(), nil
}

func cmdRun(args []string, stderr io.Writer) error {
	cfg, rest, err := parseFlags("run", args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("run: unexpected argument %q", rest[0])}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))
	srv := server.New(cfg, log)
	start := time.Now()
	if err := srv.Start(); err != nil {
		return err
	}
	var dl *datagram.Listener
	if cfg.Listen.DTLS != "" {
		if dl, err = datagram.Listen(srv, cfg.Listen.DTLS, log); err != nil {
			srv.Shutdown(context.Background())
			return err
		}
	}
	log.Info("roost started", "version", server.Version, "domain", cfg.Domain, "data_dir", cfg.DataDir, "certificate", srv.CertPath(), "startup", time.Since(start).Round(time.Microsecond))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	got := <-sig
	log.Info("shutting down", "signal", got.String())
	if dl != nil {
		dl.Close() // devices first: their sessions leave while the store is open
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

func cmdCheckConfig(args []string, stdout io.Writer) error {
	cfg, _, err := parseFlags("check-config", args)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "config OK: domain %s, data_dir %s, c2s %q, c2s_tls %q, tls.required %v\n",
		cfg.Domain, cfg.DataDir, cfg.Listen.C2S, cfg.Listen.C2STLS, cfg.TLS.Required)
	return nil
}

func cmdDevice(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"device: give add, del, rekey or list"}
	}
	sub := args[0]
	fs := flag.NewFlagSet("roost device "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", "", "configuration file")
	kind := fs.String("kind", "", "device kind, for example thermometer")
	label := fs.String("label", "", "a human name, shown in owners' rosters")
	owner := fs.String("owner", "", "bare JID(s) of owners, comma separated")
	pskHex := fs.String("psk", "", "simulate: the device's PSK in hex, as device add printed it")
	every := fs.Duration("every", 5*time.Second, "simulate: how often to report a reading")
	target := fs.String("server", "", "simulate: the gateway's DTLS address (default: listen.dtls, on 127.0.0.1)")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{fmt.Sprintf("device %s: %v", sub, err)}
	}
	cfg, err := server.LoadConfig(defaultConfig, *path)
	if err != nil {
		return err
	}
	req := control.Request{Op: "device." + sub, Kind: *kind, Label: *label, Owner: *owner}
	switch sub {
	case "simulate":
		if fs.NArg() != 1 || *pskHex == "" {
			return usageError{"device simulate needs -psk HEX and the device NAME"}
		}
		return simulate(cfg, fs.Arg(0), *pskHex, *target, *every)
	case "list":
		if fs.NArg() != 0 {
			return usageError{"device list takes no arguments"}
		}
	case "add", "del", "rekey":
		if fs.NArg() != 1 {
			return usageError{fmt.Sprintf("device %s needs exactly one NAME, for example thermo1", sub)}
		}
		req.JID = fs.Arg(0)
	default:
		return usageError{fmt.Sprintf("device: unknown subcommand %q", sub)}
	}
	resp, via, err := administer(cfg, req)
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	if resp.Message != "" {
		fmt.Fprintf(stdout, "%s (%s)\n", resp.Message, via)
	}
	for _, l := range resp.Lines {
		fmt.Fprintln(stdout, l)
	}
	return nil
}

func cmdUser(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"user: give add, del, passwd or list"}
	}
	sub := args[0]
	cfg, rest, err := parseFlags("user "+sub, args[1:])
	if err != nil {
		return err
	}
	req := control.Request{Op: "user." + sub}
	switch sub {
	case "list":
		if len(rest) != 0 {
			return usageError{"user list takes no arguments"}
		}
	case "add", "passwd", "del":
		if len(rest) != 1 {
			return usageError{fmt.Sprintf("user %s needs exactly one JID, for example alice@%s", sub, cfg.Domain)}
		}
		req.JID = rest[0]
		if sub != "del" {
			if req.Password, err = readPassword(stdin, stderr); err != nil {
				return err
			}
		}
	default:
		return usageError{fmt.Sprintf("user: unknown subcommand %q", sub)}
	}
	resp, via, err := administer(cfg, req)
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	for _, u := range resp.Users {
		fmt.Fprintln(stdout, u)
	}
	if resp.Message != "" {
		fmt.Fprintf(stdout, "%s (%s)\n", resp.Message, via)
	}
	return nil
}

// administer runs req on the store directly, or through the running
// server's control socket when the server holds the store. via says which.
func administer(cfg *server.Config, req control.Request) (control.Response, string, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return control.Response{}, "", fmt.Errorf("create data_dir %s: %w", cfg.DataDir, err)
	}
	path := server.StorePath(cfg)
	st, err := storage.Open(path, storage.Options{ScramIterations: cfg.ScramIterations, Timeout: 300 * time.Millisecond})
	if errors.Is(err, storage.ErrLocked) {
		sock := server.ControlPath(cfg)
		resp, err := control.Call(sock, req)
		if err != nil {
			return resp, "", fmt.Errorf("the store %s is in use, and the running server did not answer on %s: %w", path, sock, err)
		}
		return resp, "through the running server at " + sock, nil
	}
	if err != nil {
		return control.Response{}, "", err
	}
	defer st.Close()
	return server.Admin{Store: st, Domain: cfg.Domain, DeviceOwners: cfg.Devices.Owners}.Do(req), "store " + path, nil
}

// readPassword reads one line: from a terminal without echo and twice to
// confirm, otherwise from the pipe as is.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("read password: give it on standard input, for example: echo 'secret' | roost user add alice@localhost")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// simulate runs a virtual sensor until interrupted.
func simulate(cfg *server.Config, name, pskHex, target string, every time.Duration) error {
	psk, err := hex.DecodeString(pskHex)
	if err != nil || len(psk) == 0 {
		return fmt.Errorf("-psk: want the hex key device add printed: %v", err)
	}
	if target == "" {
		if cfg.Listen.DTLS == "" {
			return errors.New("listen.dtls is off in this config: give -server HOST:PORT")
		}
		host, port, _ := net.SplitHostPort(cfg.Listen.DTLS)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		target = net.JoinHostPort(host, port)
	}
	identity := name
	if !strings.Contains(name, "@") {
		identity = name + "@" + cfg.Domain + "/" + devices.DefaultResource
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dctx, cancel := context.WithTimeout(ctx, cfg.Devices.HandshakeTimeout.D()+5*time.Second)
	s, err := simulator.Dial(dctx, simulator.Options{Server: target, Identity: identity, PSK: psk, Every: every, Log: log})
	cancel()
	if err != nil {
		return err
	}
	defer s.Close()
	log.Info("simulated device online", "identity", identity, "server", target, "every", every)
	return s.Run(ctx)
}
