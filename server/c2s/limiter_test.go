package c2s

import (
	"testing"
	"time"
)

func TestAuthLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewAuthLimiter(3)
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if d := l.Delay("10.0.0.1"); d != 0 {
			t.Fatalf("failure %d: delay %s within budget", i, d)
		}
		l.Fail("10.0.0.1")
	}
	if d := l.Delay("10.0.0.1"); d != time.Second {
		t.Fatalf("over budget: delay %s, want 1s", d)
	}
	for i := 0; i < 20; i++ {
		l.Fail("10.0.0.1")
	}
	if d := l.Delay("10.0.0.1"); d != 10*time.Second {
		t.Fatalf("far over budget: delay %s, want the 10s cap", d)
	}
	if d := l.Delay("10.0.0.2"); d != 0 {
		t.Fatalf("another address is slowed: %s", d)
	}
	now = now.Add(61 * time.Second)
	if d := l.Delay("10.0.0.1"); d != 0 {
		t.Fatalf("after a minute: delay %s", d)
	}
}
