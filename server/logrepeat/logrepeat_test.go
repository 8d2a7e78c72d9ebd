package logrepeat

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock with timers that fire when a test moves
// the time past them.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), f})
}

// Advance moves the clock and runs the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t.f)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

func newTest(perMinute int) (*slog.Logger, *bytes.Buffer, *fakeClock, *Handler) {
	var buf bytes.Buffer
	clk := &fakeClock{now: time.Unix(1_000_000, 0)}
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), perMinute)
	h.st.now = clk.Now
	h.st.afterFunc = clk.AfterFunc
	return slog.New(h), &buf, clk, h
}

func lines(buf *bytes.Buffer, s string) int {
	n := 0
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func TestRepeatsAreLimited(t *testing.T) {
	log, buf, clk, _ := newTest(3)
	for i := 0; i < 100; i++ {
		// Different attributes, as a flood from many ports would have.
		log.With("remote", fmt.Sprintf("10.0.0.1:%d", i)).Warn("refusing connection")
	}
	log.Info("something else")
	if n := lines(buf, "refusing connection"); n != 3 {
		t.Fatalf("%d lines of the flood written in the window, want 3:\n%s", n, buf)
	}
	if n := lines(buf, "something else"); n != 1 {
		t.Fatalf("another message was limited too:\n%s", buf)
	}
	// The same text at another level is another message.
	log.Error("refusing connection")
	if n := lines(buf, "level=ERROR msg=\"refusing connection\""); n != 1 {
		t.Fatalf("the same message at another level was suppressed:\n%s", buf)
	}
	// The window ends: one summary line counts what was dropped.
	clk.Advance(time.Minute)
	if n := lines(buf, "refusing connection … 97 similar lines suppressed"); n != 1 {
		t.Fatalf("want one summary of 97 suppressed lines:\n%s", buf)
	}
	// A new window lets lines through again, and the summary is not repeated.
	log.Warn("refusing connection")
	if n := lines(buf, "level=WARN msg=\"refusing connection\""); n != 4 {
		t.Fatalf("the next window's first line was not written:\n%s", buf)
	}
	clk.Advance(2 * time.Minute)
	if n := lines(buf, "similar lines suppressed"); n != 1 {
		t.Fatalf("summaries: %d, want 1:\n%s", n, buf)
	}
}

// TestSummaryBeforeNextLine: when the next line of a message comes after
// its window ended and before the timer ran, the summary is written first,
// and the late timer writes nothing.
func TestSummaryBeforeNextLine(t *testing.T) {
	log, buf, clk, h := newTest(1)
	log.Warn("flood")
	log.Warn("flood")
	log.Warn("flood")
	h.st.mu.Lock()
	h.st.now = func() time.Time { return clk.Now().Add(61 * time.Second) }
	h.st.mu.Unlock()
	log.Warn("flood")
	out := buf.String()
	i, j := strings.Index(out, "2 similar lines suppressed"), strings.LastIndex(out, "msg=flood")
	if i < 0 || j < i {
		t.Fatalf("want the summary, then the next line:\n%s", out)
	}
	clk.Advance(2 * time.Minute)
	if n := lines(buf, "similar lines suppressed"); n != 1 {
		t.Fatalf("the summary was written %d times:\n%s", n, buf)
	}
}

// TestBoundedKeys: distinct messages beyond the table's size share one
// budget, so memory stays bounded whatever is logged.
func TestBoundedKeys(t *testing.T) {
	log, buf, clk, h := newTest(2)
	h.st.maxKeys = 10
	for i := 0; i < 1000; i++ {
		log.Info(fmt.Sprintf("message %d", i))
	}
	if n := len(h.st.entries); n > 10 {
		t.Fatalf("%d messages tracked, bound 10", n)
	}
	if n := lines(buf, "msg=\"message "); n != 12 {
		t.Fatalf("%d lines written, want 10 tracked + 2 from the shared budget", n)
	}
	// Once their windows are over, old messages make room for new ones.
	clk.Advance(time.Minute)
	log.Info("fresh")
	if _, ok := h.st.entries[key{slog.LevelInfo, "fresh"}]; !ok {
		t.Fatal("a new message found no room after the old windows ended")
	}
}

func TestDisabledAndEnabled(t *testing.T) {
	var buf bytes.Buffer
	h := New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}), 0)
	log := slog.New(h)
	for i := 0; i < 50; i++ {
		log.Info("x")
	}
	if n := lines(&buf, "msg=x"); n != 50 {
		t.Fatalf("a zero limit should pass everything, got %d", n)
	}
	if h.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("Enabled does not follow the wrapped handler")
	}
	g := slog.New(New(slog.NewTextHandler(&buf, nil), 5).WithGroup("g"))
	g.Info("grouped", "k", 1)
	if !strings.Contains(buf.String(), "g.k=1") {
		t.Fatalf("group lost:\n%s", buf.String())
	}
}
