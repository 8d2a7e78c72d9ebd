package c2s

import (
	"time"

	"roost/server/session"
	"roost/wire/outq"
	"roost/wire/stanza"
	"roost/wire/xmlscan"
)

// Session is a bound client stream: the session core's Bound, written
// through this stream's coalescing out-queue, plus what the stream's
// reading goroutine owns. After an XEP-0198 resumption a new Session (a
// new connection and queue) carries the same Bound.
type Session struct {
	*session.Bound
	env *Env
	q   *outq.Queue

	// owned by the reading goroutine
	tok xmlscan.Token
	st  stanza.Stanza
	sm  bool // XEP-0198 enabled: count the client's stanzas
}

// stream is the session core's Transport for a client stream: the
// out-queue, ended with a stream error or a closing tag (RFC 6120 §4.4,
// §4.9). It is a WriteTracker: the queue reports what reached the
// socket, so the core knows which stanzas were delivered.
type stream struct{ q *outq.Queue }

func (t stream) Push(b []byte) bool                             { return t.q.Push(b) }
func (t stream) PushEnd(b []byte) (uint64, bool)                { return t.q.PushEnd(b) }
func (t stream) TryPush(b []byte) (uint64, bool, bool)          { return t.q.TryPush(b) }
func (t stream) PushAll(b []byte) (uint64, bool)                { return t.q.PushAll(b) }
func (t stream) WaitRoom(n int, deadline time.Time) bool        { return t.q.WaitRoom(n, deadline) }
func (t stream) Close(cond stanza.StreamCondition, text string) { t.close(cond, text) }

func (t stream) close(cond stanza.StreamCondition, text string) {
	var b []byte
	if cond == "" {
		b = []byte("</stream:stream>")
	} else {
		b = stanza.AppendStreamError(nil, cond, text)
	}
	t.q.CloseWith(b, cond == stanza.StreamPolicyViolation && text == queueOverflowText)
}

const queueOverflowText = "outbound queue limit exceeded: the client does not read fast enough"

// Wait blocks until the session's connection has been written out and
// closed, or d has passed.
func (s *Session) Wait(d time.Duration) bool { return s.q.Wait(d) }
