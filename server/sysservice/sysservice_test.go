package sysservice

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var spec = Spec{Executable: "/usr/local/bin/roost", ConfigPath: "/etc/roost/config.json", DataDir: "/var/lib/roost", User: "roost"}

func TestUnitText(t *testing.T) {
	unit := UnitText(spec)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/roost run -config /etc/roost/config.json\n",
		"\nRestart=always\n", "\nRestartSec=2\n",
		"\nAfter=network-online.target\n", "\nWants=network-online.target\n",
		"\nUser=roost\n", "\nNoNewPrivileges=yes\n", "\nProtectSystem=strict\n",
		"\nReadWritePaths=/var/lib/roost\n", "\nWantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if strings.Contains(unit, "{{") || strings.Contains(unit, "RestartSec=120") {
		t.Errorf("unit has template directives or the library's slow restart:\n%s", unit)
	}
	root := UnitText(Spec{Executable: "/opt/my roost/roost", ConfigPath: "/etc/roost/100%.json", DataDir: "/var/lib/roost"})
	if strings.Contains(root, "User=") {
		t.Error("User= without a configured user")
	}
	if !strings.Contains(root, `ExecStart="/opt/my roost/roost" run -config /etc/roost/100%%.json`) {
		t.Errorf("paths not quoted for systemd:\n%s", root)
	}
}

// The configuration handed to kardianos/service, per platform.
func TestConfig(t *testing.T) {
	c := spec.Config("linux")
	if c.Name != "roost" || strings.Join(c.Arguments, " ") != "run -config /etc/roost/config.json" || c.Executable != spec.Executable || c.UserName != "roost" {
		t.Fatalf("%+v", c)
	}
	if c.Option["SystemdScript"] != UnitText(spec) || c.Option["Restart"] != "always" {
		t.Fatalf("systemd options: %v", c.Option)
	}
	w := Spec{Executable: `C:\Program Files\Roost\roost.exe`, ConfigPath: `C:\ProgramData\Roost\config.json`}.Config("windows")
	if w.Name != "roost" || w.Arguments[2] != `C:\ProgramData\Roost\config.json` || strings.Join(w.Dependencies, ",") != "Tcpip" {
		t.Fatalf("%+v", w)
	}
	if w.Option["OnFailure"] != "restart" || w.Option["OnFailureDelayDuration"] != "2s" || w.Option["SystemdScript"] != nil {
		t.Fatalf("windows options: %v", w.Option)
	}
}

func TestUsableLinux(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc/1"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/1/comm"), []byte("bash\n"), 0o644)
	// What kardianos picks in a container: SysV, with no init to run it.
	err := usableLinux("unix-systemv", root)
	if !errors.Is(err, ErrNoManager) || !strings.Contains(err.Error(), `PID 1 is "bash"; this looks like a container`) {
		t.Fatalf("container: %v", err)
	}
	if err := usableLinux("linux-systemd", root); !errors.Is(err, ErrNoManager) {
		t.Fatalf("systemctl present but systemd not running: %v", err)
	}
	os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755)
	if err := usableLinux("linux-systemd", root); err != nil {
		t.Fatalf("booted with systemd: %v", err)
	}
}

func TestRemoveRCLinks(t *testing.T) {
	etc := t.TempDir()
	for _, p := range []string{"rc2.d/S50roost", "rc0.d/K01roost", "rc2.d/S50other"} {
		os.MkdirAll(filepath.Join(etc, filepath.Dir(p)), 0o755)
		os.Symlink("../init.d/x", filepath.Join(etc, p))
	}
	removeRCLinks(etc)
	left, _ := filepath.Glob(filepath.Join(etc, "rc?.d", "*"))
	if len(left) != 1 || !strings.HasSuffix(left[0], "S50other") {
		t.Fatalf("left: %v", left)
	}
}

// fakeLog records what would go to the Windows event log.
type fakeLog struct{ lines []string }

func (f *fakeLog) Error(v ...any) error          { f.lines = append(f.lines, "E "+v[0].(string)); return nil }
func (f *fakeLog) Warning(v ...any) error        { f.lines = append(f.lines, "W "+v[0].(string)); return nil }
func (f *fakeLog) Info(v ...any) error           { f.lines = append(f.lines, "I "+v[0].(string)); return nil }
func (f *fakeLog) Errorf(string, ...any) error   { return nil }
func (f *fakeLog) Warningf(string, ...any) error { return nil }
func (f *fakeLog) Infof(string, ...any) error    { return nil }

func TestHandler(t *testing.T) {
	var f fakeLog
	log := slog.New(NewHandler(&f, slog.LevelInfo)).With("component", "c2s")
	log.Debug("hidden")
	log.Info("roost started", "domain", "localhost", "path", "C:\\Program Files\\x")
	log.WithGroup("tls").Warn("slow", "ms", 12)
	log.Error("bind failed", "err", errors.New("address in use"))
	want := []string{
		`I roost started component=c2s domain=localhost path="C:\\Program Files\\x"`,
		`W slow component=c2s tls.ms=12`,
		`E bind failed component=c2s err="address in use"`,
	}
	if strings.Join(f.lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(f.lines, "\n"), strings.Join(want, "\n"))
	}
}
