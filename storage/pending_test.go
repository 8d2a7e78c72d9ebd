package storage

import (
	"fmt"
	"path/filepath"
	"testing"
)

// PendingInCount is what bounds limits.pending_subscriptions: it counts
// one user's requests only, and follows sets and clears.
func TestPendingInCount(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "roost.db"))
	defer s.Close()
	count := func(user string) int {
		t.Helper()
		var n int
		err := s.View(func(tx *Tx) (err error) { n, err = tx.PendingInCount(user); return err })
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("bob"); n != 0 {
		t.Fatalf("no requests yet: %d", n)
	}
	err := s.Update(func(tx *Tx) error {
		for i := 0; i < 5; i++ {
			if err := tx.SetPendingIn("bob", fmt.Sprintf("u%d@example.org", i), []byte("<presence type='subscribe'/>")); err != nil {
				return err
			}
		}
		// Asking again replaces, it does not add.
		if err := tx.SetPendingIn("bob", "u0@example.org", []byte("<presence type='subscribe'/>")); err != nil {
			return err
		}
		return tx.SetPendingIn("carol", "u0@example.org", []byte("<presence type='subscribe'/>"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := count("bob"); n != 5 {
		t.Fatalf("bob: %d pending, want 5", n)
	}
	if err := s.Update(func(tx *Tx) error { _, err := tx.ClearPendingIn("bob", "u3@example.org"); return err }); err != nil {
		t.Fatal(err)
	}
	if n, m := count("bob"), count("carol"); n != 4 || m != 1 {
		t.Fatalf("after a clear: bob %d (want 4), carol %d (want 1)", n, m)
	}
}
