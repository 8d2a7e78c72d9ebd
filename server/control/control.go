// Package control is the local administration channel between the roost
// CLI and a running server: a unix socket in the data directory, owner-only,
// carrying one JSON request and one JSON response per connection.
//
// bbolt lets one process hold the store, so while the server runs the CLI
// cannot open it; it asks the server to do the change instead.
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"
)

// Request is one administrative command.
type Request struct {
	Op       string `json:"op"` // user.add|del|passwd|list, device.add|del|rekey|list, status
	JID      string `json:"jid,omitempty"`
	Password string `json:"password,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Label    string `json:"label,omitempty"`
	Owner    string `json:"owner,omitempty"`
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

// Listen creates the socket at path with owner-only permissions. A stale
// socket left by a crashed server is replaced; a live one is an error.
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
	return l, nil
}

// Serve answers requests on l until it is closed.
func Serve(l net.Listener, h Handler, log *slog.Logger) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("control: accept failed", "err", err)
			}
			return
		}
		go func() {
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
