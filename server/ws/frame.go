// Package ws is XMPP over WebSocket (RFC 7395): the /xmpp-websocket
// endpoint of the web face. A WebSocket connection is framed as a
// net.Conn that presents the client's frames to package c2s as one XML
// stream and cuts what c2s writes back into one frame per element, so
// the negotiation (SASL, bind, stream management), the limits and the
// session core are exactly those of a TCP client stream: a WebSocket
// session is a session.Bound with TransportName "websocket" in the same
// router, not a second server.
//
// The WebSocket library is github.com/gorilla/websocket: maintained, no
// dependencies, no goroutine per connection, and it lets an idle
// connection hold almost nothing: its own small read buffer (the 4 KiB
// buffers net/http hijacked the connection with are let go) and a write
// buffer taken from a pool only while a message is written. (coder/
// websocket, tried first, keeps net/http's two 4 KiB buffers for the
// connection's life: BENCHMARKS.md, idle memory.)
package ws

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Namespaces of the framing (RFC 7395 §3.3.1) and of the stream it stands for.
const (
	NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"
	nsStream  = "http://etherx.jabber.org/streams"
	nsClient  = "jabber:client"
)

// maxOpenBytes bounds an <open/> frame: it is a header, not a stanza.
const maxOpenBytes = 1024

// conn is one WebSocket connection as the XML stream c2s reads and writes.
//
// Reading (one goroutine, c2s's reader): each text message is handed out
// as it arrives, streamed, so the scanner's size limits (and its
// <policy-violation/>) apply to a frame as to a TCP element. <open/>
// becomes a stream header, <close/> the closing tag (RFC 7395 §3.4, §3.6).
//
// Writing (c2s before binding, the out-queue's writer after): what c2s
// writes is whole elements; each becomes one text message (RFC 7395
// §3.3.3), with the namespace declarations a standalone element needs.
type conn struct {
	ws            *websocket.Conn
	remote, local net.Addr

	// reader side
	head *[maxOpenBytes]byte // a message's first bytes while they are handed out; pooled, nil when idle
	pend []byte              // bytes of the current message to hand out first
	msg  io.Reader           // the rest of the current message; nil between messages

	wmu sync.Mutex
	out []byte // one frame being built

	closeOnce sync.Once
}

func newConn(c *websocket.Conn, remote, local net.Addr) *conn {
	return &conn{ws: c, remote: remote, local: local}
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// The deadlines are the WebSocket connection's own (it sets them on the
// socket): c2s's read deadline (limits.auth_timeout, idle) and the
// out-queue's write deadline apply as on a TCP stream.
func (c *conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

// Close ends the connection with a WebSocket close frame (RFC 6455 §7)
// and closes the socket; the peer's answer is not waited for. A write
// under way gets its own deadline from WriteControl.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.ws.Close()
	})
	return nil
}

// Read hands out the client's frames as one XML stream.
func (c *conn) Read(p []byte) (int, error) {
	for {
		if len(c.pend) > 0 {
			n := copy(p, c.pend)
			c.pend = c.pend[n:]
			if len(c.pend) == 0 {
				c.releaseHead()
			}
			return n, nil
		}
		if c.msg != nil {
			n, err := c.msg.Read(p)
			if err == io.EOF {
				c.endMessage()
				err = nil
				if n == 0 {
					continue
				}
			}
			if err != nil {
				return n, c.readError(err)
			}
			return n, nil
		}
		if err := c.nextMessage(); err != nil {
			return 0, err
		}
	}
}

func (c *conn) endMessage() { c.msg = nil }

// headPool lends the buffer a message's first bytes are read into, so
// that an idle connection holds none.
var headPool = sync.Pool{New: func() any { return new([maxOpenBytes]byte) }}

func (c *conn) releaseHead() {
	if c.head != nil {
		headPool.Put(c.head)
		c.head = nil
	}
}

// nextMessage starts the next message: its first bytes decide whether it
// is framing (<open/>, <close/>) or an element to pass on.
func (c *conn) nextMessage() error {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return c.readError(err)
	}
	if typ != websocket.TextMessage {
		// RFC 7395 §3.2: every message is UTF-8 text; a binary one is
		// not XML this stream can process.
		c.endMessage()
		return &xmlscan.Error{Cond: xmlscan.Condition(stanza.StreamBadFormat), Reason: "binary WebSocket messages are not allowed (RFC 7395 §3.2)"}
	}
	c.head = headPool.Get().(*[maxOpenBytes]byte)
	n, err := io.ReadFull(r, c.head[:])
	whole := err == io.EOF || err == io.ErrUnexpectedEOF
	if err != nil && !whole {
		c.endMessage()
		c.releaseHead()
		return c.readError(err)
	}
	b := bytes.TrimLeft(c.head[:n], " \t\r\n")
	switch {
	case isTag(b, "open"):
		c.endMessage()
		if !whole {
			c.releaseHead()
			return &xmlscan.Error{Cond: xmlscan.PolicyViolation, Reason: "<open/> too large"}
		}
		c.pend = append([]byte(nil), openToHeader(b)...) // once per stream; head goes back
		c.releaseHead()
		return nil
	case isTag(b, "close"):
		c.endMessage()
		c.pend = []byte("</stream:stream>")
		c.releaseHead()
		return nil
	}
	c.pend = c.head[:n]
	if n == 0 {
		c.releaseHead()
	}
	if whole {
		c.endMessage()
	} else {
		c.msg = r
	}
	return nil
}

// readError maps the library's errors to what c2s expects of a socket:
// a deadline is os.ErrDeadlineExceeded, a closed WebSocket io.EOF.
func (c *conn) readError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return os.ErrDeadlineExceeded
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		return &xmlscan.Error{Cond: xmlscan.PolicyViolation, Reason: "WebSocket message larger than the stanza size limit"}
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return io.EOF
	}
	return err
}

// isTag reports whether b starts with the start tag of an element named
// name (no prefix).
func isTag(b []byte, name string) bool {
	if len(b) < len(name)+2 || b[0] != '<' || string(b[1:1+len(name)]) != name {
		return false
	}
	switch b[1+len(name)] {
	case ' ', '\t', '\r', '\n', '/', '>':
		return true
	}
	return false
}

// openToHeader turns <open xmlns='urn:ietf:params:xml:ns:xmpp-framing'
// to='…' version='1.0'/> into the stream header c2s checks (RFC 7395
// §3.4): the same attributes, the framing namespace standing for the
// content namespace. Anything malformed is passed on for the scanner to
// refuse.
func openToHeader(b []byte) []byte {
	b = bytes.TrimRight(b, " \t\r\n")
	if !bytes.HasSuffix(b, []byte("/>")) {
		return b
	}
	attrs := b[len("<open") : len(b)-2]
	out := make([]byte, 0, len(b)+64)
	out = append(out, "<stream:stream xmlns:stream='"+nsStream+"'"...)
	out = append(out, bytes.Replace(attrs, []byte(NSFraming), []byte(nsClient), 1)...)
	return append(out, '>')
}

// Write sends what c2s wrote, one text message per element.
func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for rest := b; len(rest) > 0; {
		var n int
		n, c.out = nextFrame(rest, c.out[:0])
		rest = rest[n:]
		if len(c.out) == 0 {
			continue
		}
		if err := c.ws.WriteMessage(websocket.TextMessage, c.out); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = os.ErrDeadlineExceeded
			}
			return len(b) - len(rest) - n, err
		}
	}
	if cap(c.out) > 64<<10 {
		c.out = nil // a large stanza's buffer is not kept by an idle connection
	}
	return len(b), nil
}

// nextFrame cuts the first unit off b, the server's own well-formed
// output, and appends its frame to dst (nothing for the XML declaration
// or whitespace). It returns how many bytes of b it consumed.
//   - <stream:stream …> becomes <open xmlns='…xmpp-framing' …/> (RFC 7395 §3.4);
//   - </stream:stream> becomes <close xmlns='…xmpp-framing'/> (§3.6);
//   - any other element is copied whole, declaring the namespace it
//     relied on the stream header for (§3.3.3): xmlns:stream on
//     <stream:features/> and <stream:error/>, xmlns='jabber:client' on a
//     stanza without one.
func nextFrame(b []byte, dst []byte) (int, []byte) {
	i := bytes.IndexByte(b, '<')
	if i < 0 {
		return len(b), dst
	}
	t := b[i:]
	switch {
	case bytes.HasPrefix(t, []byte("<?")):
		end := bytes.Index(t, []byte("?>"))
		if end < 0 {
			return len(b), dst
		}
		return i + end + 2, dst
	case bytes.HasPrefix(t, []byte("</stream:stream>")):
		return i + len("</stream:stream>"), append(dst, "<close xmlns='"+NSFraming+"'/>"...)
	case bytes.HasPrefix(t, []byte("<stream:stream")):
		end, _ := tagEnd(t)
		dst = append(dst, "<open xmlns='"+NSFraming+"'"...)
		nameEnd := len("<stream:stream")
		forAttrs(t[nameEnd:end], func(name, attr []byte) {
			if string(name) != "xmlns" && string(name) != "xmlns:stream" {
				dst = append(dst, attr...)
			}
		})
		return i + end, append(dst, "/>"...)
	}
	end := elementEnd(t)
	nameEnd := 1
	for nameEnd < len(t) && !isSpaceOrEnd(t[nameEnd]) {
		nameEnd++
	}
	name := t[1:nameEnd]
	tagStop, _ := tagEnd(t)
	declared := false
	want := "xmlns"
	decl := " xmlns='" + nsClient + "'"
	if bytes.HasPrefix(name, []byte("stream:")) {
		want, decl = "xmlns:stream", " xmlns:stream='"+nsStream+"'"
	}
	forAttrs(t[nameEnd:tagStop], func(n, _ []byte) {
		if string(n) == want {
			declared = true
		}
	})
	dst = append(dst, t[:nameEnd]...)
	if !declared {
		dst = append(dst, decl...)
	}
	dst = append(dst, t[nameEnd:end]...)
	return i + end, dst
}

func isSpaceOrEnd(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/' || c == '>'
}

// tagEnd returns the offset just past the start tag at the beginning of
// t (quotes respected) and whether it is an empty-element tag.
func tagEnd(t []byte) (int, bool) {
	var quote byte
	for i := 1; i < len(t); i++ {
		switch c := t[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return i + 1, t[i-1] == '/'
		}
	}
	return len(t), false
}

// elementEnd returns the offset just past the element that starts t, or
// len(t) when it does not end in t.
func elementEnd(t []byte) int {
	depth := 0
	for i := 0; i < len(t); {
		j := bytes.IndexByte(t[i:], '<')
		if j < 0 {
			return len(t)
		}
		i += j
		u := t[i:]
		var skip []byte
		switch {
		case bytes.HasPrefix(u, []byte("<![CDATA[")):
			skip = []byte("]]>")
		case bytes.HasPrefix(u, []byte("<!--")):
			skip = []byte("-->")
		case bytes.HasPrefix(u, []byte("<?")):
			skip = []byte("?>")
		case bytes.HasPrefix(u, []byte("</")):
			k := bytes.IndexByte(u, '>')
			if k < 0 {
				return len(t)
			}
			i += k + 1
			if depth--; depth <= 0 {
				return i
			}
			continue
		default:
			n, empty := tagEnd(u)
			i += n
			if !empty {
				depth++
			} else if depth == 0 {
				return i
			}
			continue
		}
		k := bytes.Index(u, skip)
		if k < 0 {
			return len(t)
		}
		i += k + len(skip)
	}
	return len(t)
}

// forAttrs calls fn with each attribute's name and its bytes (leading
// space included) in the attribute part of a start tag.
func forAttrs(a []byte, fn func(name, attr []byte)) {
	i := 0
	for i < len(a) {
		start := i
		for i < len(a) && (a[i] == ' ' || a[i] == '\t' || a[i] == '\r' || a[i] == '\n') {
			i++
		}
		if i >= len(a) || a[i] == '/' || a[i] == '>' {
			return
		}
		n0 := i
		for i < len(a) && a[i] != '=' && a[i] != ' ' && a[i] != '\t' && a[i] != '\r' && a[i] != '\n' {
			i++
		}
		name := a[n0:i]
		q := bytes.IndexAny(a[i:], "'\"")
		if q < 0 {
			return
		}
		i += q
		end := bytes.IndexByte(a[i+1:], a[i])
		if end < 0 {
			return
		}
		i += end + 2
		fn(name, a[start:i])
	}
}
