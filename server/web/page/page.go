// Package page is the gateway's live status page (issue 15): three static
// files embedded in the binary (index.html, app.js, style.css), plain
// HTML, CSS and JavaScript with no build step and nothing fetched from
// elsewhere, so the page works on a gateway with no Internet access.
//
// The page is itself an XMPP client: it signs in over the WebSocket
// binding at /xmpp-websocket of its own origin (RFC 7395), with SASL PLAIN
// (RFC 4616, RFC 6120 §6), binds a resource (RFC 6120 §7) and runs the
// server's ad-hoc commands (XEP-0050) urn:roost:admin:sessions,
// urn:roost:admin:devices and urn:roost:admin:status every 500 ms while
// it is visible; a device can be sent the XEP-0050 command "read". No
// script or style is inline: the web server's Content-Security-Policy
// (default-src 'self') forbids both.
package page

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strconv"
)

//go:embed static/index.html static/app.js static/style.css
var static embed.FS

// file is one embedded file as it is served.
type file struct {
	body  []byte
	ctype string
	etag  string
}

// files maps a request path to what it serves; "/" is index.html.
var files = func() map[string]file {
	m := map[string]file{}
	for _, f := range []struct{ name, path, ctype string }{
		{"index.html", "/", "text/html; charset=utf-8"},
		{"app.js", "/app.js", "text/javascript; charset=utf-8"},
		{"style.css", "/style.css", "text/css; charset=utf-8"},
	} {
		b, err := static.ReadFile("static/" + f.name)
		if err != nil {
			panic("page: " + err.Error()) // the embed directive above lists it: a build error, not input
		}
		sum := sha256.Sum256(b)
		e := file{body: b, ctype: f.ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		m[f.path] = e
		if f.path == "/" {
			m["/index.html"] = e
		}
	}
	return m
}()

// Handler serves the page: GET and HEAD of "/", "/index.html", "/app.js"
// and "/style.css"; any other path is 404 and any other method 405. Each
// answer carries its content type, an ETag (a matching If-None-Match gets
// 304) and Cache-Control: no-cache, so a new binary's page is used at
// once. The security headers are the web server's (package web).
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	f, ok := files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if inm := r.Header.Get("If-None-Match"); inm != "" && inm == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(f.body)
}
