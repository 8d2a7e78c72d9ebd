package control

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// TestWaitForHandlers: after Close, Wait returns only once the requests
// being handled have finished, so the server can close its store after
// the last handler that uses it (issue 12).
func TestWaitForHandlers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	l := ln.(*Listener)
	entered := make(chan struct{})
	release := make(chan struct{})
	served := make(chan struct{})
	go func() {
		Serve(l, func(req Request) Response {
			close(entered)
			<-release
			return Response{Message: "done"}
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(served)
	}()
	answer := make(chan error, 1)
	go func() {
		resp, err := Call(path, Request{Op: "status"})
		if err == nil && resp.Message != "done" {
			err = io.ErrUnexpectedEOF
		}
		answer <- err
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never ran")
	}
	l.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err = l.Wait(ctx)
	cancel()
	if err == nil {
		t.Fatal("Wait returned while a handler was still running")
	}
	close(release)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait after the handler finished: %v", err)
	}
	if err := <-answer; err != nil {
		t.Fatalf("the running request was not answered: %v", err)
	}
}
