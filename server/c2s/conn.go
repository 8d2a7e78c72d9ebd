// Package c2s negotiates client-to-server streams (RFC 6120 §4–§7): the
// stream header, STARTTLS, SASL, resource binding, and then reads the
// bound client's stanzas and hands them, with a stamped from, to the
// server's stanza handler.
//
// Each connection has one reader goroutine (Serve) and, once bound, one
// writer goroutine flushing its outbound queue. Before binding, replies
// are written directly by the reader: nobody else can address the
// connection yet.
package c2s

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/xdg-go/scram"

	"roost/server/metrics"
	"roost/server/ratelimit"
	"roost/server/router"
	"roost/server/session"
	"roost/wire/jid"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Namespaces used in negotiation.
const (
	NSStream  = "http://etherx.jabber.org/streams"
	NSClient  = stanza.NSClient
	NSTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession = "urn:ietf:params:xml:ns:xmpp-session"
)

// Authenticator checks credentials against the account store.
type Authenticator interface {
	// SCRAMCredentials returns the stored SCRAM credentials of the
	// account local for hash ("SHA-1" or "SHA-256"). For an unknown
	// account it returns plausible fake credentials and known=false, so
	// that the exchange fails at the proof like a wrong password and
	// does not reveal which accounts exist.
	SCRAMCredentials(local, hash string) (cred scram.StoredCredentials, known bool, err error)
	// CheckPassword verifies a PLAIN password in constant time.
	CheckPassword(local, password string) (bool, error)
}

// Env is what every client connection shares: the server's settings and
// the parts it talks to.
type Env struct {
	Domain string
	// StreamCaps is the server's XEP-0115 caps element, offered in the
	// stream features after authentication (§6.3); nil: none.
	StreamCaps  []byte
	TLS         *tls.Config // nil: no STARTTLS offered
	TLSRequired bool
	Limits      xmlscan.Limits // after authentication; Limits.Budget is shared by all connections
	// PreauthStanzaBytes bounds an element before SASL succeeds
	// (limits.preauth_stanza_bytes; 0: Limits.MaxElementBytes): an
	// unauthenticated peer cannot make the server hold a large stanza.
	PreauthStanzaBytes int
	AuthTimeout        time.Duration
	WriteTimeout       time.Duration
	QueueBytes         int
	SessionsPerUser    int
	Auth               Authenticator
	Router             *router.Router
	Handler            session.Host
	Limiter            *AuthLimiter
	Log                *slog.Logger
	// SM finds sessions to resume (XEP-0198 §5); its Timeout is
	// limits.resume_timeout. nil: stream management without resumption.
	SM *session.Registry
	// SMQueueBytes bounds a session's unacknowledged stanzas
	// (limits.sm_queue_bytes); CSIHoldBytes what an inactive client's
	// session holds back (limits.csi_hold_bytes). 0: the core's default.
	SMQueueBytes int
	CSIHoldBytes int
	// IdlePing is limits.idle_ping: a bound connection silent this long
	// gets <r/> (XEP-0198) or a ping (XEP-0199), and is closed when it
	// stays silent as long again. 0: no liveness check.
	IdlePing time.Duration
}

// Conn is one client connection from accept until bound.
type Conn struct {
	env       *Env
	nc        net.Conn
	scan      *xmlscan.Scanner
	secure    bool
	authed    string // localpart once SASL succeeded
	lang      string
	ip        string
	failures  int
	sentHead  bool
	directTLS bool
	noTLS     bool   // the framing cannot carry STARTTLS (RFC 7395 §3.2)
	transport string // session.Bound's TransportName
	log       *slog.Logger
	wbuf      []byte

	authDeadline time.Time
	saslState    saslState

	// seen is set by every read that returned bytes: the liveness
	// check's evidence that the client is there (limits.idle_ping).
	seen atomic.Bool
}

// activityReader reads the connection for the scanner and notes that
// the client sent something.
type activityReader struct{ c *Conn }

func (r activityReader) Read(p []byte) (int, error) {
	n, err := r.c.nc.Read(p)
	metrics.BytesReadC2S.Add(n)
	if n > 0 {
		r.c.seen.Store(true)
	}
	return n, err
}

// errClosed ends Serve after the peer closed the stream: we answer with
// our closing tag. errGone ends it when there is nothing left to say.
var (
	errClosed = errors.New("stream closed")
	errGone   = errors.New("connection gone")
)

// streamError is a protocol failure that ends the stream with cond.
type streamError struct {
	cond stanza.StreamCondition
	text string
}

func (e *streamError) Error() string { return string(e.cond) + ": " + e.text }

func fail(cond stanza.StreamCondition, format string, args ...any) error {
	return &streamError{cond: cond, text: fmt.Sprintf(format, args...)}
}

// Serve runs one client connection to its end. directTLS is set for the
// XEP-0368 port, where TLS starts before the stream. It returns when the
// connection is closed; it never panics on what the peer sends.
func Serve(env *Env, nc net.Conn, directTLS bool) {
	ServeConn(env, nc, ConnOptions{DirectTLS: directTLS})
}

// ConnOptions describe what carries a client stream.
type ConnOptions struct {
	// DirectTLS: the XEP-0368 port, TLS before the stream.
	DirectTLS bool
	// Framed: nc is a framing adapter (XMPP over WebSocket, RFC 7395)
	// that presents the stream as XML bytes. STARTTLS is never offered
	// on it (RFC 7395 §3.2: TLS is the WebSocket's, wss).
	Framed bool
	// Secure: the carrier is already encrypted (wss), so SASL PLAIN is
	// offered and TLS is not required again.
	Secure bool
	// Transport names the session's transport (session.Options): "c2s"
	// when empty.
	Transport string
	// Done, when set, is called once the connection has ended, and
	// ServeConn returns as soon as a session is bound: the bound session
	// is read on a fresh goroutine, whose stack holds only what an idle
	// read needs, not what negotiation grew (SCRAM, the bind parse). The
	// caller's cleanup must then be in Done, not after ServeConn.
	Done func()
}

// ServeConn is Serve for any carrier of a client stream: the same
// negotiation, limits and session core whatever frames the XML.
func ServeConn(env *Env, nc net.Conn, o ConnOptions) {
	if o.Transport == "" {
		o.Transport = "c2s"
	}
	c := &Conn{env: env, nc: nc, ip: ratelimit.HostOf(nc.RemoteAddr()), directTLS: o.DirectTLS,
		secure: o.Secure, noTLS: o.Framed, transport: o.Transport}
	c.log = env.Log.With("remote", nc.RemoteAddr().String())
	handedOff := false
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("c2s: internal error, closing connection", "panic", r)
			c.writeStreamError(stanza.StreamInternalServerError, "")
			nc.Close()
		}
		if !handedOff && o.Done != nil {
			o.Done()
		}
	}()
	sess, err := c.negotiate()
	if sess == nil {
		c.finishUnbound(err)
		return
	}
	if o.Done != nil {
		handedOff = true
		go func() {
			defer o.Done()
			c.runBound(sess)
		}()
		return
	}
	c.runBound(sess)
}

// finishUnbound ends a connection that never bound a session. The stream
// may have ended anywhere from the TLS handshake on the XEP-0368 port (no
// scanner yet, nothing to say in XML) to resource binding.
func (c *Conn) finishUnbound(err error) {
	c.resetSASL() // an attempt the client abandoned ends with the connection
	defer c.nc.Close()
	if c.scan != nil {
		defer c.scan.Release()
	}
	var se *streamError
	var xe *xmlscan.Error
	switch {
	case errors.As(err, &se):
		c.log.Debug("c2s: closing stream", "condition", se.cond, "reason", se.text)
		c.writeStreamError(se.cond, se.text)
	case errors.As(err, &xe):
		c.log.Debug("c2s: bad XML", "condition", xe.Cond, "reason", xe.Reason)
		c.writeStreamError(stanza.StreamCondition(xe.Cond), "")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Debug("c2s: authentication timeout")
		c.writeStreamError(stanza.StreamConnectionTimeout, "not authenticated in time")
	case errors.Is(err, errClosed), errors.Is(err, io.EOF):
		c.write([]byte("</stream:stream>"))
	case errors.Is(err, errGone), err == nil:
	default:
		c.log.Debug("c2s: connection ended", "err", err)
	}
}

// write sends b directly; used before the session has a writer.
func (c *Conn) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.env.WriteTimeout))
	_, err := c.nc.Write(b)
	return err
}

// writeStreamError sends (a header first if none was sent, as RFC 6120
// §4.9.1.2 asks) the stream error and the closing tag.
func (c *Conn) writeStreamError(cond stanza.StreamCondition, text string) {
	if c.directTLS && !c.secure {
		return // the XEP-0368 port speaks TLS first: no plaintext XML
	}
	b := c.wbuf[:0]
	if !c.sentHead {
		b = c.appendHeader(b)
	}
	b = stanza.AppendStreamError(b, cond, text)
	c.write(b)
}

func (c *Conn) appendHeader(b []byte) []byte {
	c.sentHead = true
	b = append(b, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='"...)
	b = append(b, newID()...)
	b = append(b, "' from='"...)
	b = stanza.AppendEscaped(b, c.env.Domain)
	b = append(b, "' version='1.0' xml:lang='en'>"...)
	return b
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns a random stream ID or resource part (RFC 6120 §4.7.3:
// unique and unpredictable).
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

// negotiate runs the stream from connect to a bound session. It returns
// the session, or nil and why the stream ended.
func (c *Conn) negotiate() (*Session, error) {
	env := c.env
	deadline := time.Now().Add(env.AuthTimeout)
	c.authDeadline = deadline
	c.nc.SetReadDeadline(deadline)
	if c.directTLS {
		tc := tls.Server(c.nc, env.TLS)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			// Nothing can be said to a peer without TLS on this port:
			// the connection just closes (errGone).
			c.log.Debug("c2s: TLS handshake failed", "err", err)
			return nil, errGone
		}
		c.nc = tc
		c.secure = true
	}
	lim := env.Limits
	if env.PreauthStanzaBytes > 0 && env.PreauthStanzaBytes < lim.MaxElementBytes {
		lim.MaxElementBytes = env.PreauthStanzaBytes
	}
	c.scan = xmlscan.New(activityReader{c}, lim)
	for {
		if err := c.readHeader(); err != nil {
			return nil, err
		}
		restart, sess, err := c.featuresAndNegotiate()
		if err != nil || sess != nil {
			return sess, err
		}
		if !restart {
			return nil, errClosed
		}
	}
}

// readHeader reads and checks the initial stream header and answers with
// ours (RFC 6120 §4.7).
func (c *Conn) readHeader() error {
	tok, err := c.scan.Next()
	if err != nil {
		return err
	}
	if tok.Kind != xmlscan.KindHeader {
		return fail(stanza.StreamBadFormat, "expected a stream header")
	}
	if string(tok.Space) != NSStream {
		return fail(stanza.StreamInvalidNamespace, "the stream namespace must be %s", NSStream)
	}
	if string(tok.Local) != "stream" || tok.SelfClosing {
		return fail(stanza.StreamBadFormat, "the stream element must be <stream:stream>")
	}
	if len(tok.Prefix) == 0 {
		return fail(stanza.StreamBadNamespacePrefix, "the stream element needs the stream: prefix")
	}
	if def, _ := tok.Attr("xmlns"); string(def) != NSClient {
		return fail(stanza.StreamInvalidNamespace, "the content namespace must be %s", NSClient)
	}
	if v, ok := tok.Attr("version"); !ok {
		return fail(stanza.StreamUnsupportedVersion, "version='1.0' is required")
	} else if major, ok := parseVersion(v); !ok {
		return fail(stanza.StreamBadFormat, "version %q is not MAJOR.MINOR", v)
	} else if major != 1 {
		return fail(stanza.StreamUnsupportedVersion, "only XMPP 1.x is supported")
	}
	to, _ := tok.Attr("to")
	if len(to) == 0 {
		return fail(stanza.StreamHostUnknown, "the stream header needs to='%s'", c.env.Domain)
	}
	if d, err := jid.Parse(string(to)); err != nil || d.Domain() != c.env.Domain || d.Local() != "" || d.Resource() != "" {
		return fail(stanza.StreamHostUnknown, "this server serves %s", c.env.Domain)
	}
	if lang, ok := tok.Attr("xml:lang"); ok && isLangTag(lang) {
		c.lang = string(lang)
	}
	return c.write(c.appendHeader(c.wbuf[:0]))
}

// isLangTag accepts what a BCP 47 language tag is made of (letters,
// digits and hyphens, at most 35 bytes, RFC 6120 §4.7.4): anything else
// is not kept, so the value is copied onto stanzas as is without escaping.
func isLangTag(v []byte) bool {
	if len(v) == 0 || len(v) > 35 {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func parseVersion(v []byte) (int, bool) {
	i := bytes.IndexByte(v, '.')
	if i <= 0 || i == len(v)-1 {
		return 0, false
	}
	major, err1 := strconv.Atoi(string(v[:i]))
	_, err2 := strconv.Atoi(string(v[i+1:]))
	return major, err1 == nil && err2 == nil && major >= 0
}

// featuresAndNegotiate sends the stream features the current state allows
// and handles elements until the stream restarts (after STARTTLS or SASL),
// a session is bound, or the stream ends.
func (c *Conn) featuresAndNegotiate() (restart bool, sess *Session, err error) {
	env := c.env
	b := append(c.wbuf[:0], "<stream:features>"...)
	offerTLS := !c.secure && env.TLS != nil && !c.noTLS
	switch {
	case c.authed != "":
		b = append(b, "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session><ver xmlns='urn:xmpp:features:rosterver'/><sub xmlns='urn:xmpp:features:pre-approval'/><sm xmlns='urn:xmpp:sm:3'/><csi xmlns='urn:xmpp:csi:0'/>"...)
		b = append(b, env.StreamCaps...) // XEP-0115 §6.3
	default:
		if offerTLS {
			b = append(b, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"...)
			if env.TLSRequired {
				b = append(b, "<required/>"...)
			}
			b = append(b, "</starttls>"...)
		}
		if c.secure || !env.TLSRequired {
			b = append(b, "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>"...)
			if c.secure {
				b = append(b, "<mechanism>PLAIN</mechanism>"...)
			}
			b = append(b, "</mechanisms>"...)
		}
	}
	b = append(b, "</stream:features>"...)
	if err := c.write(b); err != nil {
		return false, nil, err
	}
	for {
		tok, err := c.scan.Next()
		if err != nil {
			return false, nil, err
		}
		if tok.Kind == xmlscan.KindClose {
			return false, nil, errClosed
		}
		space, local := string(tok.Space), string(tok.Local)
		switch {
		case isStreamError(&tok):
			c.logPeerError(&tok)
			return false, nil, errClosed
		case space == NSTLS && local == "starttls":
			if !offerTLS {
				c.write([]byte("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>"))
				return false, nil, errGone
			}
			return true, nil, c.startTLS()
		case space == NSSASL && c.authed == "":
			if !c.secure && env.TLSRequired {
				return false, nil, fail(stanza.StreamPolicyViolation, "STARTTLS is required before authentication")
			}
			done, err := c.sasl(&tok)
			if err != nil || done {
				return done, nil, err
			}
		case space == session.NSSM && local == "resume" && c.authed != "":
			sess, err := c.resume(&tok)
			if err != nil || sess != nil {
				return false, sess, err
			}
		case space == session.NSSM && (local == "enable" || local == "resume"):
			// XEP-0198 §3, §5: enable needs a bound resource, resume
			// an authenticated stream.
			if err := c.write(smFailed("unexpected-request")); err != nil {
				return false, nil, err
			}
		case space == session.NSSM && (local == "r" || local == "a"):
			// Nothing to count before stream management is enabled.
		case c.authed != "" && space == NSClient && local == "iq":
			sess, err := c.bindIQ(&tok)
			if err != nil || sess != nil {
				return false, sess, err
			}
		case space == NSClient && (local == "message" || local == "presence" || local == "iq"):
			if !c.secure && env.TLSRequired && c.authed == "" {
				return false, nil, fail(stanza.StreamPolicyViolation, "STARTTLS is required")
			}
			return false, nil, fail(stanza.StreamNotAuthorized, "authenticate and bind a resource before sending stanzas")
		default:
			return false, nil, fail(stanza.StreamUnsupportedStanzaType, "<%s xmlns='%s'> is not understood here", local, space)
		}
	}
}

// isStreamError reports whether tok is a <stream:error/> the client sent.
func isStreamError(tok *xmlscan.Token) bool {
	return string(tok.Local) == "error" && string(tok.Space) == NSStream
}

// logPeerError notes a client's own stream error. RFC 6120 §4.9.1.1: the
// stream is closed after it, so we answer with our closing tag only,
// never with a stream error of our own.
func (c *Conn) logPeerError(tok *xmlscan.Token) {
	cond := ""
	if len(tok.ChildLocal) > 0 {
		cond = string(tok.ChildLocal)
	}
	c.log.Debug("c2s: the client ended the stream with a stream error", "condition", cond)
}

// startTLS answers <proceed/>, drops every byte received so far (bytes
// sent in plaintext after <starttls/> must never be taken as if they had
// come over TLS), and runs the handshake (RFC 6120 §5.4.3.3).
func (c *Conn) startTLS() error {
	if err := c.write([]byte("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")); err != nil {
		return err
	}
	if n := c.scan.Buffered(); n > 0 {
		c.log.Debug("c2s: dropping bytes sent before the TLS handshake", "bytes", n)
	}
	tc := tls.Server(c.nc, c.env.TLS)
	ctx, cancel := context.WithDeadline(context.Background(), c.authDeadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Debug("c2s: TLS handshake failed", "err", err)
		return errGone
	}
	c.nc = tc
	c.secure = true
	c.sentHead = false
	c.scan.Reset(activityReader{c})
	return nil
}
