package discover

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/brutella/dnssd"
)

func TestFingerprint(t *testing.T) {
	der := []byte("not really DER, any bytes hash the same way")
	sum := sha256.Sum256(der)
	fp := Fingerprint(der)
	if fp != "sha256:"+hex.EncodeToString(sum[:]) || !ValidFingerprint(fp) {
		t.Fatalf("Fingerprint = %q", fp)
	}
	for _, bad := range []string{"", "sha256:", "sha1:" + fp[7:], fp[:len(fp)-1], strings.ToUpper(fp[:7]) + fp[7:], "sha256:" + strings.ToUpper(fp[7:]), fp[:len(fp)-1] + "g"} {
		if ValidFingerprint(bad) {
			t.Errorf("ValidFingerprint(%q) = true", bad)
		}
	}
}

func TestPickAddr(t *testing.T) {
	for _, c := range []struct {
		ips  []string
		want string
	}{
		{[]string{"fe80::1", "2001:db8::1", "192.0.2.7"}, "192.0.2.7"},
		{[]string{"fe80::1", "2001:db8::1"}, "2001:db8::1"},
		{[]string{"fe80::1"}, "fe80::1%eth0"},
		{nil, ""},
	} {
		e := dnssd.BrowseEntry{IfaceName: "eth0"}
		for _, s := range c.ips {
			e.IPs = append(e.IPs, net.ParseIP(s))
		}
		if got := pickAddr(e); got != c.want {
			t.Errorf("pickAddr(%v) = %q, want %q", c.ips, got, c.want)
		}
	}
}

// Find ends with ctx (tests/mdns checks that it finds a real gateway).
func TestFindBoundedByContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, _, err := Find(ctx, "_roost-nobody._udp")
	if err == nil {
		t.Fatal("found a gateway nobody advertises")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Find took %v with a 300ms context", d)
	}
	if _, _, _, err := Find(context.Background(), ".local."); err == nil {
		t.Fatal("no error for an empty service type")
	}
}
