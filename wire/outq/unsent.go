package outq

import "sync"

// Unsent remembers the stanzas pushed on a Queue until its writer reports
// them written, so that a stream that ends with stanzas still queued can
// answer for them (bounce them, or keep them for the next connection)
// instead of dropping them silently. Server-to-server streams and the
// component uplink use it; client sessions have the session core's
// delivery records. It copies each stanza: for streams off the client
// routing path.
type Unsent struct {
	mu      sync.Mutex
	items   []unsentItem
	written uint64
}

type unsentItem struct {
	b   []byte
	end uint64
}

// Track makes q report its writes to u. Call it before the first push.
func (u *Unsent) Track(q *Queue) { q.SetOnWrite(u.wrote) }

func (u *Unsent) wrote(w uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if w > u.written {
		u.written = w
	}
	i := 0
	for i < len(u.items) && u.items[i].end <= u.written {
		i++
	}
	if i > 0 {
		u.items = append(u.items[:0], u.items[i:]...)
	}
}

// Push pushes b on q and remembers it until it is written. It reports
// what q.Push reports.
func (u *Unsent) Push(q *Queue, b []byte) bool {
	end, ok := q.PushEnd(b)
	if !ok {
		return false
	}
	u.mu.Lock()
	if end > u.written {
		u.items = append(u.items, unsentItem{b: append([]byte(nil), b...), end: end})
	}
	u.mu.Unlock()
	return true
}

// Take returns the stanzas pushed and never written, in order, and forgets
// them. Call it once the queue's connection has closed.
func (u *Unsent) Take() [][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([][]byte, len(u.items))
	for i, it := range u.items {
		out[i] = it.b
	}
	u.items = nil
	return out
}
