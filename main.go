// Command roost is a single-binary XMPP server for edge and IoT gateways.
//
//	roost run [-config FILE]                      serve (the embedded config.json when no file is given)
//	roost user add|del|passwd [-config FILE] JID  manage accounts (password on standard input)
//	roost user list [-config FILE]
//	roost install|uninstall|start|stop|restart|status   the system service
//	roost backup|restore FILE                     copy the store out, or back in
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
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	osuser "os/user"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"roost/bench"
	"roost/devices"
	"roost/devices/simulator"
	"roost/server"
	"roost/server/admin"
	"roost/server/control"
	"roost/server/logrepeat"
	"roost/server/sysservice"
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
                       the XEP-0050 commands "read" and "set"; like a real device it
                       connects again whenever the gateway goes away (after 1 s,
                       doubling to 30 s, with jitter) until interrupted
  bench -target HOST:PORT -domain D -users N -scenario login|chat|idle|presence [-duration 10s] [-rate R]
                       load any XMPP server and print figures (see BENCHMARKS.md);
                       -raw drives "bench relay" instead
  bench relay [-listen ADDR]
                       a trivial TCP relay (no XML): the machine's ceiling for bench -raw
  install [-config FILE] [-user NAME]
                       install as a system service (systemd, Windows SCM); writes a
                       default config to FILE (default %s) if there is none
  uninstall | start | stop | restart
                       control the installed service
  status               the service's state and the running server's
  backup FILE          write a consistent copy of the store to FILE (server running or not)
  restore FILE         replace the store with a backup (the server must be stopped)
  init                 create data_dir and an empty store for the domain (run does
                       too); administration commands never create one
  check-config         load and validate the configuration, print it
  version              print the version

Every command takes -config FILE after its name, so the CLI finds the same
data directory as the server it administers. Without it, the administration
commands use the installed service's config (%s) when it exists.
`

func usageText() string {
	p := sysservice.DefaultConfigPath()
	return fmt.Sprintf(usage, p, p)
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
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
	case "install", "uninstall", "start", "stop", "restart":
		err = cmdService(args[0], args[1:], stdout)
	case "status":
		err = cmdStatus(args[1:], stdout)
	case "backup":
		err = cmdBackup(args[1:], stdout)
	case "restore":
		err = cmdRestore(args[1:], stdout)
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout)
	case "init":
		err = cmdInit(args[1:], stdout)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "roost %s (%s %s/%s)\n", server.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText())
		return 0
	default:
		fmt.Fprintf(stderr, "roost: unknown command %q\n\n%s", args[0], usageText())
		return 2
	}
	if err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "roost: %v\n\n%s", err, usageText())
			return 2
		}
		fmt.Fprintf(stderr, "roost: %v\n", err)
		return 1
	}
	return 0
}

// exitCode is an error that only sets the exit status (its output was
// printed already): `roost status` exits 3 when the server is not running
// (LSB init-script convention).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

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
	cfg, err := server.LoadConfig(defaultConfig, adminConfig(name, *path))
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
	if runtime.GOOS == "windows" && !sysservice.Interactive() {
		// Started by the Service Control Manager: log to the event log.
		return sysservice.RunManaged(serviceSpec(cfg, configPathArg(args), ""), cfg.SlogLevel(), func(log *slog.Logger, stop <-chan struct{}) error {
			return serve(cfg, log, stop)
		})
	}
	level := new(slog.LevelVar)
	level.Set(cfg.SlogLevel())
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	stop := make(chan struct{})
	reload := make(chan struct{}, 1)
	go func() {
		sig := make(chan os.Signal, 1)
		// SIGHUP reloads, as prosodyctl reload does; SIGINT and SIGTERM
		// are the clean shutdown.
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		for got := range sig {
			if got == syscall.SIGHUP {
				select {
				case reload <- struct{}{}:
				default:
				}
				continue
			}
			log.Info("shutting down", "signal", got.String())
			close(stop)
			return
		}
	}()
	path := adminConfig("run", configPathArg(args))
	return serveWith(cfg, log, stop, reload, func(srv *server.Server) {
		next, err := server.LoadConfig(defaultConfig, path)
		if err != nil {
			log.Error("reload refused: the configuration does not load; the server goes on with the one it has", "err", err)
			return
		}
		if _, restart, err := srv.Reload(next); err != nil {
			log.Error("reload refused; the server goes on with the configuration it has", "err", err)
			return
		} else if len(restart) > 0 {
			log.Warn("reload: these keys changed but take effect only after a restart", "keys", strings.Join(restart, ", "))
		}
		level.Set(next.SlogLevel())
	})
}

// serve runs the server until stop is closed.
func serve(cfg *server.Config, log *slog.Logger, stop <-chan struct{}) error {
	return serveWith(cfg, log, stop, nil, nil)
}

// serveWith runs the server until stop is closed, calling onReload for
// each value on reload.
func serveWith(cfg *server.Config, log *slog.Logger, stop <-chan struct{}, reload <-chan struct{}, onReload func(*server.Server)) error {
	// A flood (of refused connections, failed handshakes) must not fill
	// the disk with one line repeated: limits.log_repeats_per_minute.
	log = slog.New(logrepeat.New(log.Handler(), cfg.Limits.LogRepeatsPerMinute))
	srv := server.New(cfg, log)
	start := time.Now()
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("roost started", "version", server.Version, "domain", cfg.Domain, "data_dir", cfg.DataDir, "certificate", srv.CertPath(), "pid", os.Getpid(), "startup", time.Since(start).Round(time.Microsecond))
	for waiting := true; waiting; {
		select {
		case <-stop:
			waiting = false
		case <-reload:
			onReload(srv)
		case <-srv.ShutdownRequested():
			log.Info("shutting down", "requested_by", "roost shutdown")
			waiting = false
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// cmdInit creates the data directory and an empty store for the
// configured domain, so that accounts can be added before the first
// `roost run` (which creates them too). It is the one command besides run
// that creates a store: the administration commands never do, so a wrong
// -config cannot make a new, empty store somewhere.
func cmdInit(args []string, stdout io.Writer) error {
	cfg, rest, err := parseFlags("init", args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("init: unexpected argument %q", rest[0])}
	}
	if err := cfg.Check(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data_dir %s: %w", cfg.DataDir, err)
	}
	path := server.StorePath(cfg)
	_, statErr := os.Stat(path)
	st, err := storage.Open(path, storage.Options{ScramIterations: cfg.ScramIterations, Domain: cfg.Domain})
	if err != nil {
		return err
	}
	st.Close()
	if statErr == nil {
		fmt.Fprintf(stdout, "store %s exists already (domain %s)\n", path, cfg.Domain)
	} else {
		fmt.Fprintf(stdout, "created store %s for domain %s\n", path, cfg.Domain)
	}
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
	cfg, err := server.LoadConfig(defaultConfig, adminConfig("device", *path))
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

// administer runs req on cfg's store, directly or through the running
// server (admin.Run); via says which.
func administer(cfg *server.Config, req control.Request) (control.Response, string, error) {
	return admin.Run(server.StorePath(cfg), server.ControlPath(cfg), storage.Options{ScramIterations: cfg.ScramIterations, Domain: cfg.Domain},
		admin.Admin{Domain: cfg.Domain, DeviceOwners: cfg.Devices.Owners}, req)
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

// simulate runs a virtual sensor until interrupted, connecting again
// whenever the association is lost (runSimulator).
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
	o := simulator.Options{Server: target, Identity: identity, PSK: psk, Every: every, Log: log}
	return runSimulator(ctx, o, cfg.Devices.HandshakeTimeout.D()+5*time.Second, simulateBackoff)
}

// backoff is how long a device waits before connecting again: Min after
// the first loss, doubling at each failure in a row up to Max, each wait
// drawn between half of it and all of it (jitter), so that a gateway
// restarting does not see every device of a site come back in the same
// instant. It starts again from Min once a session lasted Max.
type backoff struct {
	Min, Max time.Duration
}

// simulateBackoff is the simulator's: 1 s doubling to 30 s.
var simulateBackoff = backoff{Min: time.Second, Max: 30 * time.Second}

// runSimulator runs the device of o until ctx ends, as a real device
// would: it connects (each handshake bounded by dialTimeout), runs, and
// whenever the association is lost (the gateway stopped acknowledging,
// docs/datagram-binding.md §5.3, closed it, or restarted) or could not be
// made, waits as b says and connects again, logging each attempt. It
// returns nil once ctx ends.
func runSimulator(ctx context.Context, o simulator.Options, dialTimeout time.Duration, b backoff) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
		o.Log = log
	}
	wait := b.Min
	for attempt := 1; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		s, err := simulator.Dial(dctx, o)
		cancel()
		if ctx.Err() != nil {
			if s != nil {
				s.Close()
			}
			return nil
		}
		if err == nil {
			log.Info("simulated device online", "identity", o.Identity, "server", o.Server, "every", o.Every, "attempt", attempt)
			began := time.Now()
			err = s.Run(ctx)
			s.Close()
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("the device stopped")
			}
			if time.Since(began) >= b.Max {
				wait = b.Min // it was up for a while: start the backoff afresh
			}
			attempt = 0
		}
		d := wait/2 + rand.N(wait/2+1)
		log.Warn("simulated device offline; connecting again", "err", err, "in", d.Round(time.Millisecond), "attempt", attempt+1)
		wait = min(2*wait, b.Max)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// adminConfig is the config file an administration command reads: the one
// given, else the installed service's when it exists (as prosodyctl finds
// Prosody's), else none (the embedded defaults). `run` never guesses.
func adminConfig(cmd, given string) string {
	if given != "" || cmd == "run" {
		return given
	}
	if _, err := os.Stat(sysservice.DefaultConfigPath()); err == nil {
		return sysservice.DefaultConfigPath()
	}
	return ""
}

// configPathArg is the -config value in args, made absolute.
func configPathArg(args []string) string {
	for i, a := range args {
		if (a == "-config" || a == "--config") && i+1 < len(args) {
			p, _ := filepath.Abs(args[i+1])
			return p
		}
		if v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), "config="); ok {
			p, _ := filepath.Abs(v)
			return p
		}
	}
	return ""
}

// serviceSpec is what the installed service runs for cfg.
func serviceSpec(cfg *server.Config, configPath, user string) sysservice.Spec {
	exe, err := os.Executable()
	if err == nil {
		if p, err := filepath.EvalSymlinks(exe); err == nil {
			exe = p
		}
	}
	return sysservice.Spec{Executable: exe, ConfigPath: configPath, DataDir: cfg.DataDir, User: user}
}

func cmdService(op string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("roost "+op, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", sysservice.DefaultConfigPath(), "the service's configuration file")
	user := fs.String("user", "", "install: run the service as this existing account instead of root")
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("%s: %v", op, err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", op, fs.Arg(0))}
	}
	if *user != "" && op != "install" {
		return usageError{"-user is for install"}
	}
	abs, err := filepath.Abs(*path)
	if err != nil {
		return fmt.Errorf("%s: config path %s: %w", op, *path, err)
	}
	// The defaults are enough to find and control the service; install
	// needs the real config to know the data directory.
	m, err := sysservice.NewManager(serviceSpec(&server.Config{}, abs, *user))
	if err != nil {
		return err
	}
	if op != "install" {
		if op == "uninstall" {
			err = m.Uninstall()
		} else {
			err = m.Control(op)
		}
		if err != nil {
			return err
		}
		if op == "uninstall" {
			fmt.Fprintf(stdout, "uninstalled the %s service; its config and data directory are kept\n", sysservice.Name)
		} else {
			fmt.Fprintf(stdout, "%s: %s done\n", sysservice.Name, op)
		}
		return nil
	}
	// Everything that can refuse does so before anything is written.
	if err := m.CanInstall(); err != nil {
		return err
	}
	var owner *osuser.User
	if *user != "" {
		if owner, err = osuser.Lookup(*user); err != nil {
			return fmt.Errorf("install: no account %q: create it first, for example: useradd --system --home-dir %s --shell /usr/sbin/nologin %s", *user, sysservice.DefaultDataDir(), *user)
		}
	}
	created, err := sysservice.WriteConfig(abs, defaultConfig, owner)
	if err != nil {
		return err
	}
	cfg, err := server.LoadConfig(defaultConfig, abs)
	if err != nil {
		return fmt.Errorf("install: %w (fix %s and run install again)", err, abs)
	}
	if !filepath.IsAbs(cfg.DataDir) {
		return fmt.Errorf("install: data_dir %q in %s is relative; a service needs an absolute path such as %s", cfg.DataDir, abs, sysservice.DefaultDataDir())
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("install: data directory %s: %w", cfg.DataDir, err)
	}
	if owner != nil && runtime.GOOS != "windows" {
		if err := sysservice.ChownTree(cfg.DataDir, owner); err != nil {
			return fmt.Errorf("install: give %s to %s: %w", cfg.DataDir, owner.Username, err)
		}
	}
	if m, err = sysservice.NewManager(serviceSpec(cfg, abs, *user)); err != nil {
		return err
	}
	if err := m.Install(); err != nil {
		return err
	}
	how := "kept the existing config"
	if created {
		how = "wrote a default config"
	}
	fmt.Fprintf(stdout, "installed the %s service (%s): %s %s, data in %s\nstart it with: roost start\n", sysservice.Name, m.Platform(), how, abs, cfg.DataDir)
	return nil
}

func cmdStatus(args []string, stdout io.Writer) error {
	cfg, rest, err := parseFlags("status", args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{"status takes no arguments"}
	}
	if m, err := sysservice.NewManager(serviceSpec(cfg, "", "")); err != nil {
		fmt.Fprintf(stdout, "service: %v\n", err)
	} else if st, err := m.Status(); err != nil {
		fmt.Fprintf(stdout, "service: unavailable (%v)\n", err)
	} else {
		fmt.Fprintf(stdout, "service: %s (%s)\n", st, m.Platform())
	}
	sock := server.ControlPath(cfg)
	resp, err := control.Call(sock, control.Request{Op: "status"})
	if err != nil {
		fmt.Fprintf(stdout, "server: not running (nothing answers on %s)\n", sock)
		return exitCode(3) // LSB: program is not running
	}
	fmt.Fprintf(stdout, "server: %s\n", resp.Message)
	for _, l := range resp.Lines {
		fmt.Fprintf(stdout, "  %s\n", l)
	}
	return nil
}

func cmdBackup(args []string, stdout io.Writer) error {
	cfg, rest, err := parseFlags("backup", args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"backup needs the FILE to write, for example: roost backup /root/roost-backup.db"}
	}
	dst := rest[0]
	store := server.StorePath(cfg)
	if _, err := os.Stat(store); err != nil {
		return fmt.Errorf("backup: no store at %s (is -config right?)", store)
	}
	via := "store " + store
	err = storage.WriteFileSynced(dst, func(w io.Writer) error {
		_, err := storage.BackupFile(store, w)
		if !errors.Is(err, storage.ErrLocked) {
			return err
		}
		// The server holds the store: it writes the copy for us.
		sock := server.ControlPath(cfg)
		via = "through the running server at " + sock
		resp, err := control.Fetch(sock, control.Request{Op: "backup"}, w)
		if err != nil {
			return fmt.Errorf("the store is in use and the server did not answer: %w", err)
		}
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	sum, err := storage.Inspect(dst)
	if err != nil {
		return fmt.Errorf("backup: the copy does not check out: %w", err)
	}
	fi, _ := os.Stat(dst)
	fmt.Fprintf(stdout, "backup written to %s: %d bytes, %d users, %d devices, schema %d (%s)\n", dst, fi.Size(), sum.Users, sum.Devices, sum.Schema, via)
	return nil
}

func cmdRestore(args []string, stdout io.Writer) error {
	cfg, rest, err := parseFlags("restore", args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"restore needs the backup FILE, for example: roost restore /root/roost-backup.db"}
	}
	sock := server.ControlPath(cfg)
	if _, err := control.Call(sock, control.Request{Op: "status"}); err == nil {
		return fmt.Errorf("restore: the server is running (it answers on %s); stop it first (roost stop, or end the process), then restore", sock)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("restore: data_dir %s: %w", cfg.DataDir, err)
	}
	kept, sum, err := storage.Restore(server.StorePath(cfg), rest[0])
	if errors.Is(err, storage.ErrLocked) {
		return fmt.Errorf("restore: another process holds the store %s; stop it first", server.StorePath(cfg))
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s from %s: %d users, %d devices\n", server.StorePath(cfg), rest[0], sum.Users, sum.Devices)
	if kept != "" {
		fmt.Fprintf(stdout, "the previous store is kept as %s\n", kept)
	}
	return nil
}
