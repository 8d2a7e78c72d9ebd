package server_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"roost/server"
	"roost/server/c2s"
	"roost/tests/xmlcheck"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// recConn records what a session's writer writes, for the fuzz oracle.
type recConn struct {
	mu     sync.Mutex
	buf    []byte
	closed bool
	wake   chan struct{}
}

func newRecConn() *recConn { return &recConn{wake: make(chan struct{}, 1)} }

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.buf = append(c.buf, b...)
	c.mu.Unlock()
	c.signal()
	return len(b), nil
}

func (c *recConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *recConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.signal()
	return nil
}

// waitFor returns (and forgets) everything written up to and including
// marker, or everything so far when the connection closed first.
func (c *recConn) waitFor(marker []byte, d time.Duration) (out []byte, found bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if i := bytes.Index(c.buf, marker); i >= 0 || c.closed {
			n := len(c.buf)
			if i >= 0 {
				n = i + len(marker)
			}
			out = append([]byte(nil), c.buf[:n]...)
			c.buf = append(c.buf[:0], c.buf[n:]...)
			c.mu.Unlock()
			return out, i >= 0
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-deadline.C:
			c.mu.Lock()
			out = append([]byte(nil), c.buf...)
			c.mu.Unlock()
			return out, false
		}
	}
}

func (c *recConn) Read([]byte) (int, error)         { select {} }
func (c *recConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *recConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *recConn) SetDeadline(time.Time) error      { return nil }
func (c *recConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recConn) SetWriteDeadline(time.Time) error { return nil }

// emitRig is a real server with two bound sessions, alice (who sends the
// fuzzed stanzas) and bob (available, alice's contact, a receiver).
type emitRig struct {
	ts           *testServer
	alice, bob   *c2s.Session
	aOut, bOut   *recConn
	aliceJ, bobJ jid.JID
	n            int
}

func newEmitRig(f *testing.F) *emitRig {
	ts := startServer(f, func(c *server.Config) {
		c.Limits.RosterItems = 20
		c.Limits.OfflineMessages = 5
	})
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := ts.Store().AddUser(u, "pw"); err != nil {
			f.Fatal(err)
		}
	}
	r := &emitRig{ts: ts}
	r.aliceJ, _ = jid.Parse("alice@localhost/a")
	r.bobJ, _ = jid.Parse("bob@localhost/b")
	r.bind()
	return r
}

// bind (re)binds both sessions, after a stream error closed one.
func (r *emitRig) bind() {
	if r.alice != nil {
		r.ts.Unbind(r.alice)
		r.ts.Unbind(r.bob)
	}
	r.aOut, r.bOut = newRecConn(), newRecConn()
	r.alice = r.ts.BindLocal(r.aliceJ, r.aOut)
	r.bob = r.ts.BindLocal(r.bobJ, r.bOut)
	r.bob.SetPresence(true, 0, []byte("<presence from='bob@localhost/b'/>"))
}

// run feeds input as alice's stream content (after a client stream
// header, scanned as c2s scans it) and checks every byte written to
// either session with xmlcheck.
func (r *emitRig) run(t *testing.T, input []byte) {
	sc := xmlscan.New(strings.NewReader(emitHeader+string(input)), xmlscan.Limits{MaxElementBytes: 1 << 16})
	if _, err := sc.Next(); err != nil {
		t.Fatalf("stream header: %v", err)
	}
	for i := 0; i < 8; i++ {
		tok, err := sc.Next()
		if err != nil {
			break // what the scanner refuses never reaches the server
		}
		if tok.Kind != xmlscan.KindElement {
			continue
		}
		if _, ok := stanza.Parse(&tok, "jabber:client"); !ok {
			continue // c2s answers these with a stream error of its own
		}
		r.alice.Receive(&tok)
	}
	// Everything the stanzas caused was queued before these markers.
	r.n++
	marker := []byte(fmt.Sprintf("<message id='emit-sync-%d'/>", r.n))
	aliveA, aliveB := r.alice.Deliver(marker), r.bob.Deliver(marker)
	for _, c := range []struct {
		who   string
		out   *recConn
		alive bool
	}{{"alice", r.aOut, aliveA}, {"bob", r.bOut, aliveB}} {
		got, found := c.out.waitFor(marker, 10*time.Second)
		if c.alive && !found {
			c.out.mu.Lock()
			closed := c.out.closed
			c.out.mu.Unlock()
			if !closed {
				t.Fatalf("%s: no sync marker within 10s after %q; got %q", c.who, input, got)
			}
		}
		if err := xmlcheck.Stream(got); err != nil {
			t.Fatalf("Roost wrote malformed XML to %s for input %q: %v\n%s", c.who, input, err, got)
		}
	}
	if !aliveA || !aliveB {
		r.bind()
	}
}

const emitHeader = "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x' version='1.0' xml:lang='en'>"

// FuzzEmit re-parses every byte Roost writes in answer to a fuzzed
// client stanza with xmlcheck, a namespace-aware checker independent of
// the scanner (issue 12 item 3): results, errors, bounces, forwards,
// roster pushes, presence broadcasts.
func FuzzEmit(f *testing.F) {
	for _, s := range []string{
		`<message to='bob@localhost/b' type='chat' id='m1'><body>hi</body></message>`,
		`<message to='bob@localhost' id="it's"><body>x</body></message>`,
		`<message to='bob@localhost/b' id='a"b'><x:y/></message>`,
		`<message to='bob@localhost/b' xmlns:a='urn:a' a:q='1'><a:b>x</a:b></message>`,
		`<message to='carol@localhost' id='off'><body>offline</body></message>`,
		`<message to='nobody@localhost' id="no'one"><body/></message>`,
		`<message to='a@b@c' id="it's"><body/></message>`,
		`<message to='@localhost'/>`,
		`<message to='localhost/' type='groupchat'/>`,
		`<message to='BOB@LOCALHOST/b'/>`,
		`<message to='bob@localhost/&#x41;'/>`,
		`<message to='x@remote.example' id="r'1"/>`,
		`<message><body>to myself</body></message>`,
		`<iq type="get" id="it's-1" to="localhost"><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type='get' id='say "hi"'><query xmlns='jabber:iq:roster'/></iq>`,
		`<iq type='get' id='v'><query xmlns='jabber:iq:roster' ver='1'/></iq>`,
		`<iq type='set' id="s'1"><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name="B'o&quot;b"><group>a&amp;b</group></item></query></iq>`,
		`<iq type='set' id='rm'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>`,
		`<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
		`<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node="n'"/></iq>`,
		`<iq type='get' id='d' to='bob@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
		`<iq type='get' id='ver' to='localhost'><query xmlns='jabber:iq:version'/></iq>`,
		`<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`,
		`<iq type='get' id='u' to='localhost'><query xmlns='urn:unknown'/></iq>`,
		`<iq type='get' id='b' to='bob@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<iq type='get' id='bad'/>`,
		`<iq type='bogus' id="it's"/>`,
		`<iq type='get' id='m' to='a@b@c'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<presence/>`,
		`<presence><status>it's "here" &amp; &lt;now&gt;</status><priority>5</priority></presence>`,
		`<presence to='bob@localhost/b'/>`,
		`<presence to='bob@localhost' type='subscribe' id="s'"/>`,
		`<presence to='bob@localhost' type='subscribed'/>`,
		`<presence to='bob@localhost' type='unsubscribed'/>`,
		`<presence to='bob@localhost' type='probe'/>`,
		`<presence to='a@b@c' type='subscribe'/>`,
		`<presence type='unavailable'/>`,
		`<presence xml:lang='de' to='bob@localhost/b'><x:status/></presence>`,
	} {
		f.Add([]byte(s))
	}
	r := newEmitRig(f)
	f.Fuzz(func(t *testing.T, input []byte) {
		r.run(t, input)
	})
}
