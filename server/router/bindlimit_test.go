package router

import (
	"fmt"
	"sync"
	"testing"
)

// TestBindLimitAtomic: many binds for one user at the same moment never
// leave more than the limit bound (the check and the bind are one step);
// a bind that replaces a bound resource is allowed at the limit.
func TestBindLimitAtomic(t *testing.T) {
	const limit, n = 3, 64
	r := New()
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		s := sess(t, fmt.Sprintf("alice@x/r%d", i), true, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, ok := r.BindLimit(s, limit); ok {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := len(r.Sessions([]byte("alice@x"))); got != limit || accepted != limit || r.Count() != limit {
		t.Fatalf("bound %d, accepted %d, count %d; limit %d", got, accepted, r.Count(), limit)
	}
	bound := r.Sessions([]byte("alice@x"))[0]
	again := sess(t, bound.JID().String(), true, 0)
	old, ok := r.BindLimit(again, limit)
	if !ok || old != bound {
		t.Fatalf("replacing a bound resource at the limit: ok=%v old=%v", ok, old)
	}
	if _, ok := r.BindLimit(sess(t, "alice@x/new", true, 0), limit); ok {
		t.Fatal("a new resource was bound past the limit")
	}
	if _, ok := r.BindLimit(sess(t, "bob@x/one", true, 0), limit); !ok {
		t.Fatal("another user is limited too")
	}
	if _, ok := r.BindLimit(sess(t, "alice@x/unlimited", true, 0), 0); !ok {
		t.Fatal("limit 0 should not limit")
	}
}
