// Package metrics serves Roost's counters in the Prometheus text exposition
// format (version 0.0.4) at /metrics, to the addresses in http.metrics_allow
// only; every other remote address gets 403 Forbidden.
//
// Counters are package-level atomics that the transports and the rules
// increment where the event happens (no allocation: route counts every
// stanza on the hot path). Gauges are computed at scrape time from a Source
// the server gives.
//
//	name                                    type       what
//	roost_sessions{transport}               gauge      bound sessions by transport (c2s, dtls, websocket)
//	roost_devices_online                    gauge      bound sessions of registered devices
//	roost_stanzas_routed_total{kind}        counter    stanzas from bound sessions entering the rules (message, presence, iq)
//	roost_bytes_read_total{transport="c2s"} counter    bytes read from client (TCP) connections
//	roost_bytes_written_total               counter    bytes written by every out-queue (c2s, s2s, uplink)
//	roost_auth_failures_total               counter    failed SASL authentications (wrong credentials)
//	roost_slow_reader_drops_total           counter    client streams closed because their out-queue overflowed
//	roost_offline_messages                  gauge      offline messages stored for all users (cached 5 s)
//	roost_uplink_up                         gauge      1 while the XEP-0114 uplink is up, 0 otherwise (absent when none is configured)
//	roost_store_commit_seconds              histogram  time to commit (write and fsync) a store transaction
//	go_*, process_*                         mixed      Go runtime and process metrics
package metrics

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"roost/storage"
	"roost/wire/outq"
	"roost/wire/stanza"
)

var set = vm.NewSet()

// The counters. Each increment is one atomic add.
var (
	stanzaMessage  = set.NewCounter(`roost_stanzas_routed_total{kind="message"}`)
	stanzaPresence = set.NewCounter(`roost_stanzas_routed_total{kind="presence"}`)
	stanzaIQ       = set.NewCounter(`roost_stanzas_routed_total{kind="iq"}`)

	// BytesReadC2S counts the bytes read from client connections.
	BytesReadC2S = set.NewCounter(`roost_bytes_read_total{transport="c2s"}`)
	// AuthFailures counts failed authentications (RFC 6120 §6.5 <failure/>
	// for a wrong credential).
	AuthFailures = set.NewCounter("roost_auth_failures_total")
	// SlowReaderDrops counts streams closed because the peer did not read
	// what was queued for it (limits.outbound_queue_bytes).
	SlowReaderDrops = set.NewCounter("roost_slow_reader_drops_total")

	commitSeconds = set.NewPrometheusHistogramExt("roost_store_commit_seconds",
		[]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})
)

func init() {
	vm.ExposeMetadata(true) // # TYPE lines, so scrapers know counters from gauges
	storage.CommitObserver = func(d time.Duration) { commitSeconds.Update(d.Seconds()) }
}

// Stanza counts one stanza entering the rules (RFC 6120 §8).
func Stanza(k stanza.Kind) {
	switch k {
	case stanza.Message:
		stanzaMessage.Inc()
	case stanza.Presence:
		stanzaPresence.Inc()
	case stanza.IQ:
		stanzaIQ.Inc()
	}
}

// Source is what the gauges are computed from at scrape time.
type Source interface {
	// EachSession calls fn for every bound session.
	EachSession(fn func(transport string, device bool))
	// OfflineMessages is the number of stored offline messages.
	OfflineMessages() (int, error)
	// Uplink reports whether an uplink is configured and whether it is up.
	Uplink() (configured, up bool)
}

// Handler serves the counters and the Go runtime metrics (no gauges from a
// server) to remote addresses within allow.
func Handler(allow []netip.Prefix) http.Handler { return NewHandler(allow, nil) }

// NewHandler serves everything, with the gauges from src (nil: none).
func NewHandler(allow []netip.Prefix, src Source) http.Handler {
	return &handler{allow: allow, src: src}
}

type handler struct {
	allow []netip.Prefix
	src   Source

	mu          sync.Mutex
	offline     int
	offlineErr  error
	offlineWhen time.Time
}

// offlineTTL is how long the offline count (one read transaction over
// every user's bucket) is reused.
const offlineTTL = 5 * time.Second

func (h *handler) allowed(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range h.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.allowed(r.RemoteAddr) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	h.write(w)
}

func family(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func (h *handler) write(w io.Writer) {
	if h.src != nil {
		byTransport := map[string]int{}
		devices := 0
		h.src.EachSession(func(transport string, device bool) {
			byTransport[transport]++
			if device {
				devices++
			}
		})
		family(w, "roost_sessions", "gauge", "Bound sessions by transport.")
		for _, t := range []string{"c2s", "dtls", "websocket"} {
			fmt.Fprintf(w, "roost_sessions{transport=%q} %d\n", t, byTransport[t])
			delete(byTransport, t)
		}
		for t, n := range byTransport {
			fmt.Fprintf(w, "roost_sessions{transport=%q} %d\n", t, n)
		}
		family(w, "roost_devices_online", "gauge", "Registered devices with a bound session.")
		fmt.Fprintf(w, "roost_devices_online %d\n", devices)
		if n, err := h.offlineMessages(); err == nil {
			family(w, "roost_offline_messages", "gauge", "Offline messages stored for all users.")
			fmt.Fprintf(w, "roost_offline_messages %d\n", n)
		}
		if configured, up := h.src.Uplink(); configured {
			v := 0
			if up {
				v = 1
			}
			family(w, "roost_uplink_up", "gauge", "1 while the XEP-0114 component uplink is up.")
			fmt.Fprintf(w, "roost_uplink_up %d\n", v)
		}
	}
	family(w, "roost_bytes_written_total", "counter", "Bytes written to client, server and uplink connections.")
	fmt.Fprintf(w, "roost_bytes_written_total %d\n", outq.BytesWritten.Load())
	set.WritePrometheus(w)
	vm.WriteProcessMetrics(w)
}

func (h *handler) offlineMessages() (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.offlineWhen.IsZero() && time.Since(h.offlineWhen) < offlineTTL {
		return h.offline, h.offlineErr
	}
	h.offline, h.offlineErr = h.src.OfflineMessages()
	h.offlineWhen = time.Now()
	return h.offline, h.offlineErr
}
