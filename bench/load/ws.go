package load

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// XMPP over WebSocket (RFC 7395). The transport is a net.Conn that makes
// the framed connection look like the TCP stream the rest of the client
// speaks, so SASL, bind and the scenarios are the same code for both:
// each Write (one element: Dial and Send write whole elements) becomes
// one text message; a message from the server is handed to the scanner
// as it is, with <open/> turned into a stream header and <close/> into
// the closing tag. Dial writes the stream header through (*Conn).open,
// which sends <open/> here.

const nsFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// wsStreamHeader is what the scanner reads for the server's <open/>; the
// elements that follow carry their own namespace declarations.
const wsStreamHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

type wsConn struct {
	ws   *websocket.Conn
	pend []byte
}

// dialWebSocket opens url with the xmpp subprotocol. Without conf the
// server's certificate is not checked (a load tool).
func dialWebSocket(url string, conf *tls.Config, timeout time.Duration) (*wsConn, error) {
	if conf == nil {
		conf = &tls.Config{InsecureSkipVerify: true}
	}
	d := websocket.Dialer{Subprotocols: []string{"xmpp"}, TLSClientConfig: conf, HandshakeTimeout: timeout,
		ReadBufferSize: 1024, WriteBufferSize: 1024}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	if c.Subprotocol() != "xmpp" {
		c.Close()
		return nil, errors.New("websocket: the server did not accept the xmpp subprotocol")
	}
	return &wsConn{ws: c}, nil
}

func (w *wsConn) Read(p []byte) (int, error) {
	for len(w.pend) == 0 {
		typ, b, err := w.ws.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return 0, net.ErrClosed
			}
			return 0, err
		}
		if typ != websocket.TextMessage {
			return 0, errors.New("websocket: binary message from the server")
		}
		t := bytes.TrimSpace(b)
		switch {
		case bytes.HasPrefix(t, []byte("<open")) && (len(t) == 5 || t[5] == ' ' || t[5] == '/'):
			w.pend = []byte(wsStreamHeader)
		case bytes.HasPrefix(t, []byte("<close")) && (len(t) == 6 || t[6] == ' ' || t[6] == '/'):
			w.pend = []byte("</stream:stream>")
		default:
			w.pend = b
		}
	}
	n := copy(p, w.pend)
	w.pend = w.pend[n:]
	return n, nil
}

// Write sends b, one element, as one text message.
func (w *wsConn) Write(b []byte) (int, error) {
	if err := w.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (w *wsConn) Close() error { return w.ws.Close() }

func (w *wsConn) LocalAddr() net.Addr  { return wsAddr{} }
func (w *wsConn) RemoteAddr() net.Addr { return wsAddr{} }

func (w *wsConn) SetDeadline(t time.Time) error {
	w.SetReadDeadline(t)
	return w.SetWriteDeadline(t)
}

func (w *wsConn) SetReadDeadline(t time.Time) error  { return w.ws.SetReadDeadline(t) }
func (w *wsConn) SetWriteDeadline(t time.Time) error { return w.ws.SetWriteDeadline(t) }

type wsAddr struct{}

func (wsAddr) Network() string { return "websocket" }
func (wsAddr) String() string  { return "websocket" }
