// Package xmppjs checks XMPP over WebSocket (RFC 7395) with a real
// browser-side library: xmpp.js (@xmpp/client, run with node) logs in
// over wss, exchanges messages with slixmpp on a TCP client stream, and
// each sees the other's presence.
package xmppjs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"roost/tests/testutil"
)

const (
	python     = "/usr/bin/python3"
	xmppClient = "@xmpp/client@0.14.0" // pinned: the version this test was written against
)

// installXMPPJS installs xmpp.js into a temporary directory with npm and
// returns that directory; it skips (testutil.Need) when node, npm or the
// registry is not there.
func installXMPPJS(t *testing.T) string {
	t.Helper()
	_, err := exec.LookPath("node")
	testutil.Need(t, "node", err == nil)
	_, err = exec.LookPath("npm")
	testutil.Need(t, "npm", err == nil)
	dir := t.TempDir()
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--loglevel=error", xmppClient)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("npm install %s: %v\n%s", xmppClient, err, out)
	}
	testutil.Need(t, "npm registry access for "+xmppClient, err == nil)
	src, err := os.ReadFile("client.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "client.mjs"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestXMPPJSOverWebSocket(t *testing.T) {
	testutil.Need(t, "python3-slixmpp", exec.Command(python, "-c", "import slixmpp").Run() == nil)
	dir := installXMPPJS(t)

	cfg := testutil.Config(t)
	cfg.Listen.HTTPS = "127.0.0.1:0"
	srv := testutil.Start(t, cfg)
	for _, u := range []string{"webby", "tcpy"} {
		if err := srv.Store().AddUser(u, u+"-pw"); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := strings.Cut(srv.WebAddr().String(), ":")
	service := "wss://" + cfg.Domain + ":" + port + "/xmpp-websocket"

	// Node 20 has WebSocket behind a flag; later versions have it on.
	args := []string{"client.mjs", service, cfg.Domain, "webby", "webby-pw", "js"}
	if exec.Command("node", "-e", "if (typeof WebSocket !== 'function') process.exit(1)").Run() != nil {
		args = append([]string{"--experimental-websocket"}, args...)
	}
	js := testutil.RunScript(t, "xmpp.js", 90*time.Second, "/usr/bin/env",
		append([]string{"-C", dir, "NODE_EXTRA_CA_CERTS=" + srv.CertPath(), "node"}, args...)...)
	jsJID := js.Expect("online", 30*time.Second)
	if !strings.HasPrefix(jsJID, "webby@"+cfg.Domain+"/") {
		js.Fail("bound as %q", jsJID)
	}
	py := testutil.RunScript(t, "slixmpp", 90*time.Second, python, "slix.py",
		srv.Addrs()[0].String(), "tcpy@"+cfg.Domain+"/desk", "tcpy-pw", srv.CertPath())
	pyJID := py.Expect("online", 30*time.Second)

	// Messages both ways.
	js.Tell("send " + pyJID + " hello from xmpp.js")
	if got := py.Expect("message "+jsJID, 10*time.Second); got != "hello from xmpp.js" {
		py.Fail("message body %q", got)
	}
	py.Tell("send " + jsJID + " hello from slixmpp")
	if got := js.Expect("message "+pyJID, 10*time.Second); got != "hello from slixmpp" {
		js.Fail("message body %q", got)
	}
	// Presence both ways.
	js.Tell("presence " + pyJID)
	py.Expect("presence "+jsJID, 10*time.Second)
	py.Tell("presence " + jsJID)
	if got := js.Expect("presence "+pyJID, 10*time.Second); got != "available" {
		js.Fail("presence type %q", got)
	}
	js.Tell("quit")
	js.Finish(15 * time.Second)
	py.Tell("quit")
	py.Finish(15 * time.Second)
}
