package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// logger returns the logger the use cases report to: warnings and errors
// always, informational messages unless --quiet, on standard error, in the
// form the rest of the command line prints ("warning: ...").
func (g *globalOptions) logger() *slog.Logger {
	level := slog.LevelInfo
	if g.quiet {
		level = slog.LevelWarn
	}
	return slog.New(&cliHandler{w: os.Stderr, level: level})
}

// cliHandler writes one line per record: a "warning: " or "error: " prefix
// from the level, the message, then the attributes as key=value.
type cliHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
}

func (h *cliHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *cliHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	b.WriteByte('\n')
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *cliHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &cliHandler{w: h.w, level: h.level, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)}
}

// WithGroup is not used by the use cases; groups are flattened.
func (h *cliHandler) WithGroup(string) slog.Handler { return h }
