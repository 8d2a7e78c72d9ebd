package idle

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"roost/server"
)

// TestProfileIdleSessions finds where an idle session's memory goes: the
// server runs in this process, N sessions are opened by `roost bench
// -scenario idle` in another (so the clients' memory is not counted), and
// the heap and goroutine stacks are measured after two collections. The
// heap profile is written for `go tool pprof -sample_index=inuse_space`.
// ROOST_PROFILE_TRANSPORT=websocket opens them over WebSocket instead
// (the profile is then idle-heap-websocket.pprof).
//
//	ROOST_PROFILE_IDLE=2000 ROOST_PROFILE_OUT=/tmp go test -run TestProfileIdleSessions -v ./tests/idle/
//	ROOST_PROFILE_TRANSPORT=websocket ROOST_PROFILE_IDLE=2000 ROOST_PROFILE_OUT=/tmp go test -run TestProfileIdleSessions -v ./tests/idle/
func TestProfileIdleSessions(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ROOST_PROFILE_IDLE"))
	if n <= 0 {
		t.Skip("set ROOST_PROFILE_IDLE=N to profile N idle sessions")
	}
	runtime.MemProfileRate = 1 // every allocation, not a sample
	dir := t.TempDir()
	bin := filepath.Join(dir, "roost")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	defaults, _ := os.ReadFile("../../config.json")
	cfg, err := server.LoadConfig(defaults, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Listen.C2S, cfg.Listen.C2STLS, cfg.Listen.DTLS, cfg.Listen.HTTPS = "127.0.0.1:0", "", "", ""
	ws := os.Getenv("ROOST_PROFILE_TRANSPORT") == "websocket"
	if ws {
		cfg.Listen.HTTPS = "127.0.0.1:0"
	}
	cfg.Limits.ConnectionsPerIP = n + 10
	cfg.ScramIterations = 64
	srv := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	for i := 1; i <= n; i++ {
		if err := srv.Store().AddUser(fmt.Sprintf("user%d", i), fmt.Sprintf("pass%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	args := []string{"bench", "-target", srv.Addrs()[0].String(), "-users", strconv.Itoa(n), "-scenario", "idle", "-duration", "60s"}
	name := "idle-heap.pprof"
	if ws {
		args = append(args, "-ws", "wss://"+srv.WebAddr().String()+"/xmpp-websocket")
		name = "idle-heap-websocket.pprof"
	}
	clients := exec.Command(bin, args...)
	if err := clients.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { clients.Process.Kill(); clients.Wait() }()
	for deadline := time.Now().Add(120 * time.Second); srv.Sessions() < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sessions after 120 s", srv.Sessions(), n)
		}
	}
	time.Sleep(time.Second)
	runtime.GC()
	runtime.GC() // the second also shrinks stacks grown during login
	runtime.ReadMemStats(&m1)
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) / 1024 }
	t.Logf("%d sessions, %d goroutines more: per session heap in use %.1f KiB (objects %.0f), stacks %.1f KiB, total from the OS %.1f KiB",
		n, runtime.NumGoroutine()-g0, per(m0.HeapInuse, m1.HeapInuse), float64(m1.HeapObjects-m0.HeapObjects)/float64(n),
		per(m0.StackInuse, m1.StackInuse), per(m0.Sys-m0.HeapReleased, m1.Sys-m1.HeapReleased))
	if out := os.Getenv("ROOST_PROFILE_OUT"); out != "" {
		f, err := os.Create(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
		t.Logf("heap profile: %s", f.Name())
	}
}
