package xmlscan

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// feed is a reader the test drives: each Read first says it is waiting
// (on waiting), then returns the next chunk sent on ch; a closed ch is EOF.
type feed struct {
	ch      chan []byte
	waiting chan struct{}
	rest    []byte
}

func newFeed() *feed { return &feed{ch: make(chan []byte), waiting: make(chan struct{})} }

func (f *feed) Read(p []byte) (int, error) {
	if len(f.rest) == 0 {
		f.waiting <- struct{}{}
		b, ok := <-f.ch
		if !ok {
			return 0, io.EOF
		}
		f.rest = b
	}
	n := copy(p, f.rest)
	f.rest = f.rest[n:]
	return n, nil
}

// send hands b to the scanner once it asks for input.
func (f *feed) send(t *testing.T, b string) {
	t.Helper()
	f.awaitRead(t)
	f.ch <- []byte(b)
}

// awaitRead waits until the scanner has used everything sent and asks for more.
func (f *feed) awaitRead(t *testing.T) {
	t.Helper()
	select {
	case <-f.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the scanner never asked for more input")
	}
}

type result struct {
	tok Token
	err error
}

// drainPool empties bigPool so that buffer sizes, and so charges, do not
// depend on what earlier tests left in it.
func drainPool() {
	for bigPool.Get() != nil {
	}
}

func isCond(err error, c Condition) bool {
	var e *Error
	return errors.As(err, &e) && e.Cond == c
}

// TestBudgetShared: a scanner holding a large unfinished element uses up a
// shared budget, so another scanner's large element fails with
// resource-constraint; once the first finishes, the budget is free again.
func TestBudgetShared(t *testing.T) {
	drainPool()
	budget := NewBudget(40 << 10)
	lim := Limits{Budget: budget}

	f := newFeed()
	a := New(f, lim)
	results := make(chan result)
	go func() {
		for {
			tok, err := a.Next()
			var raw []byte
			if err == nil {
				raw = append(raw, tok.Raw...) // the view dies at the next Next
			}
			results <- result{Token{Kind: tok.Kind, Raw: raw}, err}
			if err != nil {
				return
			}
		}
	}()
	next := func() result {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no token")
			return result{}
		}
	}

	f.send(t, hdr)
	if r := next(); r.err != nil || r.tok.Kind != KindHeader {
		t.Fatalf("header: %v", r.err)
	}
	// 20 KB of a message that does not end yet.
	f.send(t, "<message><body>")
	for range 20 {
		f.send(t, strings.Repeat("x", 1000))
	}
	f.awaitRead(t) // a holds all of it and waits for more
	held := budget.Used()
	if held < 20<<10 {
		t.Fatalf("a holds 20 KB of a stanza but is charged %d", held)
	}

	// b's 12 KB element does not fit in what is left.
	big := "<message><body>" + strings.Repeat("y", 12000) + "</body></message>"
	_, _, err := scanAll(strings.NewReader(hdr+big), lim)
	if !isCond(err, ResourceConstraint) {
		t.Fatalf("b: got %v, want resource-constraint", err)
	}
	if got := budget.Used(); got != held {
		t.Fatalf("after b failed the budget holds %d, want a's %d", got, held)
	}

	// a's element ends; consuming it gives its buffer back.
	f.ch <- []byte("</body></message>")
	if r := next(); r.err != nil || len(r.tok.Raw) < 20000 {
		t.Fatalf("a's message: %d bytes, %v", len(r.tok.Raw), r.err)
	}
	f.awaitRead(t) // a consumed the message and waits
	if got := budget.Used(); got != 0 {
		t.Fatalf("a finished its element, the budget still holds %d", got)
	}
	close(f.ch)
	if r := next(); r.err != io.ErrUnexpectedEOF && r.err != io.EOF {
		t.Fatalf("a at EOF: %v", r.err)
	}

	// Now b's element fits, and is given back when b ends.
	if _, _, err := scanAll(strings.NewReader(hdr+big), lim); err != io.EOF {
		t.Fatalf("b after a finished: %v", err)
	}
	if got := budget.Used(); got != 0 {
		t.Fatalf("after both ended the budget holds %d", got)
	}
}

// TestBudgetGivenBack: every way a scanner lets go of a large buffer
// gives its charge back.
func TestBudgetGivenBack(t *testing.T) {
	big := "<message><body>" + strings.Repeat("z", 8000) + "</body></message>"
	for _, tc := range []struct {
		name string
		run  func(s *Scanner) error
	}{
		{"shrunk after the large element", func(s *Scanner) error {
			// presence and the partial message stay buffered after big
			s.Next()
			if tok, err := s.Next(); err != nil || len(tok.Raw) != len(big) {
				return errors.New("large element not returned")
			}
			if tok, err := s.Next(); err != nil || string(tok.Local) != "presence" {
				return errors.New("presence not returned")
			}
			return nil
		}},
		{"failed on a limit", func(s *Scanner) error {
			s.SetMaxElementBytes(4000)
			_, _, err := func() ([]string, []string, error) {
				for {
					if _, err := s.Next(); err != nil {
						return nil, nil, err
					}
				}
			}()
			if !isCond(err, PolicyViolation) {
				return errors.New("no policy violation: " + err.Error())
			}
			return nil
		}},
		{"released with input pending", func(s *Scanner) error {
			s.Next()
			s.Next()
			s.Release() // "<presence/><mess" is still buffered
			if _, err := s.Next(); err == nil {
				return errors.New("Next after Release with input pending succeeded")
			}
			return nil
		}},
		{"reset", func(s *Scanner) error {
			s.Next()
			s.Next()
			s.Reset(strings.NewReader(hdr))
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := NewBudget(1 << 20)
			s := New(strings.NewReader(hdr+big+"<presence/><mess"), Limits{Budget: budget})
			if err := tc.run(s); err != nil {
				t.Fatal(err)
			}
			if got := budget.Used(); got != 0 {
				t.Fatalf("budget still holds %d", got)
			}
		})
	}
}

// TestSetMaxElementBytes: the limit applies from the next element on, both
// lowered and raised (the pre-authentication limit is small).
func TestSetMaxElementBytes(t *testing.T) {
	el := "<message><body>" + strings.Repeat("w", 500) + "</body></message>"
	s := New(strings.NewReader(hdr+el+el+el), Limits{MaxElementBytes: 200})
	s.Next()
	if _, err := s.Next(); !isCond(err, PolicyViolation) {
		t.Fatalf("under a 200-byte limit: %v", err)
	}

	s = New(strings.NewReader(hdr+"<presence/>"+el+el), Limits{MaxElementBytes: 200})
	s.Next()
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	s.SetMaxElementBytes(1000)
	if _, err := s.Next(); err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
	s.SetMaxElementBytes(100)
	if _, err := s.Next(); !isCond(err, PolicyViolation) {
		t.Fatalf("after lowering the limit: %v", err)
	}
}
