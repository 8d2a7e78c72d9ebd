package s2s

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"

	"roost/wire/stanza"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeSRV answers SRV lookups from a table, with no network; a domain
// not in it is NXDOMAIN. Every lookup is recorded.
type fakeSRV struct {
	records map[string][]*net.SRV
	asked   []string
}

func (f *fakeSRV) lookup(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	f.asked = append(f.asked, "_"+service+"._"+proto+"."+name)
	r, ok := f.records[name]
	if !ok {
		return "", nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return "", r, nil
}

// resolve tries a static route alone, then SRV targets in order, then the
// domain on 5269 (RFC 6120 §3.2); "." alone means not available.
func TestResolve(t *testing.T) {
	dns := &fakeSRV{records: map[string][]*net.SRV{
		"srv.test":  {{Target: "xmpp1.srv.test.", Port: 5270}, {Target: "xmpp2.srv.test", Port: 5271}},
		"none.test": {{Target: ".", Port: 0}},
	}}
	s := New(Config{Domain: "a.test", Secret: []byte("s"), Routes: map[string]string{"lan.test": "192.168.1.10:5269"}, LookupSRV: dns.lookup}, nil, quiet())
	for _, tc := range []struct {
		domain string
		want   []string
	}{
		{"lan.test", []string{"192.168.1.10:5269"}},
		{"srv.test", []string{"xmpp1.srv.test:5270", "xmpp2.srv.test:5271", "srv.test:5269"}},
		{"nowhere.test", []string{"nowhere.test:5269"}},
		{"none.test", nil},
	} {
		if got := s.resolve(context.Background(), tc.domain); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.domain, got, tc.want)
		}
	}
	if want := []string{"_xmpp-server._tcp.srv.test", "_xmpp-server._tcp.nowhere.test", "_xmpp-server._tcp.none.test"}; !slices.Equal(dns.asked, want) {
		t.Errorf("SRV lookups %v, want %v (a static route needs none)", dns.asked, want)
	}
	// A resolver failure that is not NXDOMAIN still falls back to the domain.
	s.cfg.LookupSRV = func(context.Context, string, string, string) (string, []*net.SRV, error) {
		return "", nil, errors.New("server misbehaving")
	}
	if got := s.resolve(context.Background(), "x.test"); !slices.Equal(got, []string{"x.test:5269"}) {
		t.Errorf("after a resolver failure: %v", got)
	}
}

func TestKey(t *testing.T) {
	s := New(Config{Domain: "a.test", Secret: []byte("s")}, nil, quiet())
	k := s.key("b.test", "a.test", "id1")
	if k != s.key("b.test", "a.test", "id1") || k == s.key("b.test", "a.test", "id2") || k == s.key("c.test", "a.test", "id1") {
		t.Fatal("dialback keys must depend on the receiving domain and the stream id, and nothing random")
	}
}

// A peer's to must be our domain and its from a domain it authenticated,
// both compared prepared (RFC 7622 §3.2); malformed addresses are
// improper-addressing (RFC 6120 §4.9.3.12).
func TestInboundCheck(t *testing.T) {
	s := New(Config{Domain: "a.test", Secret: []byte("s")}, nil, quiet())
	in := &inbound{svc: s, authed: map[string]bool{"b.test": true}}
	for _, tc := range []struct {
		to, from string
		want     stanza.StreamCondition
	}{
		{"alice@a.test", "bob@b.test/r", ""},
		{"alice@A.TEST.", "bob@B.Test./r", ""},
		{"alice@ａ.ｔｅｓｔ", "b.test", ""},
		{"alice@c.test", "bob@b.test", stanza.StreamHostUnknown},
		{"alice@a.test", "alice@a.test/x", stanza.StreamInvalidFrom},
		{"alice@a.test", "alice@A.TEST/x", stanza.StreamInvalidFrom},
		{"alice@a.test", "mallory@c.test", stanza.StreamInvalidFrom},
		{"alice@a.test", "a@b@b.test", stanza.StreamImproperAddressing},
		{"a@b@a.test", "bob@b.test", stanza.StreamImproperAddressing},
		{"alice@a.test", "", stanza.StreamImproperAddressing},
		{"", "bob@b.test", stanza.StreamImproperAddressing},
	} {
		st := stanza.Stanza{To: []byte(tc.to), From: []byte(tc.from)}
		if got, _ := in.check(&st); got != tc.want {
			t.Errorf("to %q from %q: %q, want %q", tc.to, tc.from, got, tc.want)
		}
	}
}
