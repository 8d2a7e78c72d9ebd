// Package load is `roost bench`: a load generator that speaks standard
// XMPP (TCP, STARTTLS or plain, or WebSocket per RFC 7395; SASL PLAIN or
// SCRAM-SHA-1) so the same
// load can drive Roost, Prosody or ejabberd. It reads with Roost's own
// restricted-XML scanner, which is also what keeps its client side cheap.
package load

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/xdg-go/scram"

	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Options say where and how to log in.
type Options struct {
	Target string // host:port
	// WebSocket, when set, is the URL (wss://host:port/xmpp-websocket)
	// to speak XMPP over WebSocket (RFC 7395) instead of TCP at Target.
	WebSocket string
	// TLSConfig checks the server's certificate when set; nil: not checked.
	TLSConfig *tls.Config
	Domain    string
	Password  string
	TLS       bool   // STARTTLS when offered (certificates are not checked: a load tool)
	Mech      string // PLAIN or SCRAM-SHA-1 (default: SCRAM-SHA-1 without TLS, PLAIN with)
	Timeout   time.Duration
	// Raw speaks to `roost bench relay` instead of an XMPP server: no
	// TLS, SASL or bind, just a name line and then newline-ended
	// stanzas. It measures the machine's ceiling for the same load.
	Raw bool
}

// Conn is one logged-in client.
type Conn struct {
	nc   net.Conn
	scan *xmlscan.Scanner
	JID  string
	wmu  sync.Mutex
	ws   bool // framed (RFC 7395): the stream is opened and closed by elements
}

var errProto = errors.New("unexpected reply")

func header(domain string) string {
	return "<?xml version='1.0'?><stream:stream to='" + domain + "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
}

// next reads the next top-level element, skipping the stream header.
func (c *Conn) next() (xmlscan.Token, error) {
	for {
		tok, err := c.scan.Next()
		if err != nil || tok.Kind != xmlscan.KindHeader {
			return tok, err
		}
	}
}

func (c *Conn) expect(local string) (xmlscan.Token, error) {
	tok, err := c.next()
	if err != nil {
		return tok, err
	}
	if string(tok.Local) != local {
		return tok, fmt.Errorf("%w: want <%s>, got %.200s", errProto, local, tok.Raw)
	}
	return tok, nil
}

// open starts a stream (again, after TLS or SASL): the stream header
// over TCP, <open/> over WebSocket.
func (c *Conn) open(domain string) error {
	h := header(domain)
	if c.ws {
		h = "<open xmlns='" + nsFraming + "' to='" + domain + "' version='1.0'/>"
	}
	_, err := c.nc.Write([]byte(h))
	return err
}

// Dial connects, negotiates TLS and SASL, binds resource and sends
// initial presence when presence is set.
func Dial(o Options, user, resource string, presence bool) (*Conn, error) {
	if o.WebSocket != "" {
		if o.Raw {
			return nil, errors.New("the relay speaks TCP, not WebSocket")
		}
		wc, err := dialWebSocket(o.WebSocket, o.TLSConfig, o.Timeout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", user, err)
		}
		c := &Conn{nc: wc, scan: xmlscan.New(wc, xmlscan.Limits{}), ws: true}
		return c.login(o, user, resource, presence)
	}
	nc, err := net.DialTimeout("tcp", o.Target, o.Timeout)
	if err != nil {
		return nil, err
	}
	if o.Raw {
		return dialRelay(nc, o, user+"@"+o.Domain+"/"+resource)
	}
	c := &Conn{nc: nc, scan: xmlscan.New(nc, xmlscan.Limits{})}
	return c.login(o, user, resource, presence)
}

// login is the stream negotiation, the same over either transport.
func (c *Conn) login(o Options, user, resource string, presence bool) (*Conn, error) {
	nc := c.nc
	nc.SetDeadline(time.Now().Add(o.Timeout))
	fail := func(err error) (*Conn, error) { c.nc.Close(); return nil, fmt.Errorf("%s: %w", user, err) }
	if err := c.open(o.Domain); err != nil {
		return fail(err)
	}
	f, err := c.expect("features")
	if err != nil {
		return fail(err)
	}
	// wss is TLS already (a ws:// URL is taken as the loopback or proxy
	// case, where the server also offers PLAIN).
	secure := c.ws
	if !c.ws && o.TLS && bytes.Contains(f.Raw, []byte("urn:ietf:params:xml:ns:xmpp-tls")) {
		nc.Write([]byte("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"))
		if _, err := c.expect("proceed"); err != nil {
			return fail(err)
		}
		conf := o.TLSConfig
		if conf == nil {
			conf = &tls.Config{InsecureSkipVerify: true, ServerName: o.Domain}
		}
		tc := tls.Client(nc, conf)
		if err := tc.Handshake(); err != nil {
			return fail(err)
		}
		c.nc, secure = tc, true
		c.scan.Reset(tc)
		c.open(o.Domain)
		if f, err = c.expect("features"); err != nil {
			return fail(err)
		}
	}
	mech := o.Mech
	if mech == "" {
		mech = "SCRAM-SHA-1"
		if secure && bytes.Contains(f.Raw, []byte(">PLAIN<")) {
			mech = "PLAIN"
		}
	}
	if err := c.auth(mech, user, o.Password); err != nil {
		return fail(err)
	}
	c.scan.Reset(c.nc)
	c.open(o.Domain)
	if _, err := c.expect("features"); err != nil {
		return fail(err)
	}
	c.nc.Write([]byte("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind></iq>"))
	tok, err := c.expect("iq")
	if err != nil {
		return fail(err)
	}
	if i, j := bytes.Index(tok.Raw, []byte("<jid>")), bytes.Index(tok.Raw, []byte("</jid>")); i >= 0 && j > i {
		c.JID = string(tok.Raw[i+5 : j])
	}
	if presence {
		c.nc.Write([]byte("<presence/>"))
	}
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *Conn) auth(mech, user, password string) error {
	b64 := base64.StdEncoding
	switch mech {
	case "PLAIN":
		c.nc.Write([]byte("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64.EncodeToString([]byte("\x00"+user+"\x00"+password)) + "</auth>"))
		tok, err := c.next()
		if err != nil {
			return err
		}
		if string(tok.Local) == "failure" {
			return saslFailure(tok.Raw)
		}
		if string(tok.Local) != "success" {
			return fmt.Errorf("%w: want <success>, got %.200s", errProto, tok.Raw)
		}
		return nil
	case "SCRAM-SHA-1", "SCRAM-SHA-256":
		gen := scram.SHA1
		if mech == "SCRAM-SHA-256" {
			gen = scram.SHA256
		}
		cl, err := gen.NewClient(user, password, "")
		if err != nil {
			return err
		}
		conv := cl.NewConversation()
		first, _ := conv.Step("")
		c.nc.Write([]byte("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" + b64.EncodeToString([]byte(first)) + "</auth>"))
		for {
			tok, err := c.next()
			if err != nil {
				return err
			}
			if string(tok.Local) == "failure" {
				return saslFailure(tok.Raw)
			}
			text := tok.Inner()
			data, err := b64.DecodeString(string(text))
			if err != nil {
				return err
			}
			switch string(tok.Local) {
			case "challenge":
				resp, err := conv.Step(string(data))
				if err != nil {
					return err
				}
				c.nc.Write([]byte("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64.EncodeToString([]byte(resp)) + "</response>"))
			case "success":
				if _, err := conv.Step(string(data)); err != nil {
					return fmt.Errorf("server signature: %w", err)
				}
				return nil
			default:
				return fmt.Errorf("%w: %.200s", errProto, tok.Raw)
			}
		}
	}
	return fmt.Errorf("mechanism %q: use PLAIN or SCRAM-SHA-1", mech)
}

// saslFailure names a SASL <failure/> by its condition (RFC 6120 §6.5),
// the cause `roost bench` reports when logins fail.
func saslFailure(raw []byte) error {
	cond := "failure"
	for _, c := range []string{"not-authorized", "temporary-auth-failure", "account-disabled", "credentials-expired", "encryption-required", "invalid-authzid", "invalid-mechanism", "malformed-request", "mechanism-too-weak", "aborted", "incorrect-encoding"} {
		if bytes.Contains(raw, []byte("<"+c)) {
			cond = c
			break
		}
	}
	if cond == "not-authorized" {
		return errors.New("SASL not-authorized: no such account, or a wrong password")
	}
	return fmt.Errorf("SASL %s: %.200s", cond, raw)
}

// Send writes raw stanza bytes.
func (c *Conn) Send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

// Next returns the next stanza received.
func (c *Conn) Next() (xmlscan.Token, error) { return c.next() }

// Close ends the stream.
func (c *Conn) Close() error {
	if c.ws {
		c.Send([]byte("<close xmlns='" + nsFraming + "'/>"))
	} else {
		c.Send([]byte("</stream:stream>"))
	}
	return c.nc.Close()
}

// chatMessage builds a chat message whose body is the send time.
func chatMessage(dst []byte, to string, sent time.Time) []byte {
	dst = append(dst, "<message type='chat' to='"...)
	dst = stanza.AppendEscaped(dst, to)
	dst = append(dst, "'><body>t="...)
	dst = fmt.Appendf(dst, "%d", sent.UnixNano())
	return append(dst, "</body></message>"...)
}

// dialRelay registers jid with the relay, which answers with a stream
// header so that the same scanner reads what it forwards.
func dialRelay(nc net.Conn, o Options, jid string) (*Conn, error) {
	nc.SetDeadline(time.Now().Add(o.Timeout))
	c := &Conn{nc: nc, scan: xmlscan.New(nc, xmlscan.Limits{}), JID: jid}
	if _, err := nc.Write([]byte(jid + "\n")); err != nil {
		nc.Close()
		return nil, fmt.Errorf("relay %s: %w", o.Target, err)
	}
	if tok, err := c.scan.Next(); err != nil || tok.Kind != xmlscan.KindHeader {
		nc.Close()
		return nil, fmt.Errorf("relay %s: no stream header: %v", o.Target, err)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}
