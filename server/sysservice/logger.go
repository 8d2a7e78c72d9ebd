package sysservice

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kardianos/service"
)

// Handler is a slog.Handler that writes to a service manager's logger:
// the Windows event log under the SCM. On Linux the service logs to
// stderr, which systemd already puts in the journal.
type Handler struct {
	out   service.Logger
	level slog.Leveler
	attrs string // pre-rendered " k=v" pairs from WithAttrs
	group string
}

// NewHandler writes records at level or above to out.
func NewHandler(out service.Logger, level slog.Leveler) *Handler {
	return &Handler{out: out, level: level}
}

// Enabled reports whether level is logged.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// Handle writes one record as "message k=v ...".
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.group, a)
		return true
	})
	switch {
	case r.Level >= slog.LevelError:
		return h.out.Error(b.String())
	case r.Level >= slog.LevelWarn:
		return h.out.Warning(b.String())
	default:
		return h.out.Info(b.String())
	}
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range attrs {
		writeAttr(&b, h.group, a)
	}
	c := *h
	c.attrs = b.String()
	return &c
}

// WithGroup returns a handler that qualifies later keys with name.
func (h *Handler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.group + name + "."
	return &c
}

func writeAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writeAttr(b, group+a.Key+".", g)
		}
		return
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \t\n\"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	fmt.Fprintf(b, " %s%s=%s", group, a.Key, v)
}
