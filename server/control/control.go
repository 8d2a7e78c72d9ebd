// Package control is the local administration channel between the roost
// CLI and a running server: a unix socket in the data directory, owner-only,
// carrying one JSON request and one JSON response per connection.
//
// bbolt lets one process hold the store, so while the server runs the CLI
// cannot open it; it asks the server to do the change instead.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Request is one administrative command.
type Request struct {
	// Op is user.add|del|passwd|list, device.add|del|rekey|list|set, status
	// (store and server); sessions, kick, reload, shutdown (a running server only).
	Op       string `json:"op"`
	JID      string `json:"jid,omitempty"`
	Password string `json:"password,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Label    string `json:"label,omitempty"`
	Owner    string `json:"owner,omitempty"`
	// SetLabel and SetOwner say which of Label and Owner device.set
	// changes (an empty label is a change too).
	SetLabel bool `json:"set_label,omitempty"`
	SetOwner bool `json:"set_owner,omitempty"`
}

// Response is the answer to a Request.
type Response struct {
	Error   string   `json:"error,omitempty"`
	Message string   `json:"message,omitempty"`
	Users   []string `json:"users,omitempty"`
	Lines   []string `json:"lines,omitempty"` // more output, one line each
	// Body, when set on a successful response, streams bytes after the
	// JSON (a backup); the client reads them with Fetch.
	Body func(io.Writer) error `json:"-"`
}

// Handler executes a request.
type Handler func(Request) Response

// Listener is the control socket. Closing it stops accepting; Wait then
// blocks until every request that was being handled has finished, so a
// server can close its store only after the last handler using it.
type Listener struct {
	net.Listener
	mu       sync.Mutex
	handlers sync.WaitGroup
	closed   bool
}

// Close stops accepting requests. Requests being handled go on; see Wait.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

// start registers a handler about to run; false once l is closed (the
// connection is then dropped unanswered).
func (l *Listener) start() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.handlers.Add(1)
	return true
}

// Wait blocks until the requests being handled have finished, or ctx
// ends. Call it after Close.
func (l *Listener) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { l.handlers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("control: requests still running: %w", ctx.Err())
	}
}

// Listen creates the socket at path with owner-only permissions. A stale
// socket left by a crashed server is replaced; a live one is an error.
// The listener is a *Listener.
func Listen(path string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another server is answering on it", path)
		}
		os.Remove(path)
	}
	old := umask(0o077)
	l, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Listener{Listener: l}, nil
}

// Serve answers requests on l until it is closed. When l is a *Listener
// (as Listen returns) each request runs under its wait group, so
// (*Listener).Wait can tell when the last one is done.
func Serve(l net.Listener, h Handler, log *slog.Logger) {
	cl, _ := l.(*Listener)
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("control: accept failed", "err", err)
			}
			return
		}
		if cl != nil && !cl.start() {
			c.Close()
			return
		}
		go func() {
			if cl != nil {
				defer cl.handlers.Done()
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var req Request
			if err := json.NewDecoder(c).Decode(&req); err != nil {
				json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error()})
				return
			}
			resp := h(req)
			if err := json.NewEncoder(c).Encode(resp); err != nil || resp.Error != "" || resp.Body == nil {
				return
			}
			c.SetDeadline(time.Now().Add(bodyTimeout))
			if err := resp.Body(c); err != nil {
				log.Warn("control: "+req.Op+" failed while sending", "err", err)
			}
		}()
	}
}

// ErrNoServer means nothing answers on the control socket.
var ErrNoServer = errors.New("no running server answers on the control socket")

// bodyTimeout bounds a streamed body: a backup of a large store on an SD card.
const bodyTimeout = 10 * time.Minute

// Call sends req to the server listening at path.
func Call(path string, req Request) (Response, error) {
	return Fetch(path, req, nil)
}

// Fetch is Call for a request whose answer streams a body: on success the
// body is copied to w.
func Fetch(path string, req Request, w io.Writer) (Response, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return Response{}, fmt.Errorf("%w (%s): %v", ErrNoServer, path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, fmt.Errorf("control %s: %w", path, err)
	}
	var resp Response
	dec := json.NewDecoder(c)
	if err := dec.Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("control %s: %w", path, err)
	}
	if w != nil && resp.Error == "" {
		c.SetDeadline(time.Now().Add(bodyTimeout))
		// The decoder may have read past the JSON: start with what it holds.
		rest := io.MultiReader(dec.Buffered(), c)
		if _, err := io.Copy(w, skipNewline(rest)); err != nil {
			return resp, fmt.Errorf("control %s: receiving: %w", path, err)
		}
	}
	return resp, nil
}

// skipNewline drops the newline json.Encoder writes after the response.
func skipNewline(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(1); err == nil && b[0] == '\n' {
		br.Discard(1)
	}
	return br
}
