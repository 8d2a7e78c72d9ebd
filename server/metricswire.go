package server

import (
	"net/http"
	"net/netip"

	"roost/server/metrics"
	"roost/server/session"
	"roost/storage"
)

// MetricsHandler is /metrics (Prometheus text format) for the web
// listeners: served to the addresses in http.metrics_allow, with the gauges
// read from this server's router, store and uplink at each scrape. Call it
// after Start has opened the store.
func (s *Server) MetricsHandler() http.Handler {
	var allow []netip.Prefix
	for _, p := range s.cfg.HTTP.MetricsAllow {
		if pfx, err := netip.ParsePrefix(p); err == nil { // Config.Validate checked them
			allow = append(allow, pfx.Masked())
		}
	}
	return metrics.NewHandler(allow, metricsSource{s})
}

// metricsSource gives server/metrics the gauges' inputs.
type metricsSource struct{ s *Server }

func (m metricsSource) EachSession(fn func(transport string, device bool)) {
	if m.s.router == nil {
		return
	}
	m.s.router.Each(func(b *session.Bound) { fn(b.TransportName(), b.Device()) })
}

func (m metricsSource) OfflineMessages() (n int, err error) {
	if m.s.store == nil {
		return 0, storage.ErrNotFound
	}
	err = m.s.store.View(func(tx *storage.Tx) error { n = tx.OfflineTotal(); return nil })
	return n, err
}

func (m metricsSource) Uplink() (configured, up bool) {
	if m.s.uplink == nil {
		return false, false
	}
	return true, m.s.uplink.Up()
}
