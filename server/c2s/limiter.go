package c2s

import (
	"math"
	"net"
	"sync"
	"time"
)

// AuthLimiter bounds password guessing across connections with token
// buckets, one per source address and one per account.
//
// Every login attempt takes a token from its address's bucket before any
// credential is checked, and gets it back only when the login succeeds. So
// the number of attempts in flight from one address is bounded by its
// bucket, however many connections it opens in parallel (a delay per
// connection bounds nothing: 200 parallel connections each waiting made
// 1,700 guesses a minute). An empty address bucket refuses the attempt at
// once with <temporary-auth-failure/> (RFC 6120 §6.5.12).
//
// The account bucket is taken when the attempt names its account. Once an
// account's bucket is empty (it is being guessed from many addresses),
// attempts for it are refused only from addresses that failed for it
// recently, so its owner can still log in from anywhere else.
//
// Both tables are bounded: entries that carry no information any more (a
// full bucket, no recent failure) are dropped a few at a time as the
// tables are used, and past maxEntries the least recently used entry
// goes. No operation walks a whole table.
type AuthLimiter struct {
	perAddr    float64 // bucket size and refill per minute, per address
	perAccount float64 // the same per account
	maxEntries int     // per table
	memory     time.Duration
	now        func() time.Time

	mu       sync.Mutex
	addrs    lru[bucket]
	accounts lru[account]
}

// bucket is a token bucket refilled continuously at its size per minute.
type bucket struct {
	tokens float64
	last   time.Time // when tokens was last brought up to date
}

// account is an account's bucket and the addresses that recently failed
// to log in to it.
type account struct {
	bucket
	failed []failedAddr // oldest first, at most maxFailedAddrs
}

type failedAddr struct {
	ip   string
	when time.Time
}

const (
	// defaultMaxEntries bounds each table of the limiter.
	defaultMaxEntries = 16384
	// maxFailedAddrs bounds the addresses remembered per account; past
	// it the oldest is forgotten (and may try once more).
	maxFailedAddrs = 64
	// failureMemory is how long an address that failed for an account
	// counts as suspect for it.
	failureMemory = 10 * time.Minute
	// expireSteps is how many stale entries one operation may drop.
	expireSteps = 2
)

// NewAuthLimiter returns a limiter allowing perAddrPerMinute failed
// attempts per source address (limits.auth_failures_per_minute) and
// perAccountPerMinute per account (limits.auth_failures_per_account),
// each as a bucket of that size refilled over a minute.
func NewAuthLimiter(perAddrPerMinute, perAccountPerMinute int) *AuthLimiter {
	return &AuthLimiter{
		perAddr:    float64(max(perAddrPerMinute, 1)),
		perAccount: float64(max(perAccountPerMinute, 1)),
		maxEntries: defaultMaxEntries,
		memory:     failureMemory,
		now:        time.Now,
	}
}

func hostOf(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return h
}

// refill brings b up to date at now for a bucket of size per minute.
func (b *bucket) refill(now time.Time, size float64) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(size, b.tokens+size*el.Minutes())
	}
	b.last = now
}

// take removes a token, or reports how long until one is there.
func (b *bucket) take(size float64) (wait time.Duration, ok bool) {
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / size * float64(time.Minute)), false
}

// full reports whether b would be full at now: it says nothing then.
func (b *bucket) full(now time.Time, size float64) bool {
	return b.tokens+size*now.Sub(b.last).Minutes() >= size
}

// Begin takes a token from ip's bucket for a new attempt. When the bucket
// is empty the attempt must be refused; wait says when a token will be
// there.
func (l *AuthLimiter) Begin(ip string) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	b := l.addrs.get(ip)
	if b == nil {
		b = l.addrs.put(ip, bucket{tokens: l.perAddr, last: now}, l.maxEntries)
	}
	b.refill(now, l.perAddr)
	return b.take(l.perAddr)
}

// Account is called once the attempt from ip names its account, before
// the credentials are checked. It takes a token from the account's
// bucket (taken reports it), or, when the bucket is empty, refuses the
// attempt if ip failed for this account recently (wait says when the
// bucket has a token again). An empty bucket does not refuse an address
// that has not failed: that is how the owner still gets in.
func (l *AuthLimiter) Account(ip, local string) (wait time.Duration, taken, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.expire(now)
	a := l.accounts.get(local)
	if a == nil {
		a = l.accounts.put(local, account{bucket: bucket{tokens: l.perAccount, last: now}}, l.maxEntries)
	}
	a.refill(now, l.perAccount)
	wait, taken = a.take(l.perAccount)
	if taken {
		return 0, true, true
	}
	for _, f := range a.failed {
		if f.ip == ip && now.Sub(f.when) < l.memory {
			return wait, false, false
		}
	}
	return 0, false, true
}

// Succeeded gives back the tokens a successful login took: its address's,
// and its account's when accountTaken.
func (l *AuthLimiter) Succeeded(ip, local string, accountTaken bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if b := l.addrs.get(ip); b != nil {
		b.refill(now, l.perAddr)
		b.tokens = math.Min(l.perAddr, b.tokens+1)
	}
	a := l.accounts.get(local)
	if a == nil {
		return
	}
	if accountTaken {
		a.refill(now, l.perAccount)
		a.tokens = math.Min(l.perAccount, a.tokens+1)
	}
	a.forget(ip) // it knows the password
}

// forget drops ip from the addresses that failed for the account.
func (a *account) forget(ip string) {
	for i := range a.failed {
		if a.failed[i].ip == ip {
			a.failed = append(a.failed[:i], a.failed[i+1:]...)
			return
		}
	}
}

// Failed records that ip failed to log in to local, which makes ip
// suspect for that account for a while. The tokens stay taken.
func (l *AuthLimiter) Failed(ip, local string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a := l.accounts.get(local)
	if a == nil {
		return // the account was forgotten meanwhile
	}
	a.forget(ip)
	if len(a.failed) >= maxFailedAddrs {
		copy(a.failed, a.failed[1:])
		a.failed = a.failed[:len(a.failed)-1]
	}
	a.failed = append(a.failed, failedAddr{ip: ip, when: now})
}

// expire drops a few least recently used entries that say nothing any
// more. Called with l.mu held.
func (l *AuthLimiter) expire(now time.Time) {
	for i := 0; i < expireSteps; i++ {
		n := l.addrs.head
		if n == nil || !n.val.full(now, l.perAddr) {
			break
		}
		l.addrs.remove(n)
	}
	for i := 0; i < expireSteps; i++ {
		n := l.accounts.head
		if n == nil || !n.val.full(now, l.perAccount) {
			break
		}
		if k := len(n.val.failed); k > 0 && now.Sub(n.val.failed[k-1].when) < l.memory {
			break
		}
		l.accounts.remove(n)
	}
}

// Len is how many addresses and accounts the limiter tracks.
func (l *AuthLimiter) Len() (addrs, accounts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs.m), len(l.accounts.m)
}

// lru is a map whose entries are kept in order of last use, so the
// stalest can be found and dropped without walking the map.
type lru[V any] struct {
	m          map[string]*lruNode[V]
	head, tail *lruNode[V] // least and most recently used
}

type lruNode[V any] struct {
	key        string
	val        V
	prev, next *lruNode[V]
}

// get returns the value for k, marking it used, or nil.
func (l *lru[V]) get(k string) *V {
	n := l.m[k]
	if n == nil {
		return nil
	}
	l.unlink(n)
	l.pushBack(n)
	return &n.val
}

// put adds k (not present), dropping the least recently used entry first
// when the map already holds limit entries.
func (l *lru[V]) put(k string, v V, limit int) *V {
	if l.m == nil {
		l.m = make(map[string]*lruNode[V])
	}
	if len(l.m) >= limit && l.head != nil {
		l.remove(l.head)
	}
	n := &lruNode[V]{key: k, val: v}
	l.m[k] = n
	l.pushBack(n)
	return &n.val
}

func (l *lru[V]) remove(n *lruNode[V]) {
	l.unlink(n)
	delete(l.m, n.key)
}

func (l *lru[V]) unlink(n *lruNode[V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

func (l *lru[V]) pushBack(n *lruNode[V]) {
	n.prev = l.tail
	if l.tail != nil {
		l.tail.next = n
	} else {
		l.head = n
	}
	l.tail = n
}
