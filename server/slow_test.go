package server_test

import (
	"strings"
	"testing"

	"roost/server"
)

// TestSlowReaderIsDropped: a client that stops reading fills its outbound
// queue and is dropped with <policy-violation/>; the sender is never
// blocked and keeps working.
func TestSlowReaderIsDropped(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits.StanzaBytes = 10000
		c.Limits.OutboundQueueBytes = 64 << 10
	})
	ts.addUser(t, "fast", "pw")
	ts.addUser(t, "slow", "pw")
	fast := login(t, ts, "fast", "pw", "f")
	slow := login(t, ts, "slow", "pw", "s")
	body := strings.Repeat("x", 1000)
	// Bounded: 20,000 messages of 1 KB overflow the socket buffers and
	// the queue many times over.
	for i := 0; i < 20000; i++ {
		fast.send("<message to='slow@localhost/s' type='chat'><body>" + body + "</body></message>")
		if i%100 == 0 {
			fast.drain() // the sender is still served (once slow is gone, its messages bounce)
		}
	}
	fast.drain()
	slow.expectStreamError("policy-violation")
}

// TestClientClosesStream: the server answers a client's closing tag with
// its own (RFC 6120 §4.4).
func TestClientClosesStream(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	a := login(t, ts, "alice", "pw", "a")
	a.send("</stream:stream>")
	if _, err := a.tryNext(); err != errStreamClosed {
		t.Fatalf("want the server's closing tag, got %v", err)
	}
}
