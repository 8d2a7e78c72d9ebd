package datagram_test

import (
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"

	"roost/server"
)

// recv reads datagrams from the device until one contains want, and
// returns it; it fails after a deadline.
func recv(t *testing.T, c *dtls.Conn, want string, within time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(within))
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("device waiting for %q: %v", want, err)
		}
		if s := string(buf[:n]); strings.Contains(s, want) {
			return s
		}
	}
}

// TestDeviceStanzasAckedOnce (docs/datagram-binding.md §5): the gateway
// acknowledges a device's numbered stanzas with <a h=”/>; a
// retransmitted datagram whose ack was lost is acknowledged again but not
// routed twice; a stanza after a gap is dropped until the gap is filled.
func TestDeviceStanzasAckedOnce(t *testing.T) {
	r := start(t)
	o := r.owner(t)
	dev, _, err := r.device(t, r.psk)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(body string) string {
		return "<message to='alice@localhost' type='chat'><body>" + body + "</body></message>"
	}
	send(t, dev, "<r xmlns='urn:xmpp:sm:3' seq='1'/>"+msg("one"))
	recv(t, dev, "<a xmlns='urn:xmpp:sm:3' h='1'/>", 5*time.Second)
	send(t, dev, "<r xmlns='urn:xmpp:sm:3' seq='1'/>"+msg("one")) // the ack was "lost": sent again
	recv(t, dev, "h='1'", 5*time.Second)
	send(t, dev, "<r xmlns='urn:xmpp:sm:3' seq='3'/>"+msg("three")) // number 2 was "lost"
	recv(t, dev, "h='1'", 5*time.Second)
	send(t, dev, "<r xmlns='urn:xmpp:sm:3' seq='2'/>"+msg("two")+msg("three"))
	recv(t, dev, "h='3'", 5*time.Second)
	send(t, dev, "<r xmlns='urn:xmpp:sm:3'/>") // a plain XEP-0198 request
	recv(t, dev, "h='3'", 5*time.Second)
	io.WriteString(o.conn, "<iq type='get' id='end'><ping xmlns='urn:xmpp:ping'/></iq>")
	var got []string
	for {
		e := o.next()
		if e == nil {
			t.Fatal("controller: stream ended")
		}
		if e.XMLName.Local == "iq" && e.ID == "end" {
			break
		}
		if e.XMLName.Local == "message" {
			got = append(got, strings.TrimSuffix(strings.TrimPrefix(e.Inner, "<body>"), "</body>"))
		}
	}
	if strings.Join(got, ",") != "one,two,three" {
		t.Fatalf("controller got %q, want one,two,three exactly once each", got)
	}
}

// TestStanzasToDeviceRetransmitted: a stanza to a device that speaks the
// acks comes numbered, comes again (same number) until acknowledged, and
// the next one carries the next number.
func TestStanzasToDeviceRetransmitted(t *testing.T) {
	r := start(t)
	o := r.owner(t)
	dev, _, err := r.device(t, r.psk)
	if err != nil {
		t.Fatal(err)
	}
	send(t, dev, "<r xmlns='urn:xmpp:sm:3' seq='1'/><presence/>")
	recv(t, dev, "h='1'", 5*time.Second)
	io.WriteString(o.conn, "<message to='sensor@localhost/device' type='chat'><body>first</body></message>")
	// Before it, the device got the owner's presence: its number is one
	// of those after.
	d := recv(t, dev, "first", 5*time.Second)
	m := regexp.MustCompile(`^<r xmlns='urn:xmpp:sm:3' seq='(\d+)'/><message`).FindStringSubmatch(d)
	if m == nil {
		t.Fatalf("stanza to the device not numbered: %s", d)
	}
	seq, _ := strconv.Atoi(m[1])
	start := time.Now()
	d = recv(t, dev, "first", 5*time.Second) // not acknowledged: again
	if !strings.HasPrefix(d, "<r xmlns='urn:xmpp:sm:3' seq='"+m[1]+"'/>") || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("retransmission after %s: %s", time.Since(start), d)
	}
	send(t, dev, "<a xmlns='urn:xmpp:sm:3' h='"+m[1]+"'/>")
	io.WriteString(o.conn, "<message to='sensor@localhost/device' type='chat'><body>second</body></message>")
	d = recv(t, dev, "second", 5*time.Second)
	if !strings.HasPrefix(d, "<r xmlns='urn:xmpp:sm:3' seq='"+strconv.Itoa(seq+1)+"'/>") {
		t.Fatalf("the next stanza is not number %d: %s", seq+1, d)
	}
}

// TestDeviceGoneUndelivered (issue 14): what a device never acknowledged
// when its session ends is not lost: an iq request comes back to its
// sender as service-unavailable, a chat message is stored offline and
// reaches the device at its next login.
func TestDeviceGoneUndelivered(t *testing.T) {
	r := startWith(t, func(c *server.Config) { c.Devices.IdleTimeout = server.Duration(time.Second) })
	o := r.owner(t)
	dev, _, err := r.device(t, r.psk)
	if err != nil {
		t.Fatal(err)
	}
	send(t, dev, "<r xmlns='urn:xmpp:sm:3' seq='1'/><presence/>")
	recv(t, dev, "h='1'", 5*time.Second)
	io.WriteString(o.conn, "<iq type='get' id='q1' to='sensor@localhost/device'><ping xmlns='urn:xmpp:ping'/></iq>"+
		"<message to='sensor@localhost/device' type='chat' id='m1'><body>keep me</body></message>")
	recv(t, dev, "keep me", 5*time.Second) // received, never acknowledged; the device goes silent
	e := o.match("iq", func(e *el) bool { return e.ID == "q1" })
	if e.Type != "error" || !strings.Contains(e.Inner, "service-unavailable") {
		t.Fatalf("the unanswered iq came back as %s: %s", e.Type, e.Inner)
	}
	dev.Close()
	again, _, err := r.device(t, r.psk)
	if err != nil {
		t.Fatal(err)
	}
	send(t, again, "<presence/>")
	d := recv(t, again, "keep me", 5*time.Second)
	if !strings.Contains(d, "urn:xmpp:delay") {
		t.Fatalf("the stored message has no delay stamp: %s", d)
	}
}
