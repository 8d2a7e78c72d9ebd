package outq

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Unsent hands back exactly what the writer never got onto the
// connection: the peer reads the first stanza and then the connection
// dies with the others queued.
func TestUnsentKeepsWhatWasNotWritten(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	q := New(a, 1<<20, 5*time.Second, nil)
	var u Unsent
	u.Track(q)
	first := "<message id='1'/>"
	if !u.Push(q, []byte(first)) {
		t.Fatal("push refused")
	}
	// The writer is now blocked on the pipe with the first stanza (or
	// with more, coalesced); read exactly the first stanza, then close.
	buf := make([]byte, len(first))
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	u.Push(q, []byte("<message id='2'/>"))
	u.Push(q, []byte("<message id='3'/>"))
	b.Close()
	a.Close()
	if !q.Wait(5 * time.Second) {
		t.Fatal("the queue did not close")
	}
	var got []string
	for _, s := range u.Take() {
		got = append(got, string(s))
	}
	if strings.Join(got, "") != "<message id='2'/><message id='3'/>" {
		t.Fatalf("unsent %q, want stanzas 2 and 3", got)
	}
	if len(u.Take()) != 0 {
		t.Fatal("Take twice returned stanzas again")
	}
}
