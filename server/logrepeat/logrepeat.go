// Package logrepeat keeps a flood of identical log lines from filling the
// disk: a slog.Handler wrapper that passes at most N lines with the same
// message and level per minute, then counts the rest and writes one
// summary line for them.
//
// A refused-connection flood (12,000 a second from one address) otherwise
// writes megabytes of the same "refusing connection" line; on a gateway's
// SD card that is wear and a full disk. The key is the message and level
// only, not the attributes (which carry the remote address or JID and so
// differ for every line of a flood).
package logrepeat

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Window is the period over which lines are counted.
const Window = time.Minute

// DefaultMaxKeys bounds how many distinct messages are tracked at once.
// Messages are constant strings in Roost's code, so a few hundred is
// plenty; past the bound, untracked messages share one budget.
const DefaultMaxKeys = 1024

// Handler is the rate-limiting wrapper. Handlers derived with WithAttrs
// and WithGroup share their parent's counts.
type Handler struct {
	next slog.Handler // this handler's view (with attrs and groups)
	st   *state
}

type key struct {
	level slog.Level
	msg   string
}

// state is shared by a Handler and every handler derived from it.
type state struct {
	root      slog.Handler // the wrapped handler as given: summaries go here
	perWindow int
	maxKeys   int
	now       func() time.Time
	afterFunc func(time.Duration, func()) // time.AfterFunc; replaced in tests

	mu       sync.Mutex
	entries  map[key]*entry
	overflow entry // shared by messages that find the table full
}

// entry counts one message's lines in its current window.
type entry struct {
	start      time.Time // when the window began
	passed     int       // lines let through in the window
	suppressed int       // lines dropped in the window
	armed      bool      // a timer will write the summary at the window's end
	gen        uint64    // which timer is the armed one
}

// New wraps next so that at most perMinute lines with the same message
// and level are written per minute. perMinute <= 0 disables the limit.
func New(next slog.Handler, perMinute int) *Handler {
	return &Handler{next: next, st: &state{
		root:      next,
		perWindow: perMinute,
		maxKeys:   DefaultMaxKeys,
		now:       time.Now,
		afterFunc: func(d time.Duration, f func()) { time.AfterFunc(d, f) },
		entries:   make(map[key]*entry),
	}}
}

// Enabled reports whether the wrapped handler handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// WithAttrs returns a handler with attrs that shares h's counts.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), st: h.st}
}

// WithGroup returns a handler with a group that shares h's counts.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), st: h.st}
}

// Handle writes r unless its message has used up this window's budget.
// When a window that suppressed lines is over, the summary is written
// before the next line of that message (or by a timer at the window's
// end, whichever comes first).
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	st := h.st
	if st.perWindow <= 0 {
		return h.next.Handle(ctx, r)
	}
	k := key{r.Level, r.Message}
	st.mu.Lock()
	now := st.now()
	e := st.entries[k]
	if e == nil {
		if len(st.entries) >= st.maxKeys {
			st.expire(now)
		}
		if len(st.entries) < st.maxKeys {
			e = &entry{start: now}
			st.entries[k] = e
		} else {
			e = &st.overflow
			k = key{slog.LevelWarn, "(messages beyond the log limiter's table)"}
		}
	}
	var summary int
	if now.Sub(e.start) >= Window {
		summary = e.suppressed
		*e = entry{start: now, gen: e.gen + 1} // a pending timer is void
	}
	pass := e.passed < st.perWindow
	if pass {
		e.passed++
	} else {
		e.suppressed++
		if !e.armed {
			st.arm(k, e, now)
		}
	}
	st.mu.Unlock()
	if summary > 0 {
		st.writeSummary(ctx, k, summary, now)
	}
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// arm starts the timer that writes e's summary when its window ends.
// Called with st.mu held.
func (st *state) arm(k key, e *entry, now time.Time) {
	e.armed = true
	e.gen++
	gen := e.gen
	st.afterFunc(e.start.Add(Window).Sub(now), func() { st.windowEnd(k, e, gen) })
}

// windowEnd writes the summary of e's window once the window is over,
// unless the next line of the message already did (which voids the timer).
func (st *state) windowEnd(k key, e *entry, gen uint64) {
	st.mu.Lock()
	if !e.armed || e.gen != gen {
		st.mu.Unlock()
		return
	}
	now := st.now()
	if now.Sub(e.start) < Window { // woken early: wait for the rest
		st.arm(k, e, now)
		st.mu.Unlock()
		return
	}
	n := e.suppressed
	e.suppressed = 0
	e.armed = false
	st.mu.Unlock()
	if n > 0 {
		st.writeSummary(context.Background(), k, n, now)
	}
}

// expire drops the entries whose window is over and who have nothing left
// to report. It runs only when the table is full, so a busy logger with a
// handful of messages never sweeps.
func (st *state) expire(now time.Time) {
	for k, e := range st.entries {
		if !e.armed && now.Sub(e.start) >= Window {
			delete(st.entries, k)
		}
	}
}

func (st *state) writeSummary(ctx context.Context, k key, n int, now time.Time) {
	r := slog.NewRecord(now, k.level, fmt.Sprintf("%s … %d similar lines suppressed", k.msg, n), 0)
	r.AddAttrs(slog.Int("suppressed", n), slog.Duration("window", Window))
	if st.root.Enabled(ctx, k.level) {
		st.root.Handle(ctx, r)
	}
}
