// Package relay is the raw ceiling for `roost bench`: a TCP relay that
// forwards newline-ended stanzas to the connection named in their `to`
// attribute, with no XML parsing, no TLS and no store (it writes with
// Roost's own per-connection queue). Driven by the same
// load as Roost, it shows how much of the machine the routing itself
// costs: what remains is the kernel, the scheduler and the load tool.
//
// Protocol: a client's first line is its name (a full JID); the relay
// answers with a stream header. Every later line is forwarded, as is,
// to the client whose name is the value of the line's first to='…'
// attribute; lines to unknown names are dropped.
package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"roost/wire/outq"
)

// Header is what the relay writes first on every connection, so that an
// XMPP stream scanner can read the forwarded stanzas.
const Header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

// maxQueue bounds what one slow reader may have waiting; beyond it the
// relay drops, as Roost does with a slow reader.
const maxQueue = 1 << 20

// Relay holds the connected clients by name.
type Relay struct {
	log   *slog.Logger
	mu    sync.RWMutex
	peers map[string]*outq.Queue
}

// New returns an empty relay.
func New(log *slog.Logger) *Relay {
	return &Relay{log: log, peers: make(map[string]*outq.Queue)}
}

// Serve accepts connections on ln until ctx ends.
func (r *Relay) Serve(ctx context.Context, ln net.Listener) error {
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go r.handle(nc)
	}
}

func (r *Relay) handle(nc net.Conn) {
	defer nc.Close()
	br := bufio.NewReaderSize(nc, 16<<10)
	name, err := br.ReadSlice('\n')
	if err != nil {
		return
	}
	key := string(bytes.TrimSpace(name))
	// Roost's own writer, so that the relay differs from Roost only in
	// what routing costs. Past maxQueue a slow reader's lines are dropped.
	p := outq.New(nc, maxQueue, 30*time.Second, nil)
	r.mu.Lock()
	r.peers[key] = p
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.peers[key] == p {
			delete(r.peers, key)
		}
		r.mu.Unlock()
	}()
	p.Push([]byte(Header))
	skipping := false // inside a line too long for the read buffer
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !skipping {
				r.log.Warn("relay: line longer than the read buffer dropped", "from", key)
			}
			skipping = true
			continue
		}
		if err != nil {
			return
		}
		if skipping {
			skipping = false
			continue
		}
		to := destination(line)
		if to == nil {
			continue
		}
		r.mu.RLock()
		dst := r.peers[string(to)] // no allocation: the compiler looks up []byte keys in place
		r.mu.RUnlock()
		if dst != nil {
			dst.Push(line)
		}
	}
}

// destination is the value of the first to='…' or to="…" in line.
func destination(line []byte) []byte {
	i := bytes.Index(line, []byte(" to="))
	if i < 0 || i+5 >= len(line) {
		return nil
	}
	q := line[i+4]
	if q != '\'' && q != '"' {
		return nil
	}
	rest := line[i+5:]
	j := bytes.IndexByte(rest, q)
	if j < 0 {
		return nil
	}
	return rest[:j]
}
