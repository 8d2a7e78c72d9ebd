package c2s

import (
	"net"
	"sync"
	"time"
)

// AuthLimiter slows password guessing: it counts failed logins per source
// address over a sliding minute, and once an address is over its budget
// every further attempt from it waits before it is answered. Waiting is
// done by the offending connection's own goroutine, so nobody else is
// slowed.
type AuthLimiter struct {
	perMinute int
	mu        sync.Mutex
	byIP      map[string]*failures
	now       func() time.Time
}

type failures struct {
	start time.Time // start of the current one-minute window
	count int
}

// NewAuthLimiter returns a limiter allowing perMinute failures per address
// each minute before it starts to delay.
func NewAuthLimiter(perMinute int) *AuthLimiter {
	return &AuthLimiter{perMinute: perMinute, byIP: make(map[string]*failures), now: time.Now}
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

// Delay is how long an attempt from ip must wait before being answered:
// zero while the address is within budget, then growing by a second per
// failure over budget, capped at ten seconds.
func (l *AuthLimiter) Delay(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.byIP[ip]
	if f == nil || l.now().Sub(f.start) > time.Minute {
		return 0
	}
	over := f.count - l.perMinute
	if over < 0 {
		return 0
	}
	return min(time.Duration(over+1)*time.Second, 10*time.Second)
}

// Fail records a failed login from ip.
func (l *AuthLimiter) Fail(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.byIP) > 10000 {
		for k, f := range l.byIP {
			if now.Sub(f.start) > time.Minute {
				delete(l.byIP, k)
			}
		}
	}
	f := l.byIP[ip]
	if f == nil || now.Sub(f.start) > time.Minute {
		l.byIP[ip] = &failures{start: now, count: 1}
		return
	}
	f.count++
}
