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
// goroutine may append; one writer goroutine flushes whatever has gathered
// in a single Write, so many small stanzas cost one syscall (and one TLS
// record). An idle queue holds no buffer. Appending never blocks: a peer
// that does not read fills the queue to its limit and is then dropped.
type outQueue struct {
	mu      sync.Mutex
	pending *[]byte // bytes waiting to be written; nil when none
	closing bool    // no more appends; close the conn once drained
	dead    bool    // the writer is gone
	limit   int
	wake    chan struct{}
	done    chan struct{}

	conn         net.Conn
	writeTimeout time.Duration
	// onOverflow is called (once, outside the lock) when an append
	// would exceed limit; it closes the session with a stream error.
	onOverflow func()
	overflowed bool
}

func newOutQueue(conn net.Conn, limit int, writeTimeout time.Duration, onOverflow func()) *outQueue {
	return &outQueue{
		conn:         conn,
		limit:        limit,
		writeTimeout: writeTimeout,
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		onOverflow:   onOverflow,
	}
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
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// closeWith discards nothing already queued, appends last (a stream error
// or the closing tag), and makes the writer close the connection once it
// has flushed. With drop set, what was queued is discarded first: used
// when the peer is too slow to read it anyway.
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
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run is the writer goroutine. It returns when the connection is closed,
// by closeWith or by a write error, and then closes the connection.
func (q *outQueue) run() {
	defer close(q.done)
	defer q.conn.Close()
	for range q.wake {
		for {
			q.mu.Lock()
			b := q.pending
			q.pending = nil
			closing := q.closing
			q.mu.Unlock()
			if b == nil || len(*b) == 0 {
				putBuf(b)
				if closing {
					q.finish()
					return
				}
				break
			}
			q.conn.SetWriteDeadline(time.Now().Add(q.writeTimeout))
			_, err := q.conn.Write(*b)
			putBuf(b)
			if err != nil {
				q.finish()
				return
			}
		}
	}
}

func (q *outQueue) finish() {
	q.mu.Lock()
	q.dead = true
	q.closing = true
	if q.pending != nil {
		putBuf(q.pending)
		q.pending = nil
	}
	q.mu.Unlock()
}

// wait blocks until the writer has finished or d has passed.
func (q *outQueue) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-q.done:
		return true
	case <-t.C:
		return false
	}
}
