package server_test

import (
	"encoding/xml"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"roost/devices"
	"roost/server"
)

// cmdResult is an iq answering an XEP-0050 command.
type cmdResult struct {
	Type    string
	Status  string
	Session string
	Note    string
	Error   string              // inner XML of <error/>
	FormTyp string              // type of the data form
	Fields  map[string][]string // top-level fields of the form
	Items   []map[string]string // <item/>s of a reported form
}

func parseCmd(t *testing.T, e *element) *cmdResult {
	t.Helper()
	type fieldX struct {
		Var    string   `xml:"var,attr"`
		Values []string `xml:"value"`
	}
	var v struct {
		Command struct {
			Status    string `xml:"status,attr"`
			SessionID string `xml:"sessionid,attr"`
			Note      string `xml:"note"`
			X         struct {
				Type   string   `xml:"type,attr"`
				Fields []fieldX `xml:"field"`
				Items  []struct {
					Fields []fieldX `xml:"field"`
				} `xml:"item"`
			} `xml:"jabber:x:data x"`
		} `xml:"http://jabber.org/protocol/commands command"`
		Error struct {
			Inner string `xml:",innerxml"`
		} `xml:"error"`
	}
	if err := xml.Unmarshal([]byte("<iq>"+e.Inner+"</iq>"), &v); err != nil {
		t.Fatalf("parse %s: %v", e, err)
	}
	r := &cmdResult{Type: e.attr("type"), Status: v.Command.Status, Session: v.Command.SessionID, Note: v.Command.Note,
		Error: v.Error.Inner, FormTyp: v.Command.X.Type, Fields: map[string][]string{}}
	for _, f := range v.Command.X.Fields {
		r.Fields[f.Var] = f.Values
	}
	for _, it := range v.Command.X.Items {
		m := map[string]string{}
		for _, f := range it.Fields {
			m[f.Var] = strings.Join(f.Values, "\n")
		}
		r.Items = append(r.Items, m)
	}
	return r
}

var cmdSeq int

// runCmd sends one command request to the server and returns its answer.
// extra is the attributes after node (action, sessionid), body the
// command's children (a submitted form).
func runCmd(t *testing.T, c *rawClient, node, extra, body string) *cmdResult {
	t.Helper()
	cmdSeq++
	id := "cmd" + strconv.Itoa(cmdSeq)
	c.send("<iq type='set' id='" + id + "' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='" + node + "' " + extra + ">" + body + "</command></iq>")
	e := c.expect("the answer to "+node, func(e *element) bool { return e.XMLName.Local == "iq" && e.attr("id") == id })
	if e.attr("from") != "localhost" {
		t.Fatalf("%s: answer from %q, want localhost", node, e.attr("from"))
	}
	return parseCmd(t, e)
}

// completed runs a single-stage command and requires status completed.
func completed(t *testing.T, c *rawClient, node string) *cmdResult {
	t.Helper()
	r := runCmd(t, c, node, "action='execute'", "")
	if r.Type != "result" || r.Status != "completed" || r.Session == "" || r.FormTyp != "result" {
		t.Fatalf("%s: got %+v, want a completed result form with a sessionid", node, r)
	}
	return r
}

// submit runs a command with a submitted XEP-0133 form in one request.
func submit(t *testing.T, c *rawClient, node string, fields map[string][]string) *cmdResult {
	t.Helper()
	return runCmd(t, c, node, "action='complete'", adminForm(fields))
}

func adminForm(fields map[string][]string) string {
	b := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/admin</value></field>"
	for k, vs := range fields {
		b += "<field var='" + k + "'>"
		for _, v := range vs {
			b += "<value>" + v + "</value>"
		}
		b += "</field>"
	}
	return b + "</x>"
}

func adminServer(t *testing.T) *testServer {
	ts := startServer(t, func(c *server.Config) {
		c.Listen.DTLS = "127.0.0.1:0"
		c.Admins = []string{"admin@localhost"}
	})
	for _, u := range []string{"admin", "alice", "bob"} {
		ts.addUser(t, u, "pw")
	}
	return ts
}

func TestAdhocAdminReadCommands(t *testing.T) {
	ts := adminServer(t)
	admin := login(t, ts, "admin", "pw", "a")
	login(t, ts, "alice", "pw", "r1")
	login(t, ts, "alice", "pw", "r2")

	// disco#items on the commands node lists them (XEP-0050 §2.2), and
	// disco#info advertises the feature.
	admin.send("<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>")
	e := admin.expect("the command list", func(e *element) bool { return e.attr("id") == "items" })
	for _, n := range []string{"urn:roost:admin:sessions", "urn:roost:admin:devices", "urn:roost:admin:status", "http://jabber.org/protocol/admin#add-user"} {
		if !strings.Contains(e.Inner, "node='"+n+"'") && !strings.Contains(e.Inner, `node="`+n+`"`) {
			t.Fatalf("disco#items lacks %s: %s", n, e)
		}
	}
	admin.send("<iq type='get' id='info' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if e := admin.expect("disco#info", func(e *element) bool { return e.attr("id") == "info" }); !strings.Contains(e.Inner, "http://jabber.org/protocol/commands") {
		t.Fatalf("disco#info lacks the commands feature: %s", e)
	}

	// Sessions: both of alice's resources, with transport and address.
	r := completed(t, admin, "urn:roost:admin:sessions")
	found := 0
	for _, it := range r.Items {
		if !strings.HasPrefix(it["jid"], "alice@localhost/r") {
			continue
		}
		found++
		if it["transport"] != "c2s" {
			t.Errorf("%s: transport %q, want c2s", it["jid"], it["transport"])
		}
		if host, _, err := net.SplitHostPort(it["address"]); err != nil || host != "127.0.0.1" {
			t.Errorf("%s: address %q, want 127.0.0.1:port", it["jid"], it["address"])
		}
		if since, err := time.Parse(time.RFC3339, it["since"]); err != nil || time.Since(since) > time.Minute {
			t.Errorf("%s: since %q is not a recent RFC 3339 time", it["jid"], it["since"])
		}
	}
	if found != 2 || len(r.Items) != 3 {
		t.Fatalf("sessions: %+v, want alice's two resources and admin's", r.Items)
	}

	// Counts (XEP-0133 §4.15, §4.17, §4.21).
	r = completed(t, admin, "http://jabber.org/protocol/admin#get-registered-users-num")
	if got := r.Fields["registeredusersnum"]; len(got) != 1 || got[0] != "3" || r.Fields["FORM_TYPE"][0] != "http://jabber.org/protocol/admin" {
		t.Fatalf("registered users: %+v", r.Fields)
	}
	r = completed(t, admin, "http://jabber.org/protocol/admin#get-online-users-num")
	if got := r.Fields["onlineusersnum"]; len(got) != 1 || got[0] != "2" {
		t.Fatalf("online users: %+v", r.Fields)
	}
	r = submit(t, admin, "http://jabber.org/protocol/admin#get-online-users-list", map[string][]string{"max_items": {"none"}})
	if got := strings.Join(r.Fields["onlineuserjids"], ","); got != "admin@localhost,alice@localhost" {
		t.Fatalf("online list: %q", got)
	}

	// Status.
	r = completed(t, admin, "urn:roost:admin:status")
	if r.Fields["sessions"][0] != "3" || r.Fields["registered_users"][0] != "3" || r.Fields["version"][0] == "" || r.Fields["uptime"][0] == "" || r.Fields["devices_online"][0] != "0" {
		t.Fatalf("status: %+v", r.Fields)
	}
	if _, ok := r.Fields["links"]; !ok {
		t.Fatalf("status without links: %+v", r.Fields)
	}

	// Errors: an unknown node, a bad form.
	if r := runCmd(t, admin, "urn:roost:admin:nope", "action='execute'", ""); r.Type != "error" || !strings.Contains(r.Error, "item-not-found") {
		t.Fatalf("unknown node: %+v", r)
	}
	if r := submit(t, admin, "http://jabber.org/protocol/admin#add-user", map[string][]string{"password": {"x"}}); r.Type != "error" || !strings.Contains(r.Error, "bad-request") {
		t.Fatalf("add-user without accountjid: %+v", r)
	}
}

// deviceRow returns the devices command's row for jid.
func deviceRow(t *testing.T, admin *rawClient, jid string) map[string]string {
	t.Helper()
	r := completed(t, admin, "urn:roost:admin:devices")
	for _, it := range r.Items {
		if it["jid"] == jid {
			return it
		}
	}
	t.Fatalf("devices: no %s in %+v", jid, r.Items)
	return nil
}

func TestAdhocDevices(t *testing.T) {
	ts := adminServer(t)
	d, err := devices.Add(ts.Store(), "localhost", "sensor1", "thermometer", "Kitchen", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	admin := login(t, ts, "admin", "pw", "a")
	alice := login(t, ts, "alice", "pw", "r")
	if row := deviceRow(t, admin, "sensor1@localhost"); row["online"] != "false" || row["last_seen"] != "" || row["last_stanza"] != "" {
		t.Fatalf("before it connected: %+v", row)
	}
	dev := dialDevice(t, ts, "sensor1@localhost/device", d.PSK)
	long := strings.Repeat("é", 300) // over the 320-byte bound
	dev.send(t, "<message to='alice@localhost/r'><body>21.5 "+long+"</body></message>")
	alice.expect("the reading", func(e *element) bool { return e.XMLName.Local == "message" && strings.Contains(e.Inner, "21.5") })
	row := deviceRow(t, admin, "sensor1@localhost")
	if row["online"] != "true" || !strings.Contains(row["last_stanza"], "21.5") || !strings.HasPrefix(row["last_stanza"], "<message") {
		t.Fatalf("online device: %+v", row)
	}
	if n := len(row["last_stanza"]); n > 320 {
		t.Fatalf("last_stanza has %d bytes, want at most 320", n)
	}
	if _, err := time.Parse(time.RFC3339, row["last_seen"]); err != nil {
		t.Fatalf("last_seen %q: %v", row["last_seen"], err)
	}
	if r := completed(t, admin, "urn:roost:admin:status"); r.Fields["devices_online"][0] != "1" {
		t.Fatalf("status with the device online: %+v", r.Fields)
	}
	dev.conn.Close() // a close alert: the server ends the session
	deadline := time.Now().Add(10 * time.Second)
	for {
		row = deviceRow(t, admin, "sensor1@localhost")
		if row["online"] == "false" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device still shows online 10s after it closed: %+v", row)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(row["last_stanza"], "21.5") || row["last_seen"] == "" {
		t.Fatalf("offline device lost its last stanza: %+v", row)
	}
}

func TestAdhocAdminChanges(t *testing.T) {
	ts := adminServer(t)
	admin := login(t, ts, "admin", "pw", "a")

	// add-user, multi-stage (XEP-0133 §4.1): the form, then complete.
	r := runCmd(t, admin, "http://jabber.org/protocol/admin#add-user", "action='execute'", "")
	if r.Status != "executing" || r.Session == "" || r.FormTyp != "form" || r.Fields["FORM_TYPE"][0] != "http://jabber.org/protocol/admin" {
		t.Fatalf("add-user first stage: %+v", r)
	}
	if _, ok := r.Fields["accountjid"]; !ok {
		t.Fatalf("add-user form lacks accountjid: %+v", r.Fields)
	}
	form := adminForm(map[string][]string{"accountjid": {"carol@localhost"}, "password": {"s3cret"}, "password-verify": {"s3cret"}})
	// A sessionid the server never gave is refused.
	if bad := runCmd(t, admin, "http://jabber.org/protocol/admin#add-user", "action='complete' sessionid='nope'", form); bad.Type != "error" || !strings.Contains(bad.Error, "bad-request") {
		t.Fatalf("unknown sessionid: %+v", bad)
	}
	r = runCmd(t, admin, "http://jabber.org/protocol/admin#add-user", "action='complete' sessionid='"+r.Session+"'", form)
	if r.Type != "result" || r.Status != "completed" || r.Note == "" {
		t.Fatalf("add-user complete: %+v", r)
	}
	login(t, ts, "carol", "s3cret", "x")

	// cancel (XEP-0050 §3.4.3).
	r = runCmd(t, admin, "http://jabber.org/protocol/admin#delete-user", "action='execute'", "")
	r = runCmd(t, admin, "http://jabber.org/protocol/admin#delete-user", "action='cancel' sessionid='"+r.Session+"'", "")
	if r.Type != "result" || r.Status != "canceled" {
		t.Fatalf("cancel: %+v", r)
	}

	// change-user-password.
	r = submit(t, admin, "http://jabber.org/protocol/admin#change-user-password", map[string][]string{"accountjid": {"alice@localhost"}, "password": {"new-pw"}})
	if r.Status != "completed" {
		t.Fatalf("change password: %+v", r)
	}
	if ok, _ := ts.Store().CheckPassword("alice", "pw"); ok {
		t.Fatal("the old password still works")
	}
	a1 := login(t, ts, "alice", "new-pw", "r1")
	a2 := login(t, ts, "alice", "new-pw", "r2")

	// end-user-session of one full JID: that stream ends with
	// policy-violation, the other resource stays.
	r = submit(t, admin, "http://jabber.org/protocol/admin#end-user-session", map[string][]string{"accountjids": {"alice@localhost/r1"}})
	if r.Status != "completed" || !strings.Contains(r.Note, "1 session") {
		t.Fatalf("end-user-session: %+v", r)
	}
	a1.expectStreamError("policy-violation")
	a2.expectNothing()

	// announce reaches every online session (admin's other resource
	// too; the sending one gets it before the command's result).
	bob := login(t, ts, "bob", "pw", "b")
	admin2 := login(t, ts, "admin", "pw", "other")
	r = submit(t, admin, "http://jabber.org/protocol/admin#announce", map[string][]string{"subject": {"Maintenance"}, "announcement": {"Back at 5", "pm"}})
	if r.Status != "completed" {
		t.Fatalf("announce: %+v", r)
	}
	for name, c := range map[string]*rawClient{"admin": admin2, "alice": a2, "bob": bob} {
		e := c.expect(name+"'s announcement", func(e *element) bool { return e.XMLName.Local == "message" })
		if e.attr("from") != "localhost" || !strings.Contains(e.Inner, "Back at 5\npm") || !strings.Contains(e.Inner, "Maintenance") {
			t.Fatalf("%s got %s", name, e)
		}
	}

	// delete-user ends the user's sessions (issue 17).
	r = submit(t, admin, "http://jabber.org/protocol/admin#delete-user", map[string][]string{"accountjids": {"bob@localhost"}})
	if r.Status != "completed" {
		t.Fatalf("delete-user: %+v", r)
	}
	bob.expectStreamError("policy-violation")
	if ok, _ := ts.Store().UserExists("bob"); ok {
		t.Fatal("bob still exists")
	}
	r = completed(t, admin, "http://jabber.org/protocol/admin#get-registered-users-num")
	if got := r.Fields["registeredusersnum"][0]; got != "3" { // admin, alice, carol
		t.Fatalf("registered after add and delete: %s", got)
	}
}

// TestAdhocForbidden: an account not in admins gets forbidden for every
// node (XEP-0133 §4) and sees no commands in disco#items.
func TestAdhocForbidden(t *testing.T) {
	ts := adminServer(t)
	alice := login(t, ts, "alice", "pw", "r")
	nodes := []string{"urn:roost:admin:sessions", "urn:roost:admin:devices", "urn:roost:admin:status", "urn:roost:admin:nope"}
	for _, n := range []string{"get-online-users-list", "end-user-session", "add-user", "delete-user", "change-user-password", "get-registered-users-num", "get-online-users-num", "announce"} {
		nodes = append(nodes, "http://jabber.org/protocol/admin#"+n)
	}
	for _, n := range nodes {
		for _, body := range []string{"", adminForm(map[string][]string{"accountjid": {"mallory@localhost"}, "password": {"x"}})} {
			r := runCmd(t, alice, n, "action='execute'", body)
			if r.Type != "error" || !strings.Contains(r.Error, "<forbidden") {
				t.Fatalf("%s as a non-admin: %+v", n, r)
			}
		}
	}
	if ok, _ := ts.Store().UserExists("mallory"); ok {
		t.Fatal("a non-admin added a user")
	}
	alice.send("<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>")
	e := alice.expect("the command list", func(e *element) bool { return e.attr("id") == "items" })
	if e.attr("type") != "result" || strings.Contains(e.Inner, "<item") {
		t.Fatalf("a non-admin's command list: %s", e)
	}
}
