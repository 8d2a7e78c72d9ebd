package c2s

import (
	"fmt"
	"testing"
	"time"
)

func newTestLimiter(perAddr, perAccount int) (*AuthLimiter, *time.Time) {
	now := time.Unix(1000, 0)
	l := NewAuthLimiter(perAddr, perAccount)
	l.now = func() time.Time { return now }
	return l, &now
}

// TestAddressBucket: an address gets its budget of attempts at once,
// then one more per refill interval; another address is not affected; a
// success gives its token back.
func TestAddressBucket(t *testing.T) {
	l, now := newTestLimiter(3, 100)
	for i := 0; i < 3; i++ {
		if _, ok := l.Begin("10.0.0.1"); !ok {
			t.Fatalf("attempt %d refused within the budget", i)
		}
	}
	wait, ok := l.Begin("10.0.0.1")
	if ok {
		t.Fatal("attempt over the budget allowed")
	}
	if wait <= 0 || wait > 20*time.Second {
		t.Fatalf("wait %s, want up to the 20s a token takes to refill", wait)
	}
	if _, ok := l.Begin("10.0.0.2"); !ok {
		t.Fatal("another address is refused")
	}
	*now = now.Add(wait)
	if _, ok := l.Begin("10.0.0.1"); !ok {
		t.Fatalf("no token after the announced wait %s", wait)
	}
	if _, ok := l.Begin("10.0.0.1"); ok {
		t.Fatal("the refill gave more than one token")
	}
	// A success gives its token back.
	*now = now.Add(20 * time.Second)
	if _, ok := l.Begin("10.0.0.1"); !ok {
		t.Fatal("refused after a refill")
	}
	l.Succeeded("10.0.0.1", "alice", false)
	if _, ok := l.Begin("10.0.0.1"); !ok {
		t.Fatal("a successful login's token was not given back")
	}
	// The bucket never holds more than its size.
	*now = now.Add(time.Hour)
	for i := 0; i < 3; i++ {
		l.Begin("10.0.0.1")
	}
	if _, ok := l.Begin("10.0.0.1"); ok {
		t.Fatal("an idle hour filled the bucket past its size")
	}
}

// TestAccountBucket: once an account's bucket is empty, addresses that
// failed for it are refused, others are not.
func TestAccountBucket(t *testing.T) {
	l, now := newTestLimiter(100, 3)
	for i := 0; i < 3; i++ {
		ip := fmt.Sprintf("10.0.1.%d", i)
		if _, taken, ok := l.Account(ip, "alice"); !ok || !taken {
			t.Fatalf("attempt %d: taken=%v ok=%v within the budget", i, taken, ok)
		}
		l.Failed(ip, "alice")
	}
	wait, _, ok := l.Account("10.0.1.0", "alice")
	if ok {
		t.Fatal("an address that failed for the drained account is allowed")
	}
	if wait <= 0 || wait > 20*time.Second {
		t.Fatalf("wait %s", wait)
	}
	// The owner, from an address that did not fail, gets in.
	_, taken, ok := l.Account("192.168.1.5", "alice")
	if !ok || taken {
		t.Fatalf("owner from a clean address: taken=%v ok=%v, want allowed without a token", taken, ok)
	}
	l.Succeeded("192.168.1.5", "alice", taken)
	// Other accounts are not affected.
	if _, _, ok := l.Account("10.0.1.0", "bob"); !ok {
		t.Fatal("another account is refused")
	}
	// After a refill the suspect address may try again, taking a token.
	*now = now.Add(20 * time.Second)
	if _, taken, ok := l.Account("10.0.1.0", "alice"); !ok || !taken {
		t.Fatalf("after a refill: taken=%v ok=%v", taken, ok)
	}
	if _, _, ok := l.Account("10.0.1.1", "alice"); ok {
		t.Fatal("a second suspect address shared the single refilled token")
	}
	// Suspicion fades: after failureMemory the address is clean again.
	*now = now.Add(failureMemory)
	for i := 0; i < 3; i++ {
		l.Account("10.0.9.9", "alice")
	}
	if _, _, ok := l.Account("10.0.1.1", "alice"); !ok {
		t.Fatal("an address is still suspect after failureMemory")
	}
}

// TestLimiterBounded: the tables never grow past maxEntries, and stale
// entries go a few at a time as the limiter is used.
func TestLimiterBounded(t *testing.T) {
	l, now := newTestLimiter(5, 5)
	l.maxEntries = 100
	for i := 0; i < 1000; i++ {
		ip := fmt.Sprintf("10.%d.%d.1", i/256, i%256)
		l.Begin(ip)
		l.Account(ip, fmt.Sprintf("user%d", i))
		l.Failed(ip, fmt.Sprintf("user%d", i))
	}
	if a, u := l.Len(); a != 100 || u != 100 {
		t.Fatalf("tracked %d addresses and %d accounts, bound 100", a, u)
	}
	// A minute later the address buckets are full again: each use of the
	// limiter drops up to expireSteps of them.
	*now = now.Add(time.Minute)
	for i := 0; i < 60; i++ {
		l.Begin("172.16.0.1")
	}
	if a, _ := l.Len(); a > 1 {
		t.Fatalf("%d addresses still tracked after their buckets refilled", a)
	}
	// Accounts with a recent failure stay until it is forgotten.
	if _, u := l.Len(); u != 100 {
		t.Fatalf("%d accounts tracked, want the 100 with recent failures", u)
	}
	*now = now.Add(failureMemory)
	for i := 0; i < 60; i++ {
		l.Begin("172.16.0.1")
	}
	if _, u := l.Len(); u > 0 {
		t.Fatalf("%d accounts still tracked after their failures were forgotten", u)
	}
	// A suspect list per account is bounded too.
	for i := 0; i < 3*maxFailedAddrs; i++ {
		l.Account("x", "carol")
		l.Failed(fmt.Sprintf("10.9.%d.%d", i/256, i%256), "carol")
	}
	if n := len(l.accounts.Peek("carol").failed); n != maxFailedAddrs {
		t.Fatalf("%d failed addresses remembered, bound %d", n, maxFailedAddrs)
	}
}
