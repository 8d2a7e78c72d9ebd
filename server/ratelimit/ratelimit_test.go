package ratelimit

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// The failure table ages windows out after their minute and, when full,
// drops the oldest address instead of forgetting every one (issue 12,
// item 6). Moved here from devices/datagram with the table.
func TestFailuresAgeAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	f := NewFailures(2, time.Minute, 3)
	f.now = func() time.Time { return now }
	f.Add("a")
	f.Add("a")
	if !f.Over("a") {
		t.Fatal("two failures with limit 2 should refuse a")
	}
	now = now.Add(10 * time.Second)
	f.Add("b")
	f.Add("b")
	f.Add("c")
	// Full (3 addresses): d pushes out the oldest, a, and keeps b and c.
	f.Add("d")
	if f.Over("a") {
		t.Fatal("the oldest window should have gone when the table was full")
	}
	if !f.Over("b") || f.Len() != 3 {
		t.Fatalf("b should still be refused and the table hold 3: over(b)=%v, %d", f.Over("b"), f.Len())
	}
	// A minute after b's first failure its window is over and removed
	// at the next add.
	now = now.Add(61 * time.Second)
	if f.Over("b") {
		t.Fatal("b's window is over")
	}
	f.Add("e")
	if f.Len() != 1 {
		t.Fatalf("expired windows kept: %d", f.Len())
	}
	// Many addresses never grow it past max.
	for i := range 100 {
		f.Add(strconv.Itoa(i))
	}
	if f.Len() != 3 {
		t.Fatalf("table holds %d addresses, max 3", f.Len())
	}
}

// A window is fixed from its first failure: failures later in it do not
// extend it, and under the limit the key is not refused.
func TestFailuresWindowFixed(t *testing.T) {
	now := time.Unix(1000, 0)
	f := NewFailures(3, time.Minute, 10)
	f.now = func() time.Time { return now }
	f.Add("a")
	f.Add("a")
	if f.Over("a") {
		t.Fatal("two failures under a limit of 3 refused")
	}
	now = now.Add(50 * time.Second)
	f.Add("a")
	if !f.Over("a") {
		t.Fatal("three failures within the window not refused")
	}
	now = now.Add(11 * time.Second) // 61s after the first failure
	if f.Over("a") {
		t.Fatal("the window was extended by a later failure")
	}
}

// Get marks an entry used, Peek does not; Put at the bound drops the
// least recently used; Expire stops at the first entry that still says
// something and at its step budget.
func TestTableOrder(t *testing.T) {
	var tb Table[int]
	for i, k := range []string{"a", "b", "c"} {
		tb.Put(k, i, 3)
	}
	tb.Peek("a") // not a use: a stays the least recently used
	tb.Put("d", 3, 3)
	if tb.Peek("a") != nil || tb.Len() != 3 {
		t.Fatalf("Put at the bound kept a (len %d)", tb.Len())
	}
	tb.Get("b") // now c, d, b
	tb.Put("e", 4, 3)
	if tb.Peek("c") != nil || tb.Peek("b") == nil {
		t.Fatal("Put dropped the wrong entry: Get did not mark b used")
	}
	// Order is d, b, e; everything is stale but only 1 step is allowed.
	tb.Expire(1, func(*int) bool { return true })
	if tb.Peek("d") != nil || tb.Len() != 2 {
		t.Fatalf("Expire(1) left %d entries", tb.Len())
	}
	// b is not stale: e behind it stays too.
	tb.Expire(-1, func(v *int) bool { return *v != 1 })
	if tb.Len() != 2 {
		t.Fatalf("Expire went past an entry that is not stale: %d left", tb.Len())
	}
	tb.Expire(-1, func(*int) bool { return true })
	if tb.Len() != 0 || tb.head != nil || tb.tail != nil {
		t.Fatalf("Expire(-1) left %d entries", tb.Len())
	}
}

// A bucket refills at its size per minute, never past its size, and
// tells how long until the next token.
func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := FullBucket(now, 3)
	for i := 0; i < 3; i++ {
		if _, ok := b.Take(3); !ok {
			t.Fatalf("take %d refused from a full bucket", i)
		}
	}
	wait, ok := b.Take(3)
	if ok || wait != 20*time.Second {
		t.Fatalf("empty bucket: ok=%v wait=%s, want refused for 20s", ok, wait)
	}
	if b.Full(now.Add(59*time.Second), 3) || !b.Full(now.Add(time.Minute), 3) {
		t.Fatal("an empty bucket of 3 should be full again after exactly a minute")
	}
	b.Give(now, 3)
	if _, ok := b.Take(3); !ok {
		t.Fatal("a token given back cannot be taken")
	}
	b.Refill(now.Add(time.Hour), 3)
	b.Give(now.Add(time.Hour), 3)
	if b.Tokens != 3 {
		t.Fatalf("bucket holds %v tokens, size 3", b.Tokens)
	}
}

func TestHostOf(t *testing.T) {
	for _, c := range []struct {
		a    net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5222}, "192.0.2.7"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5684}, "2001:db8::1"},
		{&net.UnixAddr{Name: "/run/roost.sock", Net: "unix"}, "/run/roost.sock"},
		{nil, ""},
	} {
		if got := HostOf(c.a); got != c.want {
			t.Errorf("HostOf(%v) = %q, want %q", c.a, got, c.want)
		}
	}
}
