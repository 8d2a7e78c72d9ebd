package datagram

import (
	"strconv"
	"testing"
	"time"
)

// The failure table ages windows out after their minute and, when full,
// drops the oldest address instead of forgetting every one (issue 12,
// item 6).
func TestFailuresAgeAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newFailures(2)
	f.now = func() time.Time { return now }
	f.max = 3
	f.add("a")
	f.add("a")
	if !f.over("a") {
		t.Fatal("two failures with limit 2 should refuse a")
	}
	now = now.Add(10 * time.Second)
	f.add("b")
	f.add("b")
	f.add("c")
	// Full (3 addresses): d pushes out the oldest, a, and keeps b and c.
	f.add("d")
	if f.over("a") {
		t.Fatal("the oldest window should have gone when the table was full")
	}
	if !f.over("b") || len(f.by) != 3 || f.order.Len() != 3 {
		t.Fatalf("b should still be refused and the table hold 3: over(b)=%v, %d/%d", f.over("b"), len(f.by), f.order.Len())
	}
	// A minute after b's first failure its window is over and removed
	// at the next add.
	now = now.Add(61 * time.Second)
	if f.over("b") {
		t.Fatal("b's window is over")
	}
	f.add("e")
	if len(f.by) != 1 || f.order.Len() != 1 {
		t.Fatalf("expired windows kept: %d", len(f.by))
	}
	// Many addresses never grow it past max.
	for i := range 100 {
		f.add(strconv.Itoa(i))
	}
	if len(f.by) != 3 || f.order.Len() != 3 {
		t.Fatalf("table holds %d addresses, max 3", len(f.by))
	}
}
