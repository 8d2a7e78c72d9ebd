package s2s

import (
	"context"
	"io"
	"log/slog"
	"testing"
)

func TestResolveAndKey(t *testing.T) {
	s := New(Config{Domain: "a.test", Secret: []byte("s"), Routes: map[string]string{"lan.test": "192.168.1.10:5269"}}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := s.resolve(context.Background(), "lan.test"); len(got) != 1 || got[0] != "192.168.1.10:5269" {
		t.Fatalf("static route: %v", got)
	}
	// No route and no SRV record: the domain itself on 5269 (RFC 6120 §3.2.2).
	if got := s.resolve(context.Background(), "nowhere.invalid"); got[len(got)-1] != "nowhere.invalid:5269" {
		t.Fatalf("fallback: %v", got)
	}
	k := s.key("b.test", "a.test", "id1")
	if k != s.key("b.test", "a.test", "id1") || k == s.key("b.test", "a.test", "id2") || k == s.key("c.test", "a.test", "id1") {
		t.Fatal("dialback keys must depend on the receiving domain and the stream id, and nothing random")
	}
}
