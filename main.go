// Command roost is a single-binary XMPP server for edge and IoT gateways.
//
// `roost help` lists the commands; `roost COMMAND -h` shows one command's
// usage and flags (cli.go is the small framework every command uses:
// flags before or after arguments, one-line usage errors). Administration
// commands work whether or not the server runs: when the store is held by
// a running server they go through its control socket; they never create a
// store (init and run do).
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
	"roost/devices/discover"
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

// commands is the list `roost help` prints.
const commands = `usage: roost COMMAND [flags] [args]     (roost COMMAND -h: that command's usage and flags)

serving:
  run                  run the server (SIGHUP reloads the config, SIGINT/SIGTERM stop it)
  init                 create data_dir and an empty store for the domain (run does too)
  check-config, check  check the configuration as run would, without binding ports; print it
  status               the service's and the running server's state (exit 3: not running)
  shutdown             stop a server started with roost run (through its control socket)
  reload               reload the running server's configuration (as SIGHUP; prosodyctl reload)
  install [-user NAME] | uninstall | start | stop | restart
                       the system service (systemd, Windows SCM)

accounts (prosodyctl names work too: adduser, passwd, deluser):
  user add|passwd|del JID, user list
  sessions             who and what is online: JID, resource, transport, address, since, SM
  kick JID             end a user's sessions (all, or one full JID)

devices:
  device add|del|rekey|set|list|simulate   (roost device -h)

data:
  backup FILE          a consistent copy of the store (server running or not)
  restore FILE         replace the store with a backup (server stopped)

load:
  bench ...            load any XMPP server and print figures (roost bench -h)
  version

Administration commands find the store through -config (default: the installed service's config %s
when it exists, else the embedded defaults); they work whether or not the server runs, and never
create a store.
`

func usageText() string {
	return fmt.Sprintf(commands, sysservice.DefaultConfigPath())
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
		err = cmdRun(args[1:], stdout, stderr)
	case "init":
		err = cmdInit(args[1:], stdout)
	case "user":
		err = userGroup(stdin, stdout, stderr).run(args[1:], stdout)
	case "adduser", "passwd", "deluser": // prosodyctl's names
		err = cmdUser(map[string]string{"adduser": "add", "passwd": "passwd", "deluser": "del"}[args[0]], args[1:], stdin, stdout, stderr)
	case "device":
		err = deviceGroup(stdout).run(args[1:], stdout)
	case "sessions":
		err = cmdSessions(args[1:], stdout)
	case "kick":
		err = cmdKick(args[1:], stdout)
	case "shutdown":
		err = cmdShutdown(args[1:], stdout)
	case "reload":
		err = cmdReload(args[1:], stdout)
	case "bench":
		if err = bench.Command(args[1:], stdout, stderr); errors.Is(err, bench.ErrUsage) {
			err = usageError{msg: err.Error(), usage: "usage: roost bench [flags]   (roost bench -h shows them)"}
		}
	case "install", "uninstall", "start", "stop", "restart":
		err = cmdService(args[0], args[1:], stdout)
	case "status":
		err = cmdStatus(args[1:], stdout)
	case "backup":
		err = cmdBackup(args[1:], stdout)
	case "restore":
		err = cmdRestore(args[1:], stdout)
	case "check-config", "check": // check: prosodyctl's name
		err = cmdCheckConfig(args[1:], stdout)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "roost %s (%s %s/%s)\n", server.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText())
		return 0
	default:
		fmt.Fprintf(stderr, "roost: unknown command %q (roost help lists the commands)\n", args[0])
		return 2
	}
	if err != nil {
		if errors.Is(err, errHelp) {
			return 0
		}
		var ec exitCode
		if errors.As(err, &ec) {
			return int(ec)
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "roost %v\n%s\n", err, ue.usage)
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

// usageError is a mistake in the command line: one line saying what is
// wrong (msg, which starts with the command's name) and the command's
// usage.
type usageError struct{ msg, usage string }

func (e usageError) Error() string { return e.msg }

// simple parses a command that takes only -config and n positional
// arguments (what), and loads the configuration.
func simple(name, args, about, what string, n int, in []string, stdout io.Writer) (*server.Config, []string, error) {
	c, path := newCmd(name, args, about, stdout)
	pos, err := c.parse(in)
	if err != nil {
		return nil, nil, err
	}
	if err := c.exactly(pos, n, what); err != nil {
		return nil, nil, err
	}
	cfg, err := c.config(*path)
	return cfg, pos, err
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	cfg, _, err := simple("run", "[-config FILE]", "Run the server in the foreground. SIGHUP reloads the configuration (certificate, limits for\nnew connections, devices.owners, s2s.routes, admins, log_level) without dropping a session;\nSIGINT and SIGTERM close every stream with <system-shutdown/> and the store cleanly.", "", 0, args, stdout)
	if err != nil {
		return err
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
	// One reload for SIGHUP and `roost reload` (the control socket).
	return serveWith(cfg, log, stop, reload, func(srv *server.Server) ([]string, []string, error) {
		next, err := server.LoadConfig(defaultConfig, path)
		if err != nil {
			log.Error("reload refused: the configuration does not load; the server goes on with the one it has", "err", err)
			return nil, nil, fmt.Errorf("the configuration does not load; the server goes on with the one it has: %w", err)
		}
		applied, restart, err := srv.Reload(next)
		if err != nil {
			log.Error("reload refused; the server goes on with the configuration it has", "err", err)
			return nil, nil, err
		}
		if len(restart) > 0 {
			log.Warn("reload: these keys changed but take effect only after a restart", "keys", strings.Join(restart, ", "))
		}
		level.Set(next.SlogLevel())
		return applied, restart, nil
	})
}

// serve runs the server until stop is closed.
func serve(cfg *server.Config, log *slog.Logger, stop <-chan struct{}) error {
	return serveWith(cfg, log, stop, nil, nil)
}

// serveWith runs the server until stop is closed, calling onReload for
// each value on reload (SIGHUP) and for `roost reload`.
func serveWith(cfg *server.Config, log *slog.Logger, stop <-chan struct{}, reload <-chan struct{}, onReload func(*server.Server) ([]string, []string, error)) error {
	// A flood (of refused connections, failed handshakes) must not fill
	// the disk with one line repeated: limits.log_repeats_per_minute.
	log = slog.New(logrepeat.New(log.Handler(), cfg.Limits.LogRepeatsPerMinute))
	srv := server.New(cfg, log)
	if onReload != nil {
		srv.SetReloader(func() ([]string, []string, error) { return onReload(srv) })
	}
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
			srv.ReloadNow()
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
	cfg, _, err := simple("init", "[-config FILE]", "Create data_dir and an empty store recorded for the configured domain, so accounts can be\nadded before the first run (run creates them too). Administration commands never create a store.", "", 0, args, stdout)
	if err != nil {
		return err
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
	if errors.Is(err, storage.ErrLocked) {
		fmt.Fprintf(stdout, "store %s exists already: a running server holds it\n", path)
		return nil
	}
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
	c, path := newCmd("check-config", "[-config FILE] [-q]", "Load and check the configuration with the checks run makes (files exist and parse, data_dir\nwritable, JIDs, durations, addresses, no key given twice), without binding ports, and print\nthe effective configuration with its secrets masked.", stdout)
	quiet := c.fs.Bool("q", false, "print only the verdict")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.exactly(pos, 0, ""); err != nil {
		return err
	}
	file := adminConfig("check-config", *path)
	cfg, err := c.config(*path)
	if err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		if file != "" {
			return fmt.Errorf("config %s: %w", file, err)
		}
		return err
	}
	if file == "" {
		file = "(the embedded defaults)"
	}
	fmt.Fprintf(stdout, "config OK: %s; domain %s, data_dir %s\n", file, cfg.Domain, cfg.DataDir)
	if !*quiet {
		b, err := cfg.Masked()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return nil
}

// deviceGroup is `roost device`.
func deviceGroup(stdout io.Writer) group {
	one := func(op, about string) func([]string) error {
		return func(args []string) error {
			c, path := newCmd("device "+op, "[-config FILE] NAME", about, stdout)
			pos, err := c.parse(args)
			if err != nil {
				return err
			}
			if err := c.exactly(pos, 1, "the device NAME, for example thermo1"); err != nil {
				return err
			}
			return deviceRequest(c, *path, control.Request{Op: "device." + op, JID: pos[0]}, stdout)
		}
	}
	return group{name: "device", about: "DTLS devices (docs/datagram-binding.md)", subs: []sub{
		{"add", "[-kind K] [-label L] [-owner JID[,JID]] NAME", "add a device; prints its JID, PSK identity and PSK (once)", func(args []string) error {
			c, path := newCmd("device add", "[-config FILE] [-kind K] [-label L] [-owner JID[,JID]] NAME", "Add a DTLS device account with a new random PSK (printed once). Owners (and devices.owners)\nget a mutual subscription with it and may command it.", stdout)
			kind := c.fs.String("kind", "", "device kind, for example thermometer")
			label := c.fs.String("label", "", "a human name, shown in owners' rosters")
			owner := c.fs.String("owner", "", "bare JID(s) of owners, comma separated")
			pos, err := c.parse(args)
			if err != nil {
				return err
			}
			if err := c.exactly(pos, 1, "the device NAME, for example thermo1"); err != nil {
				return err
			}
			return deviceRequest(c, *path, control.Request{Op: "device.add", JID: pos[0], Kind: *kind, Label: *label, Owner: *owner}, stdout)
		}},
		{"set", "[-label L] [-owner JID[,JID]] NAME", "change a device's label or owners; the key stays", func(args []string) error {
			c, path := newCmd("device set", "[-config FILE] [-label L] [-owner JID[,JID]] NAME", "Change a device's label and/or its owners (the list given replaces the old one; removed\nowners lose their subscription) without a new key.", stdout)
			label := c.fs.String("label", "", "the new label")
			owner := c.fs.String("owner", "", "the new owners, bare JIDs comma separated")
			pos, err := c.parse(args)
			if err != nil {
				return err
			}
			if err := c.exactly(pos, 1, "the device NAME, for example thermo1"); err != nil {
				return err
			}
			req := control.Request{Op: "device.set", JID: pos[0], Label: *label, Owner: *owner}
			c.fs.Visit(func(f *flag.Flag) {
				req.SetLabel = req.SetLabel || f.Name == "label"
				req.SetOwner = req.SetOwner || f.Name == "owner"
			})
			if !req.SetLabel && !req.SetOwner {
				return c.usage("give -label and/or -owner")
			}
			return deviceRequest(c, *path, req, stdout)
		}},
		{"list", "", "devices with kind, label, owners (and, with the server running, online, last seen, address)", func(args []string) error {
			c, path := newCmd("device list", "[-config FILE]", "List the devices (never their keys); with the server running also online, last seen and address.", stdout)
			pos, err := c.parse(args)
			if err != nil {
				return err
			}
			if err := c.exactly(pos, 0, ""); err != nil {
				return err
			}
			return deviceRequest(c, *path, control.Request{Op: "device.list"}, stdout)
		}},
		{"share", "[-remove] NAME JID", "let a user (of any domain) see the device's presence and readings", func(args []string) error {
			c, path := newCmd("device share", "[-config FILE] [-remove] NAME JID", "Let JID, a bare JID of this or another domain (behind the uplink or s2s), see the device's\npresence and its PEP readings: a \"from\" subscription on the device's roster, which a device\ncannot grant itself. -remove takes it back.", stdout)
			remove := c.fs.Bool("remove", false, "stop sharing")
			pos, err := c.parse(args)
			if err != nil {
				return err
			}
			if err := c.exactly(pos, 2, "the device NAME and the JID to share it with"); err != nil {
				return err
			}
			op := "device.share"
			if *remove {
				op = "device.unshare"
			}
			return deviceRequest(c, *path, control.Request{Op: op, JID: pos[0], Owner: pos[1]}, stdout)
		}},
		{"del", "NAME", "delete a device and its account data (ends its session)", one("del", "Delete a device and everything its account held; a live session ends at once.")},
		{"rekey", "NAME", "give a device a new PSK, printed once (ends its session)", one("rekey", "Give a device a new random PSK (printed once); its session on the old key ends at once.")},
		{"simulate", "-psk HEX [-every 5s] [-server HOST:PORT] NAME", "run a virtual sensor over DTLS until interrupted", func(args []string) error {
			c, path := newCmd("device simulate", "[-config FILE] -psk HEX [-every 5s] [-server HOST:PORT] NAME", "Run a virtual sensor over DTLS: it reports a reading, answers the XEP-0050 commands \"read\"\nand \"set\", and like a real device connects again whenever the gateway goes away (after 1 s,\ndoubling to 30 s, with jitter) until interrupted.", stdout)
			pskHex := c.fs.String("psk", "", "the device's PSK in hex, as device add printed it")
			every := c.fs.Duration("every", 5*time.Second, "how often to report a reading")
			target := c.fs.String("server", "", "the gateway's DTLS address (default: with -config, its listen.dtls on 127.0.0.1; without, the gateway found on the LAN by mDNS)")
			pos, err := c.parse(args)
			if err != nil {
				return err
			}
			if err := c.exactly(pos, 1, "the device NAME"); err != nil {
				return err
			}
			if *pskHex == "" {
				return c.usage("needs -psk HEX (the key device add printed)")
			}
			cfg, err := c.config(*path)
			if err != nil {
				return err
			}
			return simulate(cfg, pos[0], *pskHex, *target, *every, *path == "")
		}},
	}}
}

// deviceRequest runs a device operation and prints its answer.
func deviceRequest(c *cmd, path string, req control.Request, stdout io.Writer) error {
	cfg, err := c.config(path)
	if err != nil {
		return err
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
	if resp.Message == "" {
		fmt.Fprintf(stdout, "(%s)\n", via)
	}
	return nil
}

// userGroup is `roost user`.
func userGroup(stdin io.Reader, stdout, stderr io.Writer) group {
	op := func(name string) func([]string) error {
		return func(args []string) error { return cmdUser(name, args, stdin, stdout, stderr) }
	}
	return group{name: "user", about: "accounts", subs: []sub{
		{"add", "JID", "add an account; the password is read from standard input", op("add")},
		{"passwd", "JID", "change an account's password (from standard input)", op("passwd")},
		{"del", "JID", "delete an account and its data (ends its sessions)", op("del")},
		{"list", "", "list accounts", op("list")},
	}}
}

// cmdUser runs user add|passwd|del|list (and their prosodyctl names).
func cmdUser(op string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	about := map[string]string{
		"add":    "Add an account. The password is one line on standard input (asked twice, without echo, on a terminal).",
		"passwd": "Change an account's password (one line on standard input).",
		"del":    "Delete an account, its roster and everything it stored; its live sessions end at once.",
		"list":   "List the accounts.",
	}[op]
	argsText, n, what := "[-config FILE] JID", 1, "exactly one JID, for example alice@localhost"
	if op == "list" {
		argsText, n = "[-config FILE]", 0
	}
	c, path := newCmd("user "+op, argsText, about, stdout)
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.exactly(pos, n, what); err != nil {
		return err
	}
	cfg, err := c.config(*path)
	if err != nil {
		return err
	}
	req := control.Request{Op: "user." + op}
	if n == 1 {
		req.JID = pos[0]
		if op != "del" {
			if req.Password, err = readPassword(stdin, stderr); err != nil {
				return err
			}
		}
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
	} else {
		fmt.Fprintf(stderr, "(%d accounts; %s)\n", len(resp.Users), via)
	}
	for _, l := range resp.Lines {
		fmt.Fprintln(stdout, l)
	}
	return nil
}

// live runs a request only a running server answers, through its control
// socket.
func live(cfg *server.Config, req control.Request) (control.Response, error) {
	sock := server.ControlPath(cfg)
	resp, err := control.Call(sock, req)
	if err != nil {
		return resp, fmt.Errorf("the server is not running (nothing answers on %s; is -config right?)", sock)
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

func cmdSessions(args []string, stdout io.Writer) error {
	cfg, _, err := simple("sessions", "[-config FILE]", "List the bound sessions of the running server: JID, resource, transport (c2s, websocket,\ndtls), address, since, stream management (sm, sm+resume), presence.", "", 0, args, stdout)
	if err != nil {
		return err
	}
	resp, err := live(cfg, control.Request{Op: "sessions"})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "JID\tRESOURCE\tTRANSPORT\tADDRESS\tSINCE\tSM\tPRESENCE")
	for _, l := range resp.Lines {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintln(stdout, resp.Message)
	return nil
}

func cmdKick(args []string, stdout io.Writer) error {
	cfg, pos, err := simple("kick", "[-config FILE] JID", "End a user's sessions on the running server: every one for a bare JID, one for a full JID\n(a <policy-violation/> stream error). The account stays; it may log in again.", "the JID, for example alice@localhost or alice@localhost/phone", 1, args, stdout)
	if err != nil {
		return err
	}
	resp, err := live(cfg, control.Request{Op: "kick", JID: pos[0]})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, resp.Message)
	return nil
}

func cmdReload(args []string, stdout io.Writer) error {
	cfg, _, err := simple("reload", "[-config FILE]", "Make the running server read its configuration file again, as SIGHUP does (prosodyctl reload):\nthe certificate and key, limits for new connections, devices.owners, s2s.routes, admins and\nlog_level change without dropping a session; the keys that need a restart are listed.", "", 0, args, stdout)
	if err != nil {
		return err
	}
	resp, err := live(cfg, control.Request{Op: "reload"})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, resp.Message)
	for _, l := range resp.Lines {
		fmt.Fprintln(stdout, l)
	}
	return nil
}

func cmdShutdown(args []string, stdout io.Writer) error {
	cfg, _, err := simple("shutdown", "[-config FILE]", "Stop the running server (started with roost run or as a service) as SIGTERM would: every\nstream gets <system-shutdown/>, the store is closed cleanly.", "", 0, args, stdout)
	if err != nil {
		return err
	}
	resp, err := live(cfg, control.Request{Op: "shutdown"})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, resp.Message)
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
func simulate(cfg *server.Config, name, pskHex, target string, every time.Duration, find bool) error {
	psk, err := hex.DecodeString(pskHex)
	if err != nil || len(psk) == 0 {
		return fmt.Errorf("-psk: want the hex key device add printed: %v", err)
	}
	if target == "" && find {
		// No address and no config: a device elsewhere on the LAN finds
		// the gateway as a real one would (DNS-SD, devices/discover), and
		// takes its domain from the TXT record.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		addr, domain, fp, err := discover.Find(ctx, discover.Device)
		cancel()
		if err != nil {
			return fmt.Errorf("no -server given and %w", err)
		}
		fmt.Fprintf(os.Stderr, "found the gateway %s (%s) on the LAN; its certificate is %s\n", addr, domain, fp)
		target, cfg.Domain = addr, domain
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
	argsText := "[-config FILE]"
	if op == "install" {
		argsText = "[-config FILE] [-user NAME]"
	}
	c, path := newCmd(op, argsText, map[string]string{
		"install":   "Install Roost as a system service (systemd, Windows SCM) running `roost run -config FILE`;\nwrites a default config to FILE (default " + sysservice.DefaultConfigPath() + ") if there is none.",
		"uninstall": "Remove the system service; its config and data directory are kept.",
		"start":     "Start the installed service.",
		"stop":      "Stop the installed service.",
		"restart":   "Restart the installed service.",
	}[op], stdout)
	var user *string
	if op == "install" {
		user = c.fs.String("user", "", "run the service as this existing account instead of root")
	} else {
		user = new(string)
	}
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if err := c.exactly(pos, 0, ""); err != nil {
		return err
	}
	if *path == "" {
		*path = sysservice.DefaultConfigPath()
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
	cfg, _, err := simple("status", "[-config FILE]", "Show the service's state and the running server's (version, PID, domain, uptime, sessions,\ndata_dir, uplink or s2s). Exit status 0: running; 3: not running (LSB).", "", 0, args, stdout)
	if err != nil {
		return err
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
	cfg, rest, err := simple("backup", "[-config FILE] FILE", "Write a consistent copy of the store to FILE (through the running server when it holds the store).", "the FILE to write, for example /root/roost-backup.db", 1, args, stdout)
	if err != nil {
		return err
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
	cfg, rest, err := simple("restore", "[-config FILE] FILE", "Replace the store with a backup (the server must be stopped); the previous store is kept beside it.", "the backup FILE, for example /root/roost-backup.db", 1, args, stdout)
	if err != nil {
		return err
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
