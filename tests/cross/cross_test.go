// Package cross runs the ARM release builds under Debian's qemu-user
// (binfmt is not registered here, so the emulator is invoked directly)
// and has slixmpp log in and exchange messages with each.
package cross

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roost/tests/testutil"
)

const python = "/usr/bin/python3"

func TestARMBuildsUnderQEMU(t *testing.T) {
	testutil.Need(t, "python3-slixmpp", exec.Command(python, "-c", "import slixmpp").Run() == nil)
	for _, tc := range []struct {
		name, goarch, goarm string
		emulator            []string
	}{
		{"linux-arm64", "arm64", "", []string{"qemu-aarch64"}},
		{"linux-armv7", "arm", "7", []string{"qemu-arm", "-cpu", "cortex-a7"}},
		{"linux-armv6 (Pi Zero/1)", "arm", "6", []string{"qemu-arm", "-cpu", "arm1176"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.Need(t, tc.emulator[0]+" (qemu-user)", exec.Command(tc.emulator[0], "-version").Run() == nil)
			dir := t.TempDir()
			bin := filepath.Join(dir, "roost")
			build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
			build.Dir = "../.."
			build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tc.goarch, "GOARM="+tc.goarm)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			run := func(stdin string, args ...string) *exec.Cmd {
				cmd := exec.Command(tc.emulator[0], append(append(tc.emulator[1:], bin), args...)...)
				cmd.Dir, cmd.Stdin = dir, strings.NewReader(stdin)
				return cmd
			}
			if out, err := run("", "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "linux/"+tc.goarch) {
				t.Fatalf("version under emulation: %v %s", err, out)
			}
			port := testutil.FreePort(t)
			cfg := fmt.Sprintf(`{"data_dir": "data", "listen": {"mdns": false, "https": "", "c2s": "127.0.0.1:%d", "c2s_tls": "", "dtls": ""}}`, port)
			os.WriteFile(filepath.Join(dir, "c.json"), []byte(cfg), 0o600)
			if out, err := run("", "init", "-config", "c.json").CombinedOutput(); err != nil {
				t.Fatalf("init: %v %s", err, out)
			}
			for _, u := range []string{"alice", "bob"} {
				if out, err := run(u+"-pw\n", "user", "add", "-config", "c.json", u+"@localhost").CombinedOutput(); err != nil {
					t.Fatalf("user add %s: %v %s", u, err, out)
				}
			}
			srv := run("", "run", "-config", "c.json")
			var logs testutil.LockedBuffer
			srv.Stdout, srv.Stderr = &logs, &logs
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { srv.Process.Kill(); srv.Wait() }()
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if c, err := net.Dial("tcp", addr); err == nil {
					c.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not listening on %s after 60 s; log:\n%s", addr, logs.String())
				}
			}
			client := exec.Command(python, "../acceptance/seed_example.py", "127.0.0.1", fmt.Sprint(port), "localhost",
				"alice", "alice-pw", "bob", "bob-pw", "--cafile", filepath.Join(dir, "data", "roost-cert.pem"), "--timeout", "60")
			out, err := client.CombinedOutput()
			t.Logf("slixmpp against the %s build:\n%s", tc.name, out)
			if err != nil || !strings.Contains(string(out), "PASS") {
				t.Fatalf("slixmpp failed: %v; server log:\n%s", err, logs.String())
			}
		})
	}
}

// The Windows release build compiles (and is a PE executable); its
// service wiring is unit-tested in server/sysservice.
func TestWindowsBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "roost.exe")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	build.Dir = "../.."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=windows", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build for windows/amd64: %v\n%s", err, out)
	}
	head := make([]byte, 2)
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(head); err != nil || string(head) != "MZ" {
		t.Fatalf("not a Windows executable: %q %v", head, err)
	}
}
