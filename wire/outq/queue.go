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
	"time"
)

// smallBuf is the capacity of pooled outbound buffers: enough for a burst
// of typical stanzas. Bigger buffers grown by a large stanza are not
// pooled, so one big message does not pin memory for ever.
const (
	smallBuf = 4 << 10
	maxPool  = 256 << 10
)

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
	}
	q.runFn = q.run
	return q
}

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
	q.mu.Lock()
	if q.closing || q.dead {
		q.mu.Unlock()
		return false
	}
	if q.pending == nil {
		q.pending = GetBuf()
	}
	if len(*q.pending)+len(b) > q.limit {
		first := !q.overflowed
		q.overflowed = true
		q.mu.Unlock()
		if first && q.onOverflow != nil {
			q.onOverflow()
		}
		return false
	}
	*q.pending = append(*q.pending, b...)
	start := q.startLocked()
	q.mu.Unlock()
	if start {
		go q.runFn()
	}
	return true
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
		*q.pending = (*q.pending)[:0]
	}
	*q.pending = append(*q.pending, last...)
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
		_, err := q.conn.Write(*b)
		PutBuf(b)
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
