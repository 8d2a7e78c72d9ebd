package page

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServesEmbeddedFiles: each file with its content type, the same
// bytes as embedded, no-cache, an ETag that gives 304.
func TestServesEmbeddedFiles(t *testing.T) {
	for _, c := range []struct{ path, file, ctype, contains string }{
		{"/", "index.html", "text/html; charset=utf-8", "<!DOCTYPE html>"},
		{"/index.html", "index.html", "text/html; charset=utf-8", "<!DOCTYPE html>"},
		{"/app.js", "app.js", "text/javascript; charset=utf-8", "urn:roost:admin:devices"},
		{"/style.css", "style.css", "text/css; charset=utf-8", "@media"},
	} {
		r := get(t, "GET", c.path, nil)
		if r.StatusCode != 200 {
			t.Fatalf("%s: status %d", c.path, r.StatusCode)
		}
		if got := r.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := r.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("%s: Cache-Control %q", c.path, got)
		}
		if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", c.path, got)
		}
		b := body(t, r)
		want, _ := static.ReadFile("static/" + c.file)
		if b != string(want) || !strings.Contains(b, c.contains) {
			t.Errorf("%s: body is not the embedded %s", c.path, c.file)
		}
		etag := r.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("%s: no ETag", c.path)
		}
		if r2 := get(t, "GET", c.path, map[string]string{"If-None-Match": etag}); r2.StatusCode != http.StatusNotModified {
			t.Errorf("%s with If-None-Match: status %d, want 304", c.path, r2.StatusCode)
		}
		if r3 := get(t, "HEAD", c.path, nil); r3.StatusCode != 200 || body(t, r3) != "" || r3.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s HEAD: status %d", c.path, r3.StatusCode)
		}
	}
}

func TestRefusesOthers(t *testing.T) {
	for _, p := range []string{"/nope", "/static/app.js", "/../page.go", "/app.js/", "/favicon.ico"} {
		if r := get(t, "GET", p, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, r.StatusCode)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		r := get(t, m, "/", nil)
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: status %d Allow %q, want 405", m, r.StatusCode, r.Header.Get("Allow"))
		}
	}
}

// TestNoInlineScriptOrStyle: the web server's CSP (default-src 'self')
// forbids inline script and style; the page must not need them, nor
// anything from another origin.
func TestNoInlineScriptOrStyle(t *testing.T) {
	html, _ := static.ReadFile("static/index.html")
	h := string(html)
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(h, -1)
	if len(scripts) != 1 {
		t.Fatalf("%d script elements, want 1 (app.js)", len(scripts))
	}
	for _, s := range scripts {
		if !strings.Contains(s[1], `src="app.js"`) || strings.TrimSpace(s[2]) != "" {
			t.Errorf("inline script: %q", s[0])
		}
	}
	for name, re := range map[string]string{
		"style element":   `(?i)<style\b`,
		"style attribute": `(?i)\sstyle\s*=`,
		"event handler":   `(?i)\son[a-z]+\s*=`,
		"javascript: URL": `(?i)javascript:`,
		"other origin":    `(?i)(src|href)\s*=\s*"(https?:)?//`,
	} {
		if regexp.MustCompile(re).MatchString(h) {
			t.Errorf("index.html has an %s", name)
		}
	}
	if !strings.Contains(h, `<meta name="viewport" content="width=device-width, initial-scale=1">`) {
		t.Error("index.html has no viewport meta tag (phones)")
	}
	css, _ := static.ReadFile("static/style.css")
	if regexp.MustCompile(`(?i)@import|url\(`).Match(css) {
		t.Error("style.css loads something")
	}
	js, _ := static.ReadFile("static/app.js")
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write", ".style."} {
		if strings.Contains(string(js), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
