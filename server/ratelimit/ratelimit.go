// Package ratelimit holds what Roost's per-address limits are built from:
// HostOf, the key a remote address is counted under; Table, a bounded
// keyed table that forgets its stalest entries; and the two rules kept in
// it: Bucket, a token bucket (the client login limiter), and Failures,
// failures counted per key in a fixed window (DTLS handshakes).
//
// A limit keyed by a client-chosen value (an address, an account name)
// must not let the client grow the server's memory, so every table here
// is bounded and forgets incrementally, never by walking itself whole.
// The package imports nothing of Roost.
package ratelimit

import (
	"math"
	"net"
	"sync"
	"time"
)

// HostOf is the host part of a remote address, without its port: the key
// per-address limits count under, since one host opens many ports. An
// address that has no port is returned whole; nil gives "".
func HostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// Table is a map whose entries are kept in order of last use, so the
// stalest can be found and dropped without walking the map. It is not
// safe for concurrent use: its owner holds a lock around it. The zero
// value is an empty table.
type Table[V any] struct {
	m          map[string]*node[V]
	head, tail *node[V] // least and most recently used
}

type node[V any] struct {
	key        string
	val        V
	prev, next *node[V]
}

// Get returns the value for key, marking it used, or nil.
func (t *Table[V]) Get(key string) *V {
	n := t.m[key]
	if n == nil {
		return nil
	}
	t.unlink(n)
	t.pushBack(n)
	return &n.val
}

// Peek returns the value for key without marking it used, or nil: a
// table read only with Peek keeps its entries in order of insertion.
func (t *Table[V]) Peek(key string) *V {
	if n := t.m[key]; n != nil {
		return &n.val
	}
	return nil
}

// Put adds key, which must not be present, as the most recently used
// entry. When the table already holds max entries it first drops the
// least recently used, so it never holds more than max.
func (t *Table[V]) Put(key string, v V, max int) *V {
	if t.m == nil {
		t.m = make(map[string]*node[V])
	}
	for len(t.m) >= max && t.head != nil {
		t.remove(t.head)
	}
	n := &node[V]{key: key, val: v}
	t.m[key] = n
	t.pushBack(n)
	return &n.val
}

// Expire drops least recently used entries while stale says they carry
// nothing any more, at most steps of them (steps < 0: no bound). Dropping
// a few per operation keeps every operation short; each entry is dropped
// once, so an unbounded call is still cheap over time.
func (t *Table[V]) Expire(steps int, stale func(*V) bool) {
	for ; steps != 0 && t.head != nil && stale(&t.head.val); steps-- {
		t.remove(t.head)
	}
}

// Len is how many entries the table holds.
func (t *Table[V]) Len() int { return len(t.m) }

func (t *Table[V]) remove(n *node[V]) {
	t.unlink(n)
	delete(t.m, n.key)
}

func (t *Table[V]) unlink(n *node[V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		t.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		t.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

func (t *Table[V]) pushBack(n *node[V]) {
	n.prev = t.tail
	if t.tail != nil {
		t.tail.next = n
	} else {
		t.head = n
	}
	t.tail = n
}

// Bucket is a token bucket refilled continuously at its size per minute.
// The size is passed to each method rather than stored, so a table of
// buckets of one size spends no memory on it.
type Bucket struct {
	Tokens float64
	Last   time.Time // when Tokens was last brought up to date
}

// FullBucket is a bucket of size tokens as of now.
func FullBucket(now time.Time, size float64) Bucket {
	return Bucket{Tokens: size, Last: now}
}

// Refill brings b up to date at now.
func (b *Bucket) Refill(now time.Time, size float64) {
	if el := now.Sub(b.Last); el > 0 {
		b.Tokens = math.Min(size, b.Tokens+size*el.Minutes())
	}
	b.Last = now
}

// Take removes a token, or reports how long until one is there.
func (b *Bucket) Take(size float64) (wait time.Duration, ok bool) {
	if b.Tokens >= 1 {
		b.Tokens--
		return 0, true
	}
	return time.Duration((1 - b.Tokens) / size * float64(time.Minute)), false
}

// Give puts back a token taken for an attempt that turned out fine,
// never filling b past its size.
func (b *Bucket) Give(now time.Time, size float64) {
	b.Refill(now, size)
	b.Tokens = math.Min(size, b.Tokens+1)
}

// Full reports whether b would be full at now: a full bucket says nothing
// a fresh one would not, so it can be forgotten.
func (b *Bucket) Full(now time.Time, size float64) bool {
	return b.Tokens+size*now.Sub(b.Last).Minutes() >= size
}

// Failures counts failures per key in fixed windows: a key's first
// failure opens its window, and once limit failures fall in it the key is
// refused until the window is over. Windows are dropped once over; past
// max keys the oldest window goes first, so the table is bounded without
// forgetting every key at once. It is safe for concurrent use.
type Failures struct {
	limit  int
	window time.Duration
	max    int
	now    func() time.Time

	mu sync.Mutex
	t  Table[failWindow] // read with Peek only: oldest start first
}

type failWindow struct {
	start time.Time
	n     int
}

// NewFailures returns a table refusing a key once it has limit failures
// within window of its first, remembering at most max keys.
func NewFailures(limit int, window time.Duration, max int) *Failures {
	return &Failures{limit: limit, window: window, max: max, now: time.Now}
}

// Add counts a failure for key.
func (f *Failures) Add(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.t.Expire(-1, func(w *failWindow) bool { return now.Sub(w.start) > f.window })
	if w := f.t.Peek(key); w != nil {
		w.n++
		return
	}
	f.t.Put(key, failWindow{start: now, n: 1}, f.max)
}

// Over reports whether key is refused: its window is still open and holds
// limit failures.
func (f *Failures) Over(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.t.Peek(key)
	return w != nil && f.now().Sub(w.start) <= f.window && w.n >= f.limit
}

// Len is how many keys the table remembers.
func (f *Failures) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t.Len()
}
