// Package sysservice installs and controls Roost as a system service:
// systemd on Linux, the Service Control Manager on Windows, through
// github.com/kardianos/service. It owns what that library leaves to its
// callers: our own systemd unit (fast restarts, hardening, a non-root
// user), the default paths a service uses, and the checks that turn a
// library error into a sentence the user can act on.
package sysservice

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kardianos/service"
)

// Name is the service's name for systemd (roost.service) and the SCM.
const Name = "roost"

// DefaultConfigPath is where an installed service reads its configuration.
func DefaultConfigPath() string {
	if runtime.GOOS == "windows" {
		return filepath.Join(programData(), "Roost", "config.json")
	}
	return "/etc/roost/config.json"
}

// DefaultDataDir is the data directory written into a new service config.
func DefaultDataDir() string {
	if runtime.GOOS == "windows" {
		return filepath.Join(programData(), "Roost", "data")
	}
	return "/var/lib/roost"
}

func programData() string {
	if d := os.Getenv("ProgramData"); d != "" {
		return d
	}
	return `C:\ProgramData`
}

// Spec is what an installed service runs.
type Spec struct {
	Executable string // absolute path of the roost binary
	ConfigPath string // absolute path of the configuration file
	DataDir    string // absolute; the one directory the hardened unit may write
	User       string // run as this account; empty means root (LocalSystem on Windows)
}

// Config is the kardianos configuration for spec on goos ("linux",
// "windows", ...). goos is a parameter so the Windows wiring is testable
// on Linux.
func (s Spec) Config(goos string) *service.Config {
	c := &service.Config{
		Name:        Name,
		DisplayName: "Roost XMPP server",
		Description: "Roost: XMPP server for edge and IoT gateways",
		Executable:  s.Executable,
		Arguments:   []string{"run", "-config", s.ConfigPath},
		Option:      service.KeyValue{},
	}
	switch goos {
	case "windows":
		// Start after the TCP/IP stack; restart 2 s after a crash, and
		// count crashes afresh after a minute of running.
		c.Dependencies = []string{"Tcpip"}
		c.Option["OnFailure"] = "restart"
		c.Option["OnFailureDelayDuration"] = "2s"
		c.Option["OnFailureResetPeriod"] = 60
		c.Option["DelayedAutoStart"] = false
		if s.User != "" {
			c.UserName = s.User
		}
	default:
		c.Dependencies = []string{"After=network-online.target", "Wants=network-online.target"}
		c.UserName = s.User
		c.Option["SystemdScript"] = UnitText(s)
		c.Option["Restart"] = "always"
		c.Option["LogOutput"] = false // stderr goes to the journal
	}
	return c
}

// UnitText is the complete systemd unit Roost installs. The library's own
// template waits 120 s between restarts and has no hardening; this one is
// passed to it fully rendered (it contains no template directives, so the
// library writes it as is).
func UnitText(s Spec) string {
	var b strings.Builder
	b.WriteString(`[Unit]
Description=Roost XMPP server for edge and IoT gateways
Documentation=https://roost.example/README.md
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=60
StartLimitBurst=20

[Service]
Type=simple
`)
	fmt.Fprintf(&b, "ExecStart=%s run -config %s\n", systemdQuote(s.Executable), systemdQuote(s.ConfigPath))
	if s.User != "" {
		fmt.Fprintf(&b, "User=%s\nGroup=%s\n", s.User, s.User)
	}
	fmt.Fprintf(&b, `Restart=always
RestartSec=2
TimeoutStopSec=15
LimitNOFILE=65536
# Hardening: the whole file system is read-only except the data directory.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=%s
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
UMask=0027

[Install]
WantedBy=multi-user.target
`, systemdQuote(s.DataDir))
	return b.String()
}

// systemdQuote quotes a path for a unit file when it needs it, and
// escapes what systemd would otherwise expand.
func systemdQuote(p string) string {
	p = strings.ReplaceAll(p, "%", "%%")
	p = strings.ReplaceAll(p, "$", "$$")
	if !strings.ContainsAny(p, " \t\"'\\") {
		return p
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
}

// ErrNoManager means there is no service manager here Roost can install
// into; the message says what to do instead.
var ErrNoManager = errors.New("no usable service manager")

// Usable reports why services cannot be installed on this machine, or nil.
// kardianos/service picks "unix-systemv" inside a container even though no
// init system will ever start the service, so on Linux only a running
// systemd (or OpenRC) counts.
func Usable(platform string) error {
	if runtime.GOOS != "linux" {
		return nil
	}
	return usableLinux(platform, "/")
}

func usableLinux(platform, root string) error {
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(root, p)); return err == nil }
	switch {
	case platform == "linux-systemd" && exists("run/systemd/system"):
		return nil
	case platform == "linux-openrc" && exists("run/openrc"):
		return nil
	}
	pid1 := "unknown"
	if b, err := os.ReadFile(filepath.Join(root, "proc/1/comm")); err == nil {
		pid1 = strings.TrimSpace(string(b))
	}
	hint := ""
	if exists(".dockerenv") || exists("run/.containerenv") || (pid1 != "systemd" && pid1 != "init" && pid1 != "openrc-init") {
		hint = "; this looks like a container"
	}
	return fmt.Errorf("%w: systemd is not running here (PID 1 is %q%s). Run `roost run -config FILE` from your init system, container entrypoint or supervisor instead", ErrNoManager, pid1, hint)
}
