package c2s

import (
	"sync"
	"time"

	"roost/server/ratelimit"
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
	addrs    ratelimit.Table[ratelimit.Bucket]
	accounts ratelimit.Table[account]
	// inflight counts, per address, the attempts holding a token that
	// have not ended yet (at most one per connection, so bounded by
	// limits.connections); concluded wakes attempts waiting for one.
	inflight  map[string]int
	concluded *sync.Cond
}

// account is an account's bucket and the addresses that recently failed
// to log in to it.
type account struct {
	ratelimit.Bucket
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
	l := &AuthLimiter{
		perAddr:    float64(max(perAddrPerMinute, 1)),
		perAccount: float64(max(perAccountPerMinute, 1)),
		maxEntries: defaultMaxEntries,
		memory:     failureMemory,
		now:        time.Now,
		inflight:   make(map[string]int),
	}
	l.concluded = sync.NewCond(&l.mu)
	return l
}

// Begin takes a token from ip's bucket for a new attempt. When the bucket
// is empty the attempt must be refused; wait says when a token will be
// there.
//
// A bucket emptied by attempts still in flight, not by failures, is not
// a reason to refuse: many clients behind one address (a NAT, a gateway's
// own sensors after a power cut) log in at once and succeed. Such an
// attempt waits, until until at the latest, for one of them to end: a
// success gives its token back, a failure keeps it. Every Begin that
// returns ok must be followed by one End.
func (l *AuthLimiter) Begin(ip string, until time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := l.now()
		l.expire(now)
		b := l.addrs.Get(ip)
		if b == nil {
			b = l.addrs.Put(ip, ratelimit.FullBucket(now, l.perAddr), l.maxEntries)
		}
		b.Refill(now, l.perAddr)
		if wait, ok = b.Take(l.perAddr); ok {
			l.inflight[ip]++
			return 0, true
		}
		if l.inflight[ip] == 0 || !time.Now().Before(until) {
			return wait, false
		}
		if timer == nil {
			timer = time.AfterFunc(time.Until(until), func() {
				l.mu.Lock()
				l.concluded.Broadcast()
				l.mu.Unlock()
			})
		}
		l.concluded.Wait()
	}
}

// End marks the end of an attempt Begin let through, whatever its outcome
// (after Succeeded or Failed, or when the client gave up), so that
// attempts waiting in Begin look at the bucket again.
func (l *AuthLimiter) End(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.inflight[ip]; n <= 1 {
		delete(l.inflight, ip)
	} else {
		l.inflight[ip] = n - 1
	}
	l.concluded.Broadcast()
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
	a := l.accounts.Get(local)
	if a == nil {
		a = l.accounts.Put(local, account{Bucket: ratelimit.FullBucket(now, l.perAccount)}, l.maxEntries)
	}
	a.Refill(now, l.perAccount)
	wait, taken = a.Take(l.perAccount)
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
	if b := l.addrs.Get(ip); b != nil {
		b.Give(now, l.perAddr)
	}
	a := l.accounts.Get(local)
	if a == nil {
		return
	}
	if accountTaken {
		a.Give(now, l.perAccount)
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
	a := l.accounts.Get(local)
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
// more: a full bucket, and for an account no failure within l.memory.
// Called with l.mu held.
func (l *AuthLimiter) expire(now time.Time) {
	l.addrs.Expire(expireSteps, func(b *ratelimit.Bucket) bool { return b.Full(now, l.perAddr) })
	l.accounts.Expire(expireSteps, func(a *account) bool {
		if k := len(a.failed); k > 0 && now.Sub(a.failed[k-1].when) < l.memory {
			return false
		}
		return a.Full(now, l.perAccount)
	})
}

// Len is how many addresses and accounts the limiter tracks.
func (l *AuthLimiter) Len() (addrs, accounts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs.Len(), l.accounts.Len()
}
