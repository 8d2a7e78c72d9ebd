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
		if _, ok := l.Begin("10.0.0.1", time.Time{}); !ok {
			t.Fatalf("attempt %d refused within the budget", i)
		}
	}
	wait, ok := l.Begin("10.0.0.1", time.Time{})
	if ok {
		t.Fatal("attempt over the budget allowed")
	}
	if wait <= 0 || wait > 20*time.Second {
		t.Fatalf("wait %s, want up to the 20s a token takes to refill", wait)
	}
	if _, ok := l.Begin("10.0.0.2", time.Time{}); !ok {
		t.Fatal("another address is refused")
	}
	*now = now.Add(wait)
	if _, ok := l.Begin("10.0.0.1", time.Time{}); !ok {
		t.Fatalf("no token after the announced wait %s", wait)
	}
	if _, ok := l.Begin("10.0.0.1", time.Time{}); ok {
		t.Fatal("the refill gave more than one token")
	}
	// A success gives its token back.
	*now = now.Add(20 * time.Second)
	if _, ok := l.Begin("10.0.0.1", time.Time{}); !ok {
		t.Fatal("refused after a refill")
	}
	l.Succeeded("10.0.0.1", "alice", false)
	if _, ok := l.Begin("10.0.0.1", time.Time{}); !ok {
		t.Fatal("a successful login's token was not given back")
	}
	// The bucket never holds more than its size.
	*now = now.Add(time.Hour)
	for i := 0; i < 3; i++ {
		l.Begin("10.0.0.1", time.Time{})
	}
	if _, ok := l.Begin("10.0.0.1", time.Time{}); ok {
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
		l.Begin(ip, time.Time{})
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
		l.Begin("172.16.0.1", time.Time{})
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
		l.Begin("172.16.0.1", time.Time{})
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

// Attempts that find the address's bucket emptied by attempts still in
// flight wait for one of them to end instead of being refused: many
// clients behind one address log in at once. A success gives its token
// back to a waiter; once every token was spent on failures, waiters are
// refused.
func TestBeginWaitsForInFlight(t *testing.T) {
	l := NewAuthLimiter(2, 30)
	until := time.Now().Add(5 * time.Second)
	for i := 0; i < 2; i++ {
		if _, ok := l.Begin("10.0.0.9", until); !ok {
			t.Fatalf("attempt %d refused with tokens left", i)
		}
	}
	got := make(chan bool, 1)
	go func() { _, ok := l.Begin("10.0.0.9", until); got <- ok }()
	// The first attempt succeeds: its token goes to the waiter.
	l.Succeeded("10.0.0.9", "alice", false)
	l.End("10.0.0.9")
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the waiting attempt was refused although a token came back")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting attempt did not get the returned token")
	}
	// The other two fail: their tokens stay spent, and a new attempt is
	// refused once nothing is in flight.
	go func() { _, ok := l.Begin("10.0.0.9", until); got <- ok }()
	l.End("10.0.0.9")
	l.End("10.0.0.9")
	select {
	case ok := <-got:
		if ok {
			t.Fatal("an attempt got through with every token spent on failures")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the attempt kept waiting with nothing in flight")
	}
}
