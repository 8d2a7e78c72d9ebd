// Package web tests the status page (issue 15) in a real browser: Debian's
// chromium, headless, driven over the DevTools protocol with chromedp. The
// page signs in over wss (RFC 7395) to a Roost started in the test, sees
// a simulated DTLS device come online and go offline, sends it the
// XEP-0050 command "read", and refuses an account that is not an
// administrator.
package web

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"roost/devices"
	"roost/devices/simulator"
	"roost/tests/testutil"
)

const chromium = "/usr/bin/chromium"

// browser is one headless chromium with one tab, and what its console
// said (exceptions and CSP violations fail the test).
type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []string
	bad     []string
}

// spki is the base64 SHA-256 of the certificate's public key: chromium's
// --ignore-certificate-errors-spki-list trusts exactly that key, so the
// generated certificate is trusted for this test and nothing else is.
func spki(t *testing.T, certPath string) string {
	t.Helper()
	b, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no certificate", certPath)
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		return base64.StdEncoding.EncodeToString(sum[:])
	}
}

func startBrowser(t *testing.T, certPath string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", spki(t, certPath)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx}
	// Start the browser and its tab now, then read its console for the
	// rest of the test.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			line := fmt.Sprintf("%s [%s %s:%d]", m.String(), m.Source, m.URL, m.Line)
			b.mu.Lock()
			b.console = append(b.console, line)
			if m.IsException() || strings.Contains(line, "Content Security Policy") {
				b.bad = append(b.bad, line)
			}
			b.mu.Unlock()
		}
	}()
	return b
}

// check fails the test on an exception or a CSP violation so far.
func (b *browser) check() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bad) > 0 {
		b.t.Fatalf("the page broke:\n%s", strings.Join(b.bad, "\n"))
	}
}

func (b *browser) dump() string {
	b.mu.Lock()
	con := strings.Join(b.console, "\n")
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
	return "page text:\n" + text + "\nconsole:\n" + con
}

// do runs actions with a deadline.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\n%s", what, err, b.dump())
	}
}

// until evaluates expr (a JavaScript expression giving a string) every
// 20 ms until it is not empty, and returns it with the time it took; at
// the deadline the test fails, showing the page.
func (b *browser) until(what string, within time.Duration, expr string) (string, time.Duration) {
	b.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		cancel()
		if err != nil {
			b.t.Fatalf("%s: evaluate: %v", what, err)
		}
		if v != "" {
			return v, time.Since(start)
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: not within %v\n%s", what, within, b.dump())
		}
		b.check()
		time.Sleep(20 * time.Millisecond) // the polling interval, not a wait for an event
	}
}

func (b *browser) signIn(jid, password string) {
	b.t.Helper()
	b.do("sign in as "+jid,
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SetValue(chromedp.CSS("#jid"), jid),
		chromedp.SetValue(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#signin")),
	)
}

func (b *browser) screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(os.TempDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
	return p
}

// deviceRow is a JavaScript expression: the device row's data-online
// ("true"/"false"), or "" while the row is not there.
func deviceRow(bare string) string {
	return fmt.Sprintf(`(() => { const r = document.querySelector('#devices tr[data-jid=%q]'); return r ? r.dataset.online : ''; })()`, bare)
}

func TestStatusPage(t *testing.T) {
	_, err := os.Stat(chromium)
	testutil.Need(t, "chromium ("+chromium+")", err == nil)

	cfg := testutil.Config(t)
	cfg.Listen.HTTPS = "127.0.0.1:0"
	cfg.Listen.DTLS = "127.0.0.1:0"
	cfg.Admins = []string{"admin@" + cfg.Domain}
	srv := testutil.Start(t, cfg)
	st := srv.Store()
	for _, u := range []struct{ local, pw string }{{"admin", "admin pw <&'\">"}, {"bob", "bob-pw"}} {
		if err := st.AddUser(u.local, u.pw); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := devices.Add(st, cfg.Domain, "sensor", "thermometer", "Kitchen", []string{"admin"})
	if err != nil {
		t.Fatal(err)
	}
	devBare := "sensor@" + cfg.Domain
	web := srv.WebAddr()
	if web == nil || srv.DevicesAddr() == nil {
		t.Fatal("the HTTPS or DTLS listener is not running")
	}
	url := "https://" + web.String() + "/"

	b := startBrowser(t, srv.CertPath())
	b.do("open "+url, chromedp.Navigate(url))
	if v, _ := b.until("visibility", time.Second, `document.visibilityState`); v != "visible" {
		t.Fatalf("document.visibilityState is %q: the page would not poll", v)
	}

	// A wrong password is refused by SASL and said so.
	b.signIn("admin@"+cfg.Domain, "wrong")
	b.until("the wrong password refused", 5*time.Second,
		`(() => { const e = document.getElementById('login-error'); return !e.hidden && e.textContent.includes('wrong account or password') ? 'y' : ''; })()`)

	// The admin signs in over wss; the device is listed, offline.
	b.signIn("admin@"+cfg.Domain, "admin pw <&'\">")
	b.until("the dashboard", 10*time.Second, `document.getElementById('dash').hidden ? '' : 'y'`)
	if v, _ := b.until("the device listed", 5*time.Second, deviceRow(devBare)); v != "false" {
		t.Fatalf("before the simulator runs the device is online=%q", v)
	}
	b.until("the page's own session, over websocket", 5*time.Second,
		`Array.from(document.querySelectorAll('#sessions tbody tr')).some((r) => r.cells[0].textContent.startsWith('admin@`+cfg.Domain+`/') && r.cells[1].textContent === 'websocket') ? 'y' : ''`)
	b.until("the status counters", 5*time.Second, `document.querySelector('#status [data-var="version"]') ? 'y' : ''`)

	// The simulator connects: online on the page within 2 s.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	sim, err := simulator.Dial(dctx, simulator.Options{Server: srv.DevicesAddr().String(), Identity: devBare + "/device", PSK: dev.PSK, Every: time.Second})
	dcancel()
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- sim.Run(ctx) }()
	_, took := b.until("the device online", 2*time.Second, `(`+deviceRow(devBare)+` === 'true') ? 'y' : ''`)
	t.Logf("the page showed the device online %v after it connected", took.Round(time.Millisecond))
	b.until("the device's reading", 3*time.Second,
		`(() => { const r = document.querySelector('#devices tr[data-jid="`+devBare+`"]'); return r && r.cells[3].textContent.includes('temperature') ? 'y' : ''; })()`)

	// The command "read" from the page reaches the simulator; its answer
	// shows.
	before := sim.Commands()
	b.until("the read button enabled", 3*time.Second,
		`(() => { const r = document.querySelector('#devices tr[data-jid="`+devBare+`"] button'); return r && !r.disabled ? 'y' : ''; })()`)
	b.do("click read", chromedp.Click(chromedp.CSS(`#devices tr[data-jid="`+devBare+`"] button`)))
	answer, _ := b.until("the command's answer", 5*time.Second,
		`(() => { const o = document.getElementById('cmd-result'); return o.dataset.state === 'done' || o.dataset.state === 'error' ? o.dataset.state + ': ' + o.innerText : ''; })()`)
	if !regexp.MustCompile(`^done: Temperature \(C\)\s+-?\d+\.\d$`).MatchString(strings.TrimSpace(answer)) {
		t.Fatalf("the command's answer on the page: %q", answer)
	}
	if sim.Commands() != before+1 {
		t.Fatalf("the simulator executed %d commands, want 1", sim.Commands()-before)
	}
	t.Logf("read from the page: %q", answer)
	b.check()

	shot := b.screenshot("roost-status-page.png")
	if os.Getenv("ROOST_SCREENSHOT") == "1" {
		_, file, _, _ := runtime.Caller(0)
		dst := filepath.Join(filepath.Dir(file), "..", "..", "docs", "status-page.png")
		png, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot copied to %s", dst)
	}

	// On a phone: nothing wider than the screen.
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	b.until("the page fits a phone", 3*time.Second,
		`document.documentElement.scrollWidth <= window.innerWidth ? 'y' : ''`)
	b.screenshot("roost-status-page-phone.png")
	b.do("desktop viewport", chromedp.ResetViewport())

	// The simulator stops (its DTLS close alert): offline on the page.
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("simulator: %v", err)
	}
	sim.Close()
	_, took = b.until("the device offline", 3*time.Second, `(`+deviceRow(devBare)+` === 'false') ? 'y' : ''`)
	t.Logf("the page showed the device offline %v after it stopped", took.Round(time.Millisecond))
	b.until("the last reading kept", time.Second,
		`(() => { const r = document.querySelector('#devices tr[data-jid="`+devBare+`"]'); return r && r.cells[3].textContent.includes('temperature') && r.cells[2].textContent !== 'now' ? 'y' : ''; })()`)

	// Someone who is not an administrator: the page says so and shows
	// nothing of the gateway.
	b.do("sign out", chromedp.Click(chromedp.CSS("#signout")))
	b.signIn("bob@"+cfg.Domain, "bob-pw")
	msg, _ := b.until("the refusal", 10*time.Second,
		`(() => { const e = document.getElementById('forbidden'); return e.hidden ? '' : e.textContent; })()`)
	if msg != "this account is not an administrator of this gateway" {
		t.Fatalf("refusal text %q", msg)
	}
	shown, _ := b.until("the state of the page", time.Second,
		`JSON.stringify({dash: !document.getElementById('dash').hidden, rows: document.querySelectorAll('#devices tbody tr, #sessions tbody tr').length, counters: document.querySelectorAll('#status > *').length})`)
	if shown != `{"dash":false,"rows":0,"counters":0}` {
		t.Fatalf("a non-admin sees %s", shown)
	}
	b.check()
}
