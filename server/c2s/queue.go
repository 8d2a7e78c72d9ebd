package c2s

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

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if b == nil || cap(*b) > maxPool {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// outQueue is one connection's outbound byte queue and its writer. Any
// goroutine may append; a writer goroutine flushes whatever has gathered
// in a single Write, so many small stanzas cost one syscall (and one TLS
// record). The writer runs only while there is something to write, and an
// idle queue holds no buffer, so an idle session costs neither a
// goroutine stack nor a write buffer. Appending never blocks: a peer that
// does not read fills the queue to its limit and is then dropped.
type outQueue struct {
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

func newOutQueue(conn net.Conn, limit int, writeTimeout time.Duration, onOverflow func()) *outQueue {
	q := &outQueue{
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
func (q *outQueue) startLocked() bool {
	if q.running {
		return false
	}
	q.running = true
	return true
}

// push appends b. It returns false when the queue is closing or over its
// limit (then the overflow handler runs and the bytes are dropped).
func (q *outQueue) push(b []byte) bool {
	q.mu.Lock()
	if q.closing || q.dead {
		q.mu.Unlock()
		return false
	}
	if q.pending == nil {
		q.pending = getBuf()
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

// closeWith appends last (a stream error or the closing tag) after what
// is queued and makes the writer close the connection once it has
// flushed. With drop set, what was queued is discarded first: used when
// the peer is too slow to read it anyway.
func (q *outQueue) closeWith(last []byte, drop bool) {
	q.mu.Lock()
	if q.closing || q.dead {
		q.mu.Unlock()
		return
	}
	if q.pending == nil {
		q.pending = getBuf()
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
func (q *outQueue) run() {
	for {
		q.mu.Lock()
		b := q.pending
		q.pending = nil
		if b == nil || len(*b) == 0 {
			putBuf(b)
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
		putBuf(b)
		if err != nil {
			q.shut()
			return
		}
	}
}

// shut closes the connection once and drops anything still queued.
func (q *outQueue) shut() {
	q.mu.Lock()
	already := q.dead
	q.dead = true
	q.closing = true
	if q.pending != nil {
		putBuf(q.pending)
		q.pending = nil
	}
	q.mu.Unlock()
	if !already {
		q.conn.Close()
		close(q.closed)
	}
}

// wait blocks until the connection has been closed or d has passed.
func (q *outQueue) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-q.closed:
		return true
	case <-t.C:
		return false
	}
}
