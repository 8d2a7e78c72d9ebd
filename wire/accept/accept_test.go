package accept

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// Loop hands each connection over and ends when the listener closes or
// handle says stop.
func TestLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	got := make(chan net.Conn, 2)
	done := make(chan struct{})
	go func() {
		Loop(ln, log, "test", func(nc net.Conn) bool { got <- nc; return len(got) < 2 })
		close(done)
	}()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	select {
	case <-done: // handle said stop on the second connection
	case <-time.After(10 * time.Second):
		t.Fatal("Loop did not end when handle returned false")
	}
	if len(got) != 2 {
		t.Fatalf("%d connections handed over, want 2", len(got))
	}
	ln.Close()

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done2 := make(chan struct{})
	go func() { Loop(ln2, log, "test", func(net.Conn) bool { return true }); close(done2) }()
	ln2.Close()
	select {
	case <-done2:
	case <-time.After(10 * time.Second):
		t.Fatal("Loop did not end when its listener closed")
	}
}
