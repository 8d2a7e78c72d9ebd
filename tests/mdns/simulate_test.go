package mdns

import (
	"bufio"
	"context"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roost/devices"
)

// `roost device simulate` with neither -server nor -config finds the
// gateway on the link (devices/discover), takes its domain from the TXT
// record and comes online over DTLS.
func TestSimulateFindsGateway(t *testing.T) {
	if !inOwnNetwork(t) {
		return
	}
	srv, cfg := gateway(t)
	dev, err := devices.Add(srv.Store(), cfg.Domain, "thermo1", "thermometer", "Kitchen", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "roost")
	if out, err := exec.Command("go", "build", "-o", bin, "roost").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "device", "simulate", "-psk", hex.EncodeToString(dev.PSK), "-every", "1s", "thermo1")
	cmd.Dir = dir // no config here: the embedded defaults (domain localhost)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), "simulated device online") {
			if !strings.Contains(sc.Text(), "thermo1@"+cfg.Domain) || !strings.Contains(sc.Text(), srv.DevicesAddr().String()) {
				t.Fatalf("online as %q, want thermo1@%s at %s", sc.Text(), cfg.Domain, srv.DevicesAddr())
			}
			return
		}
	}
	t.Fatalf("the simulator never came online:\n%s", strings.Join(seen, "\n"))
}
