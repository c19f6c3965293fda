package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/atomicfile"
	"github.com/kalaja/kalaja/internal/store"
)

// condemnedHeader is the first line of SERVER-DIR/condemned.
const condemnedHeader = "# kalaja server condemned v1"

// condemned is the set of objects that a signed request asked to delete
// and the backend kept (its retention, or the bucket's Object Lock,
// refused): the server does not extend their retention, so that the next
// request can delete them once it ends. Persisted in SERVER-DIR/condemned,
// one "KIND/NAME" a line after the header; a lost file only makes the
// server renew those objects until a request names them again.
type condemned struct {
	path string // empty: in memory only
	mu   sync.Mutex
	set  map[store.Handle]bool
}

// loadCondemned reads the condemned set from path, if it exists.
func loadCondemned(path string) (*condemned, error) {
	c := &condemned{path: path, set: make(map[store.Handle]bool)}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read condemned objects: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for i := 0; sc.Scan(); i++ {
		line := sc.Text()
		if i == 0 {
			if line != condemnedHeader {
				return nil, fmt.Errorf("read condemned objects %s: first line %q, want %q", path, line, condemnedHeader)
			}
			continue
		}
		h, err := admin.ParseHandle(line)
		if err != nil {
			return nil, fmt.Errorf("read condemned objects %s: line %d: %w", path, i+1, err)
		}
		c.set[h] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read condemned objects %s: %w", path, err)
	}
	return c, nil
}

// has reports whether h is condemned.
func (c *condemned) has(h store.Handle) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set[h]
}

// update condemns kept and releases gone (deleted or missing), then
// persists the set if it changed.
func (c *condemned) update(kept, gone []store.Handle) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for _, h := range kept {
		changed = changed || !c.set[h]
		c.set[h] = true
	}
	for _, h := range gone {
		changed = changed || c.set[h]
		delete(c.set, h)
	}
	if !changed || c.path == "" {
		return nil
	}
	lines := make([]string, 0, len(c.set))
	for h := range c.set {
		lines = append(lines, h.String())
	}
	sort.Strings(lines)
	b := []byte(condemnedHeader + "\n" + strings.Join(append(lines, ""), "\n"))
	if err := atomicfile.Write(c.path, b, 0o600); err != nil {
		return fmt.Errorf("write condemned objects: %w", err)
	}
	return nil
}

// Renew extends the retention under which the backend keeps each object
// (store.Renewer: S3 with Object Lock extends an object's retention to
// now plus the location's retention when it would end within half of
// that) for every object but those a signed request condemned, and
// returns how many it extended. A backend without retention of its own
// extends nothing. It is safe to call while requests are served; an
// object condemned while Renew runs may be extended once more.
func (s *Server) Renew(ctx context.Context) (int, error) {
	n, err := store.RenewAll(ctx, s.st, s.condemned.has)
	s.m.renewed.Add(float64(n))
	if err != nil {
		s.m.renewals.WithLabelValues("failed").Inc()
		return n, fmt.Errorf("renew retention: %w", err)
	}
	s.m.renewals.WithLabelValues("done").Inc()
	s.m.lastRenewal.Set(float64(s.now().UnixNano()) / 1e9)
	return n, nil
}

// RenewEvery calls Renew at once and then every interval, until ctx ends.
// A failed pass is logged and counted; the next tick tries again.
func (s *Server) RenewEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Renew(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Error("retention renewal failed", "extended", n, "err", err)
		default:
			s.log.Info("retention renewed", "extended", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
