// Package adhoc answers XEP-0050 ad-hoc commands addressed to the
// server's JID: the XEP-0133 service administration commands and Roost's
// own urn:roost:admin:* commands (sessions, devices, status) that the
// status page runs. Only accounts listed in the admins config key may run
// or list them; everyone else gets <forbidden/> (XEP-0133 §4, XEP-0050
// §4.6).
//
// Commands that need input are multi-stage (XEP-0050 §3.4): the first
// execute returns a form (XEP-0004, type='form', with the
// http://jabber.org/protocol/admin FORM_TYPE of XEP-0133 §3) under a
// sessionid, and the complete (or next/execute) carrying the submitted
// form runs it. An execute that already carries a submitted form is run
// at once.
package adhoc

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"roost/server/router"
	"roost/server/session"
	"roost/storage"
	"roost/wire/stanza"
)

// Namespaces of XEP-0050, XEP-0004 and XEP-0133.
const (
	NS      = "http://jabber.org/protocol/commands"
	NSData  = "jabber:x:data"
	NSAdmin = "http://jabber.org/protocol/admin"
)

// DeviceStatus is what the DTLS transport knows of a device JID that has
// connected since the server started.
type DeviceStatus struct {
	JID        string // the device session's full JID
	Online     bool
	LastSeen   time.Time // zero: never
	LastStanza string    // at most datagram.LastStanzaMax (320) bytes: a PEP reading fits
}

// DeviceStatuser is the server side the devices command asks: the DTLS
// listener's view of its devices. A nil one means DTLS is off, and every
// registered device shows offline.
type DeviceStatuser interface {
	DeviceStatus() []DeviceStatus
}

// DeviceStatusFunc adapts a function to DeviceStatuser.
type DeviceStatusFunc func() []DeviceStatus

// DeviceStatus calls f.
func (f DeviceStatusFunc) DeviceStatus() []DeviceStatus { return f() }

// Service runs the commands for one domain. Its fields are set before
// the first command and not changed after.
type Service struct {
	Domain  string
	Version string
	// Admins are the bare JIDs allowed to run the commands.
	Admins  []string
	admins  atomic.Pointer[[]string] // set by SetAdmins; nil: Admins
	Store   *storage.Store
	Router  *router.Router
	Devices DeviceStatuser // nil: DTLS is off
	// Links returns the uplink/s2s status lines (nil: none).
	Links   func() []string
	Started time.Time
	Log     *slog.Logger

	mu      sync.Mutex
	pending map[string]pending // multi-stage sessions by sessionid
}

// pending is a multi-stage command waiting for its form.
type pending struct {
	node  string
	owner string // full JID of the admin who started it
	at    time.Time
}

// Bounds on multi-stage sessions: how many wait at once and how long.
const (
	maxPending     = 256
	pendingTimeout = 10 * time.Minute
)

// request is the parsed <command/> of an iq.
type request struct {
	Command struct {
		Node      string `xml:"node,attr"`
		Action    string `xml:"action,attr"`
		SessionID string `xml:"sessionid,attr"`
		X         *form  `xml:"jabber:x:data x"`
	} `xml:"http://jabber.org/protocol/commands command"`
}

type form struct {
	Type   string  `xml:"type,attr"`
	Fields []field `xml:"field"`
}

type field struct {
	Var    string   `xml:"var,attr"`
	Values []string `xml:"value"`
}

// value is the first value of field v ("" when absent).
func (f *form) value(v string) string {
	for _, fl := range f.Fields {
		if fl.Var == v && len(fl.Values) > 0 {
			return fl.Values[0]
		}
	}
	return ""
}

// values are every value of field v.
func (f *form) values(v string) []string {
	for _, fl := range f.Fields {
		if fl.Var == v {
			return fl.Values
		}
	}
	return nil
}

// command is one node.
type command struct {
	node, name string
	// form is the first stage's form (nil: a single-stage command).
	form func(s *Service) []byte
	// run executes the command; for a multi-stage one, f is the
	// submitted form. It returns the payload inside <command/> (a result
	// form and/or a note) or a stanza error.
	run func(s *Service, sess session.Peer, f *form) ([]byte, *cmdError)
}

type cmdError struct {
	cond stanza.Condition
	text string
}

func badRequest(text string) *cmdError { return &cmdError{stanza.BadRequest, text} }

// commands is every node, in the order disco#items lists them.
var commands []*command

func init() {
	commands = append(commands, adminCommands...)
	commands = append(commands, roostCommands...)
}

func lookup(node string) *command {
	for _, c := range commands {
		if c.node == node {
			return c
		}
	}
	return nil
}

// IsAdmin reports whether the peer's bare JID is in admins.
func (s *Service) IsAdmin(p session.Peer) bool {
	admins := s.Admins
	if a := s.admins.Load(); a != nil {
		admins = *a
	}
	return slices.Contains(admins, p.JID().Bare().String())
}

// SetAdmins replaces the admins (SIGHUP reload) for the commands that
// follow.
func (s *Service) SetAdmins(admins []string) { s.admins.Store(&admins) }

// Items appends the disco#items (XEP-0030) of node
// http://jabber.org/protocol/commands for p (XEP-0050 §2.2): every
// command for an admin, none for anyone else.
func (s *Service) Items(dst []byte, p session.Peer) []byte {
	if !s.IsAdmin(p) {
		return dst
	}
	for _, c := range commands {
		dst = append(dst, "<item jid='"...)
		dst = stanza.AppendEscaped(dst, s.Domain)
		dst = append(dst, "' node='"...)
		dst = stanza.AppendEscaped(dst, c.node)
		dst = append(dst, "' name='"...)
		dst = stanza.AppendEscaped(dst, c.name)
		dst = append(dst, "'/>"...)
	}
	return dst
}

// IQ answers an iq with a <command/> child addressed to the server.
func (s *Service) IQ(sess session.Peer, st *stanza.Stanza) {
	if string(st.Type) != "set" {
		session.Bounce(sess, st, s.Domain, stanza.BadRequest, "ad-hoc commands are iq type='set' (XEP-0050 §3)")
		return
	}
	if !s.IsAdmin(sess) {
		session.Bounce(sess, st, s.Domain, stanza.Forbidden, "only the server's administrators may run its commands")
		return
	}
	var req request
	if err := xml.Unmarshal(st.Tok.Raw, &req); err != nil {
		session.Bounce(sess, st, s.Domain, stanza.BadRequest, "")
		return
	}
	rc := &req.Command
	c := lookup(rc.Node)
	if c == nil {
		session.Bounce(sess, st, s.Domain, stanza.ItemNotFound, "no such command")
		return
	}
	action := rc.Action
	if action == "" {
		action = "execute"
	}
	owner := sess.JID().String()
	if rc.SessionID != "" {
		p, ok := s.take(rc.SessionID)
		if !ok || p.node != c.node || p.owner != owner {
			session.Bounce(sess, st, s.Domain, stanza.BadRequest, "unknown or expired sessionid")
			return
		}
	}
	switch action {
	case "cancel":
		// XEP-0050 §3.4.3: the session ends, status='canceled'.
		s.reply(sess, st, c.node, rc.SessionID, "canceled", nil)
		return
	case "execute", "next", "complete":
	default:
		// prev is never offered: every form here is the only stage.
		session.Bounce(sess, st, s.Domain, stanza.BadRequest, "action not allowed at this stage")
		return
	}
	var f *form
	if c.form != nil {
		if rc.X == nil || rc.X.Type != "submit" {
			if rc.SessionID != "" || action != "execute" {
				session.Bounce(sess, st, s.Domain, stanza.BadRequest, "a submitted form is required")
				return
			}
			id := s.start(c.node, owner)
			if id == "" {
				session.Bounce(sess, st, s.Domain, stanza.ResourceConstraint, "too many commands in progress")
				return
			}
			b := append([]byte(nil), "<actions execute='complete'><complete/></actions>"...)
			b = append(b, c.form(s)...)
			s.reply(sess, st, c.node, id, "executing", b)
			return
		}
		f = rc.X
	}
	payload, cerr := c.run(s, sess, f)
	if cerr != nil {
		session.Bounce(sess, st, s.Domain, cerr.cond, cerr.text)
		return
	}
	id := rc.SessionID
	if id == "" {
		id = newID()
	}
	s.reply(sess, st, c.node, id, "completed", payload)
}

// reply answers with <command/> of status (XEP-0050 §3.4).
func (s *Service) reply(sess session.Peer, st *stanza.Stanza, node, id, status string, payload []byte) {
	b := append([]byte(nil), "<command xmlns='http://jabber.org/protocol/commands' node='"...)
	b = stanza.AppendEscaped(b, node)
	b = append(b, "' sessionid='"...)
	b = stanza.AppendEscaped(b, id)
	b = append(b, "' status='"...)
	b = append(b, status...)
	b = append(b, '\'')
	if len(payload) == 0 {
		b = append(b, "/>"...)
	} else {
		b = append(b, '>')
		b = append(b, payload...)
		b = append(b, "</command>"...)
	}
	session.Result(sess, st, s.Domain, b)
}

// start records a multi-stage session and returns its id ("" when too
// many are open).
func (s *Service) start(node, owner string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for id, p := range s.pending {
		if now.Sub(p.at) > pendingTimeout {
			delete(s.pending, id)
		}
	}
	if len(s.pending) >= maxPending {
		return ""
	}
	if s.pending == nil {
		s.pending = make(map[string]pending)
	}
	id := newID()
	s.pending[id] = pending{node: node, owner: owner, at: now}
	return id
}

// take ends a multi-stage session.
func (s *Service) take(id string) (pending, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[id]
	if ok {
		delete(s.pending, id)
		ok = time.Since(p.at) <= pendingTimeout
	}
	return p, ok
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Form building (XEP-0004).

// formStart opens a data form of typ; admin adds the XEP-0133 FORM_TYPE.
func formStart(b []byte, typ, title string, admin bool) []byte {
	b = append(b, "<x xmlns='jabber:x:data' type='"...)
	b = append(b, typ...)
	b = append(b, "'>"...)
	if title != "" {
		b = append(b, "<title>"...)
		b = stanza.AppendEscaped(b, title)
		b = append(b, "</title>"...)
	}
	if admin {
		b = append(b, "<field type='hidden' var='FORM_TYPE'><value>"+NSAdmin+"</value></field>"...)
	}
	return b
}

// appendField appends a field with its values (typ "" leaves the type
// out, as in a reported item).
func appendField(b []byte, typ, v, label string, required bool, values ...string) []byte {
	b = append(b, "<field"...)
	if typ != "" {
		b = append(b, " type='"...)
		b = append(b, typ...)
		b = append(b, '\'')
	}
	b = append(b, " var='"...)
	b = stanza.AppendEscaped(b, v)
	b = append(b, '\'')
	if label != "" {
		b = append(b, " label='"...)
		b = stanza.AppendEscaped(b, label)
		b = append(b, '\'')
	}
	if !required && len(values) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	if required {
		b = append(b, "<required/>"...)
	}
	for _, val := range values {
		b = append(b, "<value>"...)
		b = stanza.AppendEscaped(b, val)
		b = append(b, "</value>"...)
	}
	return append(b, "</field>"...)
}

// note appends a <note type='info'/> (XEP-0050 §6).
func note(b []byte, text string) []byte {
	b = append(b, "<note type='info'>"...)
	b = stanza.AppendEscaped(b, text)
	return append(b, "</note>"...)
}
