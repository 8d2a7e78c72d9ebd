package adhoc

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"roost/devices"
	"roost/server/session"
	"roost/storage"
	"roost/wire/jid"
	"roost/wire/stanza"
)

// The XEP-0133 nodes.
const (
	nodeOnlineList     = NSAdmin + "#get-online-users-list"
	nodeEndSession     = NSAdmin + "#end-user-session"
	nodeAddUser        = NSAdmin + "#add-user"
	nodeDeleteUser     = NSAdmin + "#delete-user"
	nodeChangePassword = NSAdmin + "#change-user-password"
	nodeRegisteredNum  = NSAdmin + "#get-registered-users-num"
	nodeOnlineNum      = NSAdmin + "#get-online-users-num"
	nodeAnnounce       = NSAdmin + "#announce"
)

// Roost's own nodes (the status page's).
const (
	NodeSessions = "urn:roost:admin:sessions"
	NodeDevices  = "urn:roost:admin:devices"
	NodeStatus   = "urn:roost:admin:status"
)

// EndCondition is the stream error that ends a session closed by
// end-user-session or delete-user: RFC 6120 §4.9.3.15 policy-violation
// ("the entity has violated some local service policy"), the condition
// for a session the service itself chose to end; the text says why.
const EndCondition = stanza.StreamPolicyViolation

var adminCommands = []*command{
	{node: nodeAddUser, name: "Add a User", form: func(s *Service) []byte {
		// XEP-0133 §4.1
		b := formStart(nil, "form", "Adding a User", true)
		b = appendField(b, "jid-single", "accountjid", "The Jabber ID for the account to be added", true)
		b = appendField(b, "text-private", "password", "The password for this account", true)
		b = appendField(b, "text-private", "password-verify", "Retype password", false)
		return append(b, "</x>"...)
	}, run: (*Service).addUser},
	{node: nodeDeleteUser, name: "Delete a User", form: func(s *Service) []byte {
		// XEP-0133 §4.2
		b := formStart(nil, "form", "Deleting a User", true)
		b = appendField(b, "jid-multi", "accountjids", "The Jabber ID(s) to delete", true)
		return append(b, "</x>"...)
	}, run: (*Service).deleteUser},
	{node: nodeEndSession, name: "End a User Session", form: func(s *Service) []byte {
		// XEP-0133 §4.5
		b := formStart(nil, "form", "Ending a User Session", true)
		b = appendField(b, "jid-multi", "accountjids", "The Jabber ID(s) for which to end sessions", true)
		return append(b, "</x>"...)
	}, run: (*Service).endSession},
	{node: nodeChangePassword, name: "Change User Password", form: func(s *Service) []byte {
		// XEP-0133 §4.7
		b := formStart(nil, "form", "Changing a User Password", true)
		b = appendField(b, "jid-single", "accountjid", "The Jabber ID for this account", true)
		b = appendField(b, "text-private", "password", "The password for this account", true)
		return append(b, "</x>"...)
	}, run: (*Service).changePassword},
	{node: nodeRegisteredNum, name: "Get Number of Registered Users", run: func(s *Service, _ session.Peer, _ *form) ([]byte, *cmdError) {
		// XEP-0133 §4.15
		users, err := s.Store.Users()
		if err != nil {
			return nil, &cmdError{stanza.InternalServerError, ""}
		}
		b := formStart(nil, "result", "Number of Registered Users", true)
		b = appendField(b, "text-single", "registeredusersnum", "The number of registered users", false, strconv.Itoa(len(users)))
		return append(b, "</x>"...), nil
	}},
	{node: nodeOnlineNum, name: "Get Number of Online Users", run: func(s *Service, _ session.Peer, _ *form) ([]byte, *cmdError) {
		// XEP-0133 §4.17: users (bare JIDs) with at least one session.
		b := formStart(nil, "result", "Number of Online Users", true)
		b = appendField(b, "text-single", "onlineusersnum", "The number of online users", false, strconv.Itoa(len(s.onlineUsers())))
		return append(b, "</x>"...), nil
	}},
	{node: nodeOnlineList, name: "Get List of Online Users", form: func(s *Service) []byte {
		// XEP-0133 §4.21
		b := formStart(nil, "form", "Requesting List of Online Users", true)
		b = append(b, "<field type='list-single' var='max_items' label='Maximum number of items to show'>"...)
		for _, n := range []string{"25", "50", "75", "100", "150", "200", "none"} {
			b = append(b, "<option label='"+n+"'><value>"+n+"</value></option>"...)
		}
		b = append(b, "</field>"...)
		return append(b, "</x>"...)
	}, run: func(s *Service, _ session.Peer, f *form) ([]byte, *cmdError) {
		users := s.onlineUsers()
		if m := f.value("max_items"); m != "" && m != "none" {
			n, err := strconv.Atoi(m)
			if err != nil || n < 0 {
				return nil, badRequest("max_items is a number or none")
			}
			if len(users) > n {
				users = users[:n]
			}
		}
		b := formStart(nil, "result", "List of Online Users", true)
		b = appendField(b, "jid-multi", "onlineuserjids", "The list of all online users", false, users...)
		return append(b, "</x>"...), nil
	}},
	{node: nodeAnnounce, name: "Send Announcement to Online Users", form: func(s *Service) []byte {
		// XEP-0133 §4.23
		b := formStart(nil, "form", "Making an Announcement", true)
		b = appendField(b, "text-single", "subject", "Subject", false)
		b = appendField(b, "text-multi", "announcement", "Announcement", true)
		return append(b, "</x>"...)
	}, run: (*Service).announce},
}

var roostCommands = []*command{
	{node: NodeSessions, name: "Online sessions", run: (*Service).sessions},
	{node: NodeDevices, name: "Devices", run: (*Service).devices},
	{node: NodeStatus, name: "Server status", run: (*Service).status},
}

// onlineUsers lists the bare JIDs with a bound session, sorted; devices
// are accounts too and are listed.
func (s *Service) onlineUsers() []string {
	seen := map[string]bool{}
	var out []string
	s.Router.Each(func(b *session.Bound) {
		bare := b.JID().Bare().String()
		if !seen[bare] {
			seen[bare] = true
			out = append(out, bare)
		}
	})
	slices.Sort(out)
	return out
}

// localJID checks that v is a bare JID of this domain and returns its
// localpart.
func (s *Service) localJID(v string) (string, *cmdError) {
	if strings.TrimSpace(v) == "" {
		return "", badRequest("a required JID is missing")
	}
	j, err := jid.Parse(strings.TrimSpace(v))
	if err != nil || j.Local() == "" || j.Resource() != "" {
		return "", badRequest(fmt.Sprintf("%q is not a bare JID", v))
	}
	if j.Domain() != s.Domain {
		return "", badRequest(fmt.Sprintf("%s is not on this server's domain %s", v, s.Domain))
	}
	return j.Local(), nil
}

// endSessions closes every session of the bare JID (or the one full JID)
// with EndCondition and returns how many it closed.
func (s *Service) endSessions(j jid.JID, why string) int {
	n := 0
	for _, b := range s.Router.Sessions([]byte(j.Bare().String())) {
		if j.Resource() != "" && b.JID().Resource() != j.Resource() {
			continue
		}
		b.Close(EndCondition, why)
		n++
	}
	return n
}

func (s *Service) password(f *form) (string, *cmdError) {
	pw, err := jid.PreparePassword(f.value("password"))
	if err != nil || pw == "" {
		return "", badRequest("the password is empty or has characters a password may not hold (RFC 8265 OpaqueString)")
	}
	return pw, nil
}

// account reads the form's accountjid (a local account) and password.
func (s *Service) account(f *form) (local, pw string, cerr *cmdError) {
	if local, cerr = s.localJID(f.value("accountjid")); cerr != nil {
		return "", "", cerr
	}
	if pw, cerr = s.password(f); cerr != nil {
		return "", "", cerr
	}
	return local, pw, nil
}

// addUser is XEP-0133 §4.1.
func (s *Service) addUser(_ session.Peer, f *form) ([]byte, *cmdError) {
	local, pw, cerr := s.account(f)
	if cerr != nil {
		return nil, cerr
	}
	if v := f.values("password-verify"); len(v) > 0 && v[0] != f.value("password") {
		return nil, badRequest("the passwords do not match")
	}
	if err := s.Store.AddUser(local, pw); errors.Is(err, storage.ErrExists) {
		return nil, &cmdError{stanza.Conflict, "the account exists already"}
	} else if err != nil {
		return nil, &cmdError{stanza.InternalServerError, ""}
	}
	s.Log.Info("admin command: user added", "jid", local+"@"+s.Domain)
	return note(nil, "Added "+local+"@"+s.Domain), nil
}

// deleteUser is XEP-0133 §4.2: the accounts are removed and every
// session of theirs ended.
func (s *Service) deleteUser(_ session.Peer, f *form) ([]byte, *cmdError) {
	jids := f.values("accountjids")
	if len(jids) == 0 {
		return nil, badRequest("accountjids is required")
	}
	var locals []string
	for _, v := range jids {
		local, cerr := s.localJID(v)
		if cerr != nil {
			return nil, cerr
		}
		locals = append(locals, local)
	}
	var done []string
	for _, local := range locals {
		if err := s.Store.DeleteUser(local); errors.Is(err, storage.ErrNotFound) {
			return nil, &cmdError{stanza.ItemNotFound, "no user " + local + "@" + s.Domain}
		} else if err != nil {
			return nil, &cmdError{stanza.InternalServerError, ""}
		}
		j, _ := jid.New(local, s.Domain, "")
		s.endSessions(j, "the account was deleted by an administrator")
		s.Log.Info("admin command: user deleted", "jid", j.String())
		done = append(done, j.String())
	}
	return note(nil, "Deleted "+strings.Join(done, ", ")), nil
}

// endSession is XEP-0133 §4.5: a bare JID ends every session of the
// account, a full JID that one.
func (s *Service) endSession(_ session.Peer, f *form) ([]byte, *cmdError) {
	jids := f.values("accountjids")
	if len(jids) == 0 {
		return nil, badRequest("accountjids is required")
	}
	var targets []jid.JID
	for _, v := range jids {
		j, err := jid.Parse(strings.TrimSpace(v))
		if err != nil || j.Local() == "" {
			return nil, badRequest(fmt.Sprintf("%q is not a JID", v))
		}
		targets = append(targets, j)
	}
	n := 0
	for _, j := range targets {
		n += s.endSessions(j, "the session was ended by an administrator")
	}
	s.Log.Info("admin command: sessions ended", "jids", jids, "count", n)
	return note(nil, fmt.Sprintf("Ended %d session(s)", n)), nil
}

// changePassword is XEP-0133 §4.7.
func (s *Service) changePassword(_ session.Peer, f *form) ([]byte, *cmdError) {
	local, pw, cerr := s.account(f)
	if cerr != nil {
		return nil, cerr
	}
	if err := s.Store.SetPassword(local, pw); errors.Is(err, storage.ErrNotFound) {
		return nil, &cmdError{stanza.ItemNotFound, "no user " + local + "@" + s.Domain}
	} else if err != nil {
		return nil, &cmdError{stanza.InternalServerError, ""}
	}
	s.Log.Info("admin command: password changed", "jid", local+"@"+s.Domain)
	return note(nil, "Changed the password of "+local+"@"+s.Domain), nil
}

// announce is XEP-0133 §4.23: a message from the domain to every online
// session of a user. Devices are left out: they are sensors, not users,
// and their datagrams are small.
func (s *Service) announce(_ session.Peer, f *form) ([]byte, *cmdError) {
	body := strings.Join(f.values("announcement"), "\n")
	if strings.TrimSpace(body) == "" {
		return nil, badRequest("the announcement is empty")
	}
	subject := f.value("subject")
	n := 0
	var msg []byte
	s.Router.Each(func(b *session.Bound) {
		if b.Device() {
			return
		}
		msg = append(msg[:0], "<message type='normal' from='"...)
		msg = stanza.AppendEscaped(msg, s.Domain)
		msg = append(msg, "' to='"...)
		msg = stanza.AppendEscaped(msg, b.Full())
		msg = append(msg, "'>"...)
		if subject != "" {
			msg = append(msg, "<subject>"...)
			msg = stanza.AppendEscaped(msg, subject)
			msg = append(msg, "</subject>"...)
		}
		msg = append(msg, "<body>"...)
		msg = stanza.AppendEscaped(msg, body)
		msg = append(msg, "</body></message>"...)
		if b.Deliver(msg) {
			n++
		}
	})
	s.Log.Info("admin command: announcement sent", "sessions", n)
	return note(nil, fmt.Sprintf("Sent to %d session(s)", n)), nil
}

// sessions is urn:roost:admin:sessions: one item per bound session with
// its transport, peer address and bind time (RFC 3339).
func (s *Service) sessions(_ session.Peer, _ *form) ([]byte, *cmdError) {
	var all []*session.Bound
	s.Router.Each(func(b *session.Bound) { all = append(all, b) })
	slices.SortFunc(all, func(a, b *session.Bound) int { return strings.Compare(a.Full(), b.Full()) })
	b := formStart(nil, "result", "Online sessions", false)
	b = append(b, "<reported><field var='jid' label='JID' type='jid-single'/><field var='transport' label='Transport' type='text-single'/><field var='address' label='Address' type='text-single'/><field var='since' label='Since' type='text-single'/></reported>"...)
	for _, x := range all {
		addr := ""
		if a := x.RemoteAddr(); a != nil {
			addr = a.String()
		}
		b = append(b, "<item>"...)
		b = appendField(b, "", "jid", "", false, x.Full())
		b = appendField(b, "", "transport", "", false, x.TransportName())
		b = appendField(b, "", "address", "", false, addr)
		b = appendField(b, "", "since", "", false, x.Since().UTC().Format(time.RFC3339))
		b = append(b, "</item>"...)
	}
	return append(b, "</x>"...), nil
}

// devices is urn:roost:admin:devices: every registered device with what
// the DTLS listener knows of it.
func (s *Service) devices(_ session.Peer, _ *form) ([]byte, *cmdError) {
	list, err := devices.List(s.Store)
	if err != nil {
		return nil, &cmdError{stanza.InternalServerError, ""}
	}
	type state struct {
		online   bool
		lastSeen time.Time
		last     string
	}
	byBare := map[string]*state{}
	if s.Devices != nil {
		for _, d := range s.Devices.DeviceStatus() {
			j, err := jid.Parse(d.JID)
			if err != nil {
				continue
			}
			bare := j.Bare().String()
			st := byBare[bare]
			if st == nil {
				st = &state{}
				byBare[bare] = st
			}
			st.online = st.online || d.Online
			if d.LastSeen.After(st.lastSeen) {
				st.lastSeen = d.LastSeen
				st.last = d.LastStanza
			}
		}
	}
	b := formStart(nil, "result", "Devices", false)
	b = append(b, "<reported><field var='jid' label='JID' type='jid-single'/><field var='online' label='Online' type='boolean'/><field var='last_seen' label='Last seen' type='text-single'/><field var='last_stanza' label='Last stanza' type='text-single'/></reported>"...)
	for _, d := range list {
		bare := d.Name + "@" + s.Domain
		st := byBare[bare]
		if st == nil {
			st = &state{}
		}
		seen := ""
		if !st.lastSeen.IsZero() {
			seen = st.lastSeen.UTC().Format(time.RFC3339)
		}
		b = append(b, "<item>"...)
		b = appendField(b, "", "jid", "", false, bare)
		b = appendField(b, "", "online", "", false, strconv.FormatBool(st.online))
		b = appendField(b, "", "last_seen", "", false, seen)
		b = appendField(b, "", "last_stanza", "", false, truncate(st.last, 200))
		b = append(b, "</item>"...)
	}
	return append(b, "</x>"...), nil
}

// truncate cuts s to at most n characters.
func truncate(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// status is urn:roost:admin:status.
func (s *Service) status(_ session.Peer, _ *form) ([]byte, *cmdError) {
	users, err := s.Store.Users()
	if err != nil {
		return nil, &cmdError{stanza.InternalServerError, ""}
	}
	online := 0
	if s.Devices != nil {
		for _, d := range s.Devices.DeviceStatus() {
			if d.Online {
				online++
			}
		}
	}
	var links []string
	if s.Links != nil {
		links = s.Links()
	}
	b := formStart(nil, "result", "Server status", false)
	b = appendField(b, "text-single", "version", "Version", false, s.Version)
	b = appendField(b, "text-single", "uptime", "Uptime", false, time.Since(s.Started).Round(time.Second).String())
	b = appendField(b, "text-single", "sessions", "Sessions", false, strconv.Itoa(s.Router.Count()))
	b = appendField(b, "text-single", "devices_online", "Devices online", false, strconv.Itoa(online))
	b = appendField(b, "text-single", "registered_users", "Registered users", false, strconv.Itoa(len(users)))
	b = appendField(b, "text-multi", "links", "Links", false, links...)
	return append(b, "</x>"...), nil
}
