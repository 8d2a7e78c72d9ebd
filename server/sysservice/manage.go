package sysservice

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kardianos/service"
)

// Manager carries out install, uninstall, start, stop, restart and status
// for one Spec, with errors that say what state the system is in.
type Manager struct {
	svc      service.Service
	platform string
	spec     Spec
}

// idle is the program kardianos wants even for control operations.
type idle struct{}

func (idle) Start(service.Service) error { return nil }
func (idle) Stop(service.Service) error  { return nil }

// NewManager prepares to control the service described by spec.
func NewManager(spec Spec) (*Manager, error) {
	svc, err := service.New(idle{}, spec.Config(runtime.GOOS))
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", Name, err)
	}
	return &Manager{svc: svc, platform: svc.Platform(), spec: spec}, nil
}

// Platform names the service manager found ("linux-systemd", "windows-service", ...).
func (m *Manager) Platform() string { return m.platform }

// Check says why this process cannot manage services here: no usable
// service manager, or not root.
func (m *Manager) Check() error {
	if err := Usable(m.platform); err != nil {
		return err
	}
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		return errors.New("managing the system service needs root: run it with sudo (for example: sudo roost install)")
	}
	return nil
}

// Installed reports whether the service is registered with the manager.
func (m *Manager) Installed() bool {
	_, err := m.svc.Status()
	return !errors.Is(err, service.ErrNotInstalled)
}

// UnitPath is where the systemd unit lives (empty on other platforms).
func (m *Manager) UnitPath() string {
	if m.platform != "linux-systemd" {
		return ""
	}
	return "/etc/systemd/system/" + Name + ".service"
}

// CanInstall says why Install would refuse: no service manager, not
// root, or already installed. It changes nothing.
func (m *Manager) CanInstall() error {
	if err := m.Check(); err != nil {
		return err
	}
	if m.Installed() {
		where := ""
		if p := m.UnitPath(); p != "" {
			where = " (" + p + ")"
		}
		return fmt.Errorf("%s is already installed%s: `roost restart` to pick up a new binary or config, or `roost uninstall` first", Name, where)
	}
	return nil
}

// Install registers the service to start at boot. It refuses when it is
// already installed; when the manager fails half way it reports what was
// left behind.
func (m *Manager) Install() error {
	if err := m.CanInstall(); err != nil {
		return err
	}
	err := m.svc.Install()
	if err == nil {
		return nil
	}
	err = adminHint(err)
	if p := m.UnitPath(); p != "" {
		if _, serr := os.Stat(p); serr == nil {
			enabled := systemctlOutput("is-enabled", Name+".service")
			return fmt.Errorf("install: the unit file %s was written, but systemd did not take it: %w. Left behind: the unit file (systemctl is-enabled says %q), service not started. Fix the cause, then `systemctl daemon-reload && systemctl enable %s`, or `roost uninstall` to remove it", p, err, enabled, Name)
		}
	}
	return fmt.Errorf("install: %w (nothing was installed)", err)
}

// Uninstall stops the service if it runs and removes it. Configuration
// and data stay where they are.
func (m *Manager) Uninstall() error {
	if err := m.Check(); err != nil {
		return err
	}
	if !m.Installed() {
		return fmt.Errorf("%s is not installed as a service; nothing to uninstall", Name)
	}
	if st, _ := m.svc.Status(); st == service.StatusRunning {
		if err := m.svc.Stop(); err != nil {
			return fmt.Errorf("uninstall: stop the running service first: %w", adminHint(err))
		}
	}
	if err := m.svc.Uninstall(); err != nil {
		return fmt.Errorf("uninstall: %w", adminHint(err))
	}
	if m.platform == "unix-systemv" {
		removeRCLinks("/etc")
	}
	return nil
}

// Control starts, stops or restarts the installed service.
func (m *Manager) Control(action string) error {
	if err := m.Check(); err != nil {
		return err
	}
	if !m.Installed() {
		return fmt.Errorf("%s is not installed as a service: `roost install` first (or `roost run` in a terminal)", Name)
	}
	if err := service.Control(m.svc, action); err != nil {
		return fmt.Errorf("%s: %w", action, adminHint(err))
	}
	return nil
}

// Status is "running", "stopped" or "not installed", or why it cannot
// be known.
func (m *Manager) Status() (string, error) {
	if err := Usable(m.platform); err != nil {
		return "", err
	}
	st, err := m.svc.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return "not installed", nil
	case err != nil:
		return "", fmt.Errorf("status: %w", err)
	case st == service.StatusRunning:
		return "running", nil
	case st == service.StatusStopped:
		return "stopped", nil
	}
	return "unknown", nil
}

// adminHint turns Windows' bare "Access is denied." into what to do.
func adminHint(err error) error {
	if runtime.GOOS == "windows" && strings.Contains(err.Error(), "Access is denied") {
		return fmt.Errorf("%w: run it from an Administrator command prompt", err)
	}
	return err
}

func systemctlOutput(args ...string) string {
	out, _ := exec.Command("systemctl", args...).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// removeRCLinks deletes the SysV rc.d links kardianos' uninstall leaves.
func removeRCLinks(etc string) {
	links, _ := filepath.Glob(filepath.Join(etc, "rc?.d", "[SK][0-9][0-9]"+Name))
	for _, l := range links {
		os.Remove(l)
	}
}

// program adapts a run function to the interface the SCM drives.
type program struct {
	run  func(stop <-chan struct{}) error
	stop chan struct{}
	done chan error
	log  *slog.Logger
}

func (p *program) Start(service.Service) error {
	go func() {
		err := p.run(p.stop)
		select {
		case <-p.stop: // asked to stop: Stop collects err
			p.done <- err
		default: // ended by itself: fail, so the SCM restarts us
			p.log.Error("roost stopped unexpectedly", "err", err)
			os.Exit(1)
		}
	}()
	return nil
}

func (p *program) Stop(service.Service) error {
	close(p.stop)
	return <-p.done
}

// Interactive reports whether the process runs in a terminal rather than
// under a service manager.
func Interactive() bool { return service.Interactive() }

// RunManaged runs the server under the Windows SCM: run gets a channel
// closed when the SCM asks it to stop. logTo receives the manager's logger
// so that the server can log to the event log.
func RunManaged(spec Spec, level slog.Leveler, run func(log *slog.Logger, stop <-chan struct{}) error) error {
	p := &program{stop: make(chan struct{}), done: make(chan error, 1)}
	svc, err := service.New(p, spec.Config(runtime.GOOS))
	if err != nil {
		return fmt.Errorf("service %s: %w", Name, err)
	}
	out, err := svc.Logger(nil)
	if err != nil {
		return fmt.Errorf("service logger: %w", err)
	}
	p.log = slog.New(NewHandler(out, level))
	p.run = func(stop <-chan struct{}) error { return run(p.log, stop) }
	return svc.Run()
}
