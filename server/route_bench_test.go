package server_test

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"roost/server"
	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/xmlscan"
)

// discardConn is a net.Conn that swallows writes: the receiving end of a
// benchmark session, so the measure is the server's work, not a peer's.
type discardConn struct{ n atomic.Int64 }

func (c *discardConn) Write(b []byte) (int, error)      { c.n.Add(int64(len(b))); return len(b), nil }
func (c *discardConn) Read([]byte) (int, error)         { select {} }
func (c *discardConn) Close() error                     { return nil }
func (c *discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *discardConn) SetDeadline(time.Time) error      { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }

// loopReader yields a stream header once and then the same stanza for ever.
type loopReader struct {
	head, body []byte
	off        int
	started    bool
}

func (r *loopReader) Read(p []byte) (int, error) {
	if !r.started {
		r.started = true
		return copy(p, r.head), nil
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.body[r.off:])
		n += c
		r.off = (r.off + c) % len(r.body)
	}
	return n, nil
}

const benchHeader = "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

// BenchmarkRouteMessage measures one chat message between two bound
// sessions through the whole stanza path: scan, parse, stamp from, route
// (full JID lookup), enqueue on the receiver (whose writer flushes to a
// discarding conn). The design target is 0 allocs/op.
func BenchmarkRouteMessage(b *testing.B) {
	for _, bc := range []struct {
		name, to string
		sm       bool
	}{
		{"full-jid", "bob@localhost/phone", false},
		{"bare-jid", "bob@localhost", false},
		// Stream management (XEP-0198) on both sessions: the receiver
		// keeps every stanza until acknowledged, and acknowledges every
		// 64 as a client would; still nothing allocated per stanza.
		{"full-jid-sm", "bob@localhost/phone", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := startServer(b, func(c *server.Config) { c.Limits.OutboundQueueBytes = 64 << 20 })
			alice, _ := jid.Parse("alice@localhost/laptop")
			bob, _ := jid.Parse("bob@localhost/phone")
			sender := ts.BindLocal(alice, &discardConn{})
			out := &discardConn{}
			receiver := ts.BindLocal(bob, out)
			receiver.SetPresence(true, 0, []byte("<presence/>"))
			if bc.sm {
				reg := session.NewRegistry(time.Minute)
				if err := sender.EnableSM(reg, true); err != nil {
					b.Fatal(err)
				}
				if err := receiver.EnableSM(reg, true); err != nil {
					b.Fatal(err)
				}
			}
			msg := "<message to='" + bc.to + "' type='chat' id='m1'><body>Temperature 21.5 C, humidity 40%</body></message>"
			sc := xmlscan.New(&loopReader{head: []byte(benchHeader), body: []byte(msg)}, xmlscan.Limits{})
			if _, err := sc.Next(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			var tok xmlscan.Token
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				if tok, err = sc.Next(); err != nil {
					b.Fatal(err)
				}
				sender.Receive(&tok)
				if bc.sm && i%64 == 63 {
					if err := receiver.Acked(uint32(i + 1)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			for i := 0; i < 100 && out.n.Load() == 0; i++ {
				time.Sleep(10 * time.Millisecond) // the writer flushes asynchronously
			}
			if out.n.Load() == 0 {
				b.Fatal("nothing was delivered")
			}
		})
	}
}
