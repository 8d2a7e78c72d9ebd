package testutil

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair dials the blackhole and returns the client's end and the end the
// target accepted.
func pair(t *testing.T, b *Blackhole, target net.Listener) (client, server net.Conn) {
	t.Helper()
	client, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	target.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	server, err = target.Accept()
	if err != nil {
		t.Fatalf("the target never got the connection: %v", err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// roundTrip writes msg on from and reads it whole on to.
func roundTrip(t *testing.T, from, to net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	to.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(to, got); err != nil || string(got) != msg {
		t.Fatalf("forwarded %q, %v; want %q", got, err, msg)
	}
}

// silent checks that nothing, not even an EOF, arrives on c for a while:
// a negative check, so it has to wait some time.
func silent(t *testing.T, c net.Conn, who string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 64))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s got %d bytes, %v after Cut; want nothing and no EOF", who, n, err)
	}
}

// closed checks that c sees the end of the stream (EOF or reset).
func closed(t *testing.T, c net.Conn, who string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s never saw the connection close", who)
	}
}

func TestBlackholeForwardsThenCuts(t *testing.T) {
	target := listen(t)
	b := NewBlackhole(t, target.Addr().String())
	client, server := pair(t, b, target)
	roundTrip(t, client, server, "<presence/>")
	roundTrip(t, server, client, "<message><body>hi</body></message>")

	b.Cut()
	if _, err := client.Write([]byte("to nowhere")); err != nil {
		t.Fatalf("a write into a dead link must not fail at once: %v", err)
	}
	if _, err := server.Write([]byte("lost in transit")); err != nil {
		t.Fatalf("a write into a dead link must not fail at once: %v", err)
	}
	silent(t, server, "the target")
	silent(t, client, "the client")
	// A client that gives up closes its end; the server must not hear it.
	client.Close()
	silent(t, server, "the target after the client closed")

	// The link is dead for a new connection too: it is accepted, but the
	// target never sees it.
	late, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.Write([]byte("anyone?"))
	target.(*net.TCPListener).SetDeadline(time.Now().Add(300 * time.Millisecond))
	if c, err := target.Accept(); err == nil {
		c.Close()
		t.Fatal("a connection made after Cut reached the target")
	}
	silent(t, late, "a connection made after Cut")

	b.Close()
	closed(t, server, "the target")
	closed(t, late, "the late client")
	if c, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the blackhole still accepts after Close")
	}
}

func TestBlackholeCloseWithoutCut(t *testing.T) {
	target := listen(t)
	b := NewBlackhole(t, target.Addr().String())
	client, server := pair(t, b, target)
	roundTrip(t, client, server, "x")
	b.Close()
	closed(t, client, "the client")
	closed(t, server, "the target")
	b.Close() // twice is fine
	b.Cut()   // and Cut after Close does nothing
}

// Before Cut the proxy is transparent, FIN included: a client that closes
// is seen closing by the target.
func TestBlackholePassesCloseBeforeCut(t *testing.T) {
	target := listen(t)
	b := NewBlackhole(t, target.Addr().String())
	client, server := pair(t, b, target)
	client.Close()
	closed(t, server, "the target")
}

// Cut holds every connection, whichever side was busy writing: the rest
// of a bulk transfer in flight does not leak through, and the target's
// close after it is not passed on either.
func TestBlackholeCutDuringBulk(t *testing.T) {
	target := listen(t)
	b := NewBlackhole(t, target.Addr().String())
	client, server := pair(t, b, target)
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := make([]byte, 64<<10)
		server.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := server.Write(chunk); err != nil {
				return
			}
		}
	}()
	// Bytes flow, then the link dies in the middle of the transfer.
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	b.Cut()
	// The writer goes on until the dead link stops taking bytes.
	server.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	<-done
	server.Close()
	// The client may still read what its own buffer held at the cut;
	// then nothing more, and no EOF.
	buf := make([]byte, 1<<20)
	for end := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(end) {
			t.Fatal("bytes kept coming after Cut")
		}
		client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := client.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("the client saw %v after Cut", err)
		}
	}
}
