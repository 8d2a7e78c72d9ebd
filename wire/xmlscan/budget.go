package xmlscan

import "sync/atomic"

// Budget bounds the read-buffer memory that a set of scanners (all the
// connections of a server) hold for partial elements. A scanner's first
// 1 KiB is free: an idle or chatty connection costs the budget nothing;
// what a scanner grows beyond it is charged when the buffer grows and
// given back when the scanner releases or shrinks it. A scanner whose
// next buffer would not fit fails with ResourceConstraint (RFC 6120
// §4.9.3.17). A Budget is safe for concurrent use.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of the given number of bytes.
func NewBudget(bytes int64) *Budget { return &Budget{max: bytes} }

// Used is how many bytes are charged now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Max is the budget's size.
func (b *Budget) Max() int64 { return b.max }

// take charges n bytes if they fit. A nil budget is unlimited.
func (b *Budget) take(n int64) bool {
	if b == nil || n <= 0 {
		if b != nil && n < 0 {
			b.used.Add(n)
		}
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// give returns n charged bytes.
func (b *Budget) give(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}
