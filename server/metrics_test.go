package server_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"roost/server"
	"roost/server/metrics"
)

// scrape GETs url and parses the body with Prometheus' own text-format
// parser, failing the test on any status but 200 or any parse error.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, body)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// all of labels (name=value pairs); it fails when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	t.Fatalf("no sample of %s with labels %v", name, labels)
	return 0
}

// TestMetrics scrapes a running server's /metrics handler over a real
// loopback listener: the exposition parses, the gauges reflect the
// sessions and the store, and the counters move when stanzas flow.
func TestMetrics(t *testing.T) {
	ts := startServer(t, nil)
	ts.addUser(t, "alice", "pw")
	ts.addUser(t, "bob", "pw")
	ts.addUser(t, "carol", "pw")
	web := httptest.NewServer(ts.MetricsHandler())
	defer web.Close()

	alice := login(t, ts, "alice", "pw", "a")
	bob := login(t, ts, "bob", "pw", "b")
	// carol is offline: this message is stored (one store commit).
	alice.send("<message to='carol@" + ts.cfg.Domain + "' type='chat' id='off1'><body>later</body></message>")
	alice.drain()

	before := scrape(t, web.URL+"/metrics")
	if got := value(t, before, "roost_sessions", "transport", "c2s"); got != 2 {
		t.Fatalf("roost_sessions{transport=c2s} = %v, want 2", got)
	}
	if got := value(t, before, "roost_offline_messages"); got != 1 {
		t.Fatalf("roost_offline_messages = %v, want 1", got)
	}
	if got := value(t, before, "roost_devices_online"); got != 0 {
		t.Fatalf("roost_devices_online = %v, want 0", got)
	}
	if _, ok := before["roost_uplink_up"]; ok {
		t.Fatal("roost_uplink_up is exposed with no uplink configured")
	}
	if before["go_goroutines"] == nil {
		t.Fatal("no Go runtime metrics (go_goroutines)")
	}
	if f := before["roost_stanzas_routed_total"]; f.GetType() != dto.MetricType_COUNTER {
		t.Fatalf("roost_stanzas_routed_total has type %v, want counter", f.GetType())
	}
	if value(t, before, "roost_store_commit_seconds") < 1 {
		t.Fatal("roost_store_commit_seconds counted no commit after users were added")
	}

	const n = 5
	for i := range n {
		alice.send(fmt.Sprintf("<message to='bob@%s/b' type='chat' id='m%d'><body>hi</body></message>", ts.cfg.Domain, i))
	}
	for i := range n {
		id := fmt.Sprintf("m%d", i)
		bob.expect("message "+id, func(e *element) bool { return e.XMLName.Local == "message" && e.attr("id") == id })
	}
	// A wrong password on a third connection.
	c := dialRaw(t, ts.c2s)
	c.open(ts.cfg.Domain)
	c.starttls(ts)
	c.open(ts.cfg.Domain)
	c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00wrong")) + "</auth>")
	if e := c.next(); e.XMLName.Local != "failure" {
		t.Fatalf("wrong password: got %s", e)
	}

	after := scrape(t, web.URL+"/metrics")
	// Other tests in this process move the counters too: they only grow.
	for _, m := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"roost_stanzas_routed_total", []string{"kind", "message"}, n},
		{"roost_bytes_read_total", []string{"transport", "c2s"}, 1},
		{"roost_bytes_written_total", nil, 1},
		{"roost_auth_failures_total", nil, 1},
	} {
		d := value(t, after, m.name, m.labels...) - value(t, before, m.name, m.labels...)
		if d < m.min {
			t.Errorf("%s%v moved by %v, want at least %v", m.name, m.labels, d, m.min)
		}
	}
	if got := value(t, after, "roost_sessions", "transport", "c2s"); got != 2 {
		t.Errorf("roost_sessions{transport=c2s} = %v after the failed login, want 2", got)
	}
}

// TestMetricsForbidden: an address outside http.metrics_allow gets 403,
// both from the package's handler and from the server's.
func TestMetricsForbidden(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.HTTP.MetricsAllow = []string{"10.0.0.0/8"} })
	for name, h := range map[string]http.Handler{
		"server":  ts.MetricsHandler(),
		"package": metrics.Handler([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}),
	} {
		web := httptest.NewServer(h)
		resp, err := http.Get(web.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		web.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s handler: %s from 127.0.0.1 outside 10.0.0.0/8, want 403", name, resp.Status)
		}
		if strings.Contains(string(body), "roost_") {
			t.Errorf("%s handler leaked metrics to a forbidden address: %s", name, body)
		}
	}
	// The same package handler allowing loopback answers.
	web := httptest.NewServer(metrics.Handler([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}))
	defer web.Close()
	if f := scrape(t, web.URL+"/metrics"); f["roost_stanzas_routed_total"] == nil {
		t.Error("no roost_stanzas_routed_total from an allowed address")
	}
}
