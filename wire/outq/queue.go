// Package outq is how Roost writes to a connection: one byte queue per
// connection that any goroutine may append to without blocking, flushed
// by a writer goroutine that exists only while there is something to
// write, so that many small stanzas cost one Write (one TLS record) and an
// idle connection holds neither a goroutine nor a buffer. Client streams,
// the component uplink and server-to-server streams all write through it.
package outq

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// smallBuf is the capacity of pooled outbound buffers: enough for a burst
// of typical stanzas. Bigger buffers grown by a large stanza are not
// pooled, so one big message does not pin memory for ever.
const (
	smallBuf = 4 << 10
	maxPool  = 256 << 10
)

// BytesWritten counts the bytes every queue has written to its connection
// (client, server-to-server and uplink streams); server/metrics reports it.
var BytesWritten atomic.Uint64

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, smallBuf); return &b }}

// GetBuf lends a pooled buffer, for building a stanza to push.
func GetBuf() *[]byte { return bufPool.Get().(*[]byte) }

// PutBuf returns a buffer from GetBuf.
func PutBuf(b *[]byte) {
	if b == nil || cap(*b) > maxPool {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Queue is one connection's outbound byte queue and its writer. Any
// goroutine may append; a writer goroutine flushes whatever has gathered
// in a single Write, so many small stanzas cost one syscall (and one TLS
// record). The writer runs only while there is something to write, and an
// idle queue holds no buffer, so an idle session costs neither a
// goroutine stack nor a write buffer. Appending never blocks: a peer that
// does not read fills the queue to its limit and is then dropped.
type Queue struct {
	mu      sync.Mutex
	pending *[]byte // bytes waiting to be written; nil when none
	running bool    // a writer goroutine is flushing
	closing bool    // no more appends; close the conn once drained
	dead    bool    // the conn is closed
	limit   int
	closed  chan struct{} // closed once the conn is closed
	runFn   func()        // q.run, made once so starting the writer allocates nothing

	conn         net.Conn
	writeTimeout time.Duration
	// onOverflow is called (once, outside the lock) when an append
	// would exceed limit; it closes the session with a stream error.
	onOverflow func()
	overflowed bool
	// requested counts the pending bytes pushed with TryPush or PushAll:
	// what the client asked for (or a resumption) is paced, never cut, so
	// it does not count toward the limit that drops slow readers.
	requested int

	// pushed and written count bytes since New in one space: pushed is
	// the offset just past the last byte accepted, written the offset
	// just past the last byte the conn took. A session core compares a
	// stanza's end offset (PushEnd) with written to know it reached the
	// socket. dropAt caps what is reported once queued bytes were
	// discarded (CloseWith with drop): bytes appended after them are
	// never stanzas and must not look like the dropped ones.
	pushed, written uint64
	dropAt          uint64
	onWrite         func(written uint64)
	// room, when not nil, is closed after the next write: WaitRoom
	// callers wait on it for space.
	room chan struct{}
}

// New makes the queue for conn: at most limit bytes wait; a write blocked
// longer than writeTimeout closes conn; onOverflow runs once when an append
// would pass limit.
func New(conn net.Conn, limit int, writeTimeout time.Duration, onOverflow func()) *Queue {
	q := &Queue{
		conn:         conn,
		limit:        limit,
		writeTimeout: writeTimeout,
		closed:       make(chan struct{}),
		onOverflow:   onOverflow,
		dropAt:       ^uint64(0),
	}
	q.runFn = q.run
	return q
}

// SetOnWrite sets fn, called by the writer goroutine (never under the
// queue's lock) after each write with the offset, in PushEnd's terms,
// just past the last byte the conn took. Set it before the first push.
func (q *Queue) SetOnWrite(fn func(written uint64)) { q.onWrite = fn }

// startLocked marks the writer running and reports whether the caller
// must start it (after unlocking).
func (q *Queue) startLocked() bool {
	if q.running {
		return false
	}
	q.running = true
	return true
}

// Push appends b. It returns false when the queue is closing or over its
// limit (then the overflow handler runs and the bytes are dropped).
func (q *Queue) Push(b []byte) bool {
	_, ok := q.PushEnd(b)
	return ok
}

// PushEnd is Push that also returns the offset just past b in the
// queue's byte count: b has reached the conn once the writer reports
// (SetOnWrite) at least that offset.
func (q *Queue) PushEnd(b []byte) (end uint64, ok bool) {
	end, ok, full := q.push(b, true)
	if full {
		return 0, false
	}
	return end, ok
}

// PushAll appends b whatever the limit (never counting as overflow): for
// a bounded retransmission (XEP-0198 resumption) into a fresh queue.
func (q *Queue) PushAll(b []byte) (end uint64, ok bool) {
	q.mu.Lock()
	if q.closing || q.dead {
		q.mu.Unlock()
		return 0, false
	}
	if q.pending == nil {
		q.pending = GetBuf()
	}
	*q.pending = append(*q.pending, b...)
	q.pushed += uint64(len(b))
	q.requested += len(b)
	end = q.pushed
	start := q.startLocked()
	q.mu.Unlock()
	if start {
		go q.runFn()
	}
	return end, true
}

// TryPush appends b when it fits; unlike Push it never counts as
// overflow: full reports that b did not fit and nothing else happened
// (the caller may wait for room with WaitRoom). Used for what the client
// asked for, which is paced, never cut.
func (q *Queue) TryPush(b []byte) (end uint64, ok, full bool) {
	return q.push(b, false)
}

func (q *Queue) push(b []byte, overflow bool) (end uint64, ok, full bool) {
	q.mu.Lock()
	if q.closing || q.dead {
		q.mu.Unlock()
		return 0, false, false
	}
	n := 0
	if q.pending != nil {
		n = len(*q.pending)
	}
	// A single push larger than the whole limit is let through into an
	// empty queue when it is asked for (overflow false): waiting could
	// never make room for it. Unsolicited bytes are held to the limit
	// beside what the client asked for.
	over := n+len(b) > q.limit
	if overflow {
		over = n-q.requested+len(b) > q.limit
	}
	if over && (overflow || n > 0) {
		if !overflow {
			q.mu.Unlock()
			return 0, false, true
		}
		first := !q.overflowed
		q.overflowed = true
		q.mu.Unlock()
		if first && q.onOverflow != nil {
			q.onOverflow()
		}
		return 0, false, true
	}
	if q.pending == nil {
		q.pending = GetBuf()
	}
	*q.pending = append(*q.pending, b...)
	q.pushed += uint64(len(b))
	if !overflow {
		q.requested += len(b)
	}
	end = q.pushed
	start := q.startLocked()
	q.mu.Unlock()
	if start {
		go q.runFn()
	}
	return end, true, false
}

// WaitRoom blocks until n more bytes fit (or the queue is empty), the
// queue closes, or deadline passes; it reports false in the last two
// cases.
func (q *Queue) WaitRoom(n int, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		q.mu.Lock()
		if q.closing || q.dead {
			q.mu.Unlock()
			return false
		}
		if q.pending == nil || len(*q.pending) == 0 || len(*q.pending)+n <= q.limit {
			q.mu.Unlock()
			return true
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		ch := q.room
		q.mu.Unlock()
		select {
		case <-ch:
		case <-q.closed:
			return false
		case <-t.C:
			return false
		}
	}
}

// Closing reports whether the queue takes no more bytes.
func (q *Queue) Closing() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closing || q.dead
}

// CloseWith appends last (a stream error or the closing tag) after what
// is queued and makes the writer close the connection once it has
// flushed. With drop set, what was queued is discarded first: used when
// the peer is too slow to read it anyway.
func (q *Queue) CloseWith(last []byte, drop bool) {
	q.mu.Lock()
	if q.closing || q.dead {
		q.mu.Unlock()
		return
	}
	if q.pending == nil {
		q.pending = GetBuf()
	}
	if drop {
		q.dropAt = q.pushed - uint64(len(*q.pending))
		*q.pending = (*q.pending)[:0]
		q.requested = 0
	}
	*q.pending = append(*q.pending, last...)
	q.pushed += uint64(len(last))
	q.closing = true
	start := q.startLocked()
	q.mu.Unlock()
	if start {
		go q.runFn()
	}
}

// run is the writer: it flushes until the queue is empty and then exits,
// or, when the queue is closing, closes the connection.
func (q *Queue) run() {
	for {
		q.mu.Lock()
		b := q.pending
		q.pending = nil
		q.requested = 0 // the writer has it all now
		if b == nil || len(*b) == 0 {
			PutBuf(b)
			if q.closing {
				q.mu.Unlock()
				q.shut()
				return
			}
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.conn.SetWriteDeadline(time.Now().Add(q.writeTimeout))
		n, err := q.conn.Write(*b)
		BytesWritten.Add(uint64(n))
		PutBuf(b)
		q.mu.Lock()
		q.written += uint64(n)
		w := min(q.written, q.dropAt)
		if q.room != nil {
			close(q.room)
			q.room = nil
		}
		q.mu.Unlock()
		if q.onWrite != nil && n > 0 {
			q.onWrite(w)
		}
		if err != nil {
			q.shut()
			return
		}
	}
}

// shut closes the connection once and drops anything still queued.
func (q *Queue) shut() {
	q.mu.Lock()
	already := q.dead
	q.dead = true
	q.closing = true
	if q.pending != nil {
		PutBuf(q.pending)
		q.pending = nil
	}
	q.mu.Unlock()
	if !already {
		q.conn.Close()
		close(q.closed)
	}
}

// Wait blocks until the connection has been closed or d has passed.
func (q *Queue) Wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-q.closed:
		return true
	case <-t.C:
		return false
	}
}
