package server_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"roost/server"
	"roost/tests/xmlcheck"
	"roost/wire/xmlscan"
)

// componentUpstream is a fake XEP-0114 upstream on loopback: it accepts
// any handshake and hands each authenticated stream to the test. Its
// stream header declares the prefix x, which stanzas it sends may use
// without declaring it themselves.
type componentUpstream struct {
	ln    net.Listener
	conns chan *peerStream
}

// peerStream is the fake peer's side of a server or component stream.
type peerStream struct {
	t    *testing.T
	nc   net.Conn
	scan *xmlscan.Scanner
}

const upstreamHeader = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:example:x' id='up1' from='localhost'>"

func newComponentUpstream(t *testing.T) *componentUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &componentUpstream{ln: ln, conns: make(chan *peerStream, 4)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			p := &peerStream{t: t, nc: nc, scan: xmlscan.New(nc, xmlscan.Limits{})}
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			if tok, err := p.scan.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
				nc.Close()
				continue
			}
			nc.Write([]byte(upstreamHeader))
			if tok, err := p.scan.Next(); err != nil || string(tok.Local) != "handshake" {
				nc.Close()
				continue
			}
			nc.Write([]byte("<handshake/>"))
			nc.SetDeadline(time.Time{})
			u.conns <- p
		}
	}()
	return u
}

// next waits for the server's next authenticated uplink stream.
func (u *componentUpstream) next(t *testing.T) *peerStream {
	t.Helper()
	select {
	case p := <-u.conns:
		return p
	case <-time.After(15 * time.Second):
		t.Fatal("the server did not connect its uplink")
		return nil
	}
}

func (p *peerStream) send(s string) {
	p.t.Helper()
	p.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.nc.Write([]byte(s)); err != nil {
		p.t.Fatalf("peer send: %v", err)
	}
}

// until reads the server's elements until match accepts one (returned)
// or the stream ends (nil); the stream's elements so far are in seen.
func (p *peerStream) until(match func(*xmlscan.Token) bool) (found string, seen []string) {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		tok, err := p.scan.Next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				p.t.Fatalf("the server neither answered nor closed the stream; it sent %q", seen)
			}
			return "", seen
		}
		if tok.Kind == xmlscan.KindClose {
			return "", seen
		}
		seen = append(seen, string(tok.Raw))
		if match(&tok) {
			return string(tok.Raw), seen
		}
	}
}

func withUplink(addr string) func(*server.Config) {
	return func(c *server.Config) {
		c.Uplink.Component.Address = addr
		c.Uplink.Component.Secret = "s"
	}
}

// The issue 12 attack: an upstream iq from alice@LOCALHOST/x (or another
// spelling of our domain) to alice@localhost that sets a roster item. The
// server must end the uplink stream with invalid-from and leave alice's
// roster alone; a ping from a real remote sent after it must not be
// answered on that stream.
func TestUplinkSpoofedOwnDomainCannotSetRoster(t *testing.T) {
	up := newComponentUpstream(t)
	ts := startServer(t, withUplink(up.ln.Addr().String()))
	ts.addUser(t, "alice", "secret")
	for _, from := range []string{"alice@LOCALHOST/x", "alice@localhost./x", "alice@ｌｏｃａｌｈｏｓｔ/x"} {
		p := up.next(t)
		p.send("<iq type='set' id='spoof' from='" + from + "' to='alice@localhost'><query xmlns='jabber:iq:roster'><item jid='mallory@evil.test'/></query></iq>")
		p.send("<iq type='get' id='p1' from='bob@remote.test/r' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		pong, seen := p.until(func(tok *xmlscan.Token) bool { return bytes.Contains(tok.Raw, []byte("'p1'")) })
		if pong != "" || len(seen) == 0 || !strings.Contains(seen[len(seen)-1], "<invalid-from") {
			t.Errorf("from %s: want the stream ended with invalid-from before the ping is answered; the server sent %q", from, seen)
		}
		items, _, err := ts.Store().Roster("alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != 0 {
			t.Fatalf("from %s: the upstream changed alice's roster: %+v", from, items)
		}
	}
}

// A stanza from the upstream that uses a prefix declared only on the
// upstream's stream header reaches a client with the prefix declared on
// the stanza itself (RFC 6120 §8.1.2.1 with Namespaces in XML §5), and
// with the sender's address as the upstream wrote it when canonical.
func TestUplinkInheritedPrefixRedeclared(t *testing.T) {
	up := newComponentUpstream(t)
	ts := startServer(t, withUplink(up.ln.Addr().String()))
	ts.addUser(t, "alice", "secret")
	p := up.next(t)
	alice := login(t, ts, "alice", "secret", "r")
	p.send("<message from='bob@remote.test/r' to='alice@localhost/r' type='chat' id='m1'><body>hi</body><x:data>1</x:data></message>")
	checkInheritedPrefix(t, alice, "bob@remote.test/r")
}

// checkInheritedPrefix waits for message m1 and re-parses it as it was
// written: x:data must resolve to urn:example:x.
func checkInheritedPrefix(t *testing.T, c *rawClient, from string) {
	t.Helper()
	e := c.expect("message m1", func(e *element) bool { return e.XMLName.Local == "message" && e.attr("id") == "m1" })
	if e.attr("from") != from {
		t.Errorf("from %q, want %q", e.attr("from"), from)
	}
	// Rebuild the element from what the client's parser saw: its start
	// tag's attributes, declarations included, and its raw content.
	var b strings.Builder
	b.WriteString("<message")
	for _, a := range e.Attrs {
		b.WriteString(" ")
		if a.Name.Space == "xmlns" {
			b.WriteString("xmlns:")
		}
		b.WriteString(a.Name.Local + "='")
		xml.EscapeText(&b, []byte(a.Value))
		b.WriteString("'")
	}
	b.WriteString(">" + e.Inner + "</message>")
	raw := b.String()
	if err := xmlcheck.Element([]byte(raw), nil); err != nil {
		t.Fatalf("the forwarded stanza is not namespace-well-formed: %v\n%s", err, raw)
	}
	var m struct {
		Data *struct{} `xml:"urn:example:x data"`
	}
	if err := xml.Unmarshal([]byte(raw), &m); err != nil || m.Data == nil {
		t.Fatalf("x:data does not resolve to urn:example:x (err %v):\n%s", err, raw)
	}
}

// A stanza that cannot reach its domain is bounced to the sender with
// its id escaped for the quotes it is written in (issue 12, item 3, for
// the s2s path: s2s.Inbound.Undeliverable).
func TestUndeliverableBounceEscapesID(t *testing.T) {
	// Port 1 (tcpmux) on loopback: outside the ephemeral range, so no
	// listener another test opens meanwhile can take it (a freed
	// ephemeral port could be, and then answer the stream).
	dead := "127.0.0.1:1"
	if c, err := net.DialTimeout("tcp", dead, time.Second); err == nil {
		c.Close()
		t.Skip("something listens on 127.0.0.1:1 here")
	}
	ts := startServer(t, func(c *server.Config) {
		c.Listen.S2S = "127.0.0.1:0"
		c.S2S.Routes = map[string]string{"nowhere.test": dead}
	})
	ts.addUser(t, "alice", "secret")
	alice := login(t, ts, "alice", "secret", "r")
	alice.send(`<message to='bob@nowhere.test' id="it's &amp; &lt;more&gt;" type='chat'><body>hi</body></message>`)
	e := alice.expect("the bounce", func(e *element) bool { return e.XMLName.Local == "message" && e.attr("type") == "error" })
	if got := e.attr("id"); got != "it's & <more>" {
		t.Fatalf("bounce id %q", got)
	}
	if !strings.Contains(e.Inner, "remote-server-not-found") {
		t.Fatalf("bounce: %s", e)
	}
}
