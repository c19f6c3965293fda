// Package dashboard is the read-only web page of `kalaja serve`: the
// fleet's hosts, their snapshots and watchers, the alerts they sent, the
// ledger and the storage, as HTML rendered on the server from embedded
// templates (docs/design.md, "Dashboard"). No JavaScript: the pages
// refresh themselves with <meta http-equiv="refresh">.
//
// The handler only reads: it answers GET and HEAD, and 405 to every other
// method. It does not authenticate; package server serves it under
// /dashboard/ to dashboard credentials only, with the prefix stripped.
// Everything a host sent (host names, process names, paths) is escaped
// by html/template. Every answer carries a Content-Security-Policy of
// default-src 'self', X-Frame-Options DENY and Cache-Control no-store.
package dashboard

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kalaja/kalaja/internal/fleet"
)

// Fleet is what the dashboard reads: the vault's view of its hosts
// (*fleet.State in production). Its methods must be safe for concurrent
// use; the dashboard never changes anything through them.
type Fleet interface {
	// Hosts returns every known host, sorted by name.
	Hosts() []fleet.Host
	// Alerts returns the alerts received since t, newest first, at most n.
	Alerts(since time.Time, n int) []fleet.Alert
	// Storage returns the repository's size and its trend.
	Storage() fleet.Storage
	// Ledger returns the state of the ledger.
	Ledger() fleet.LedgerStatus
}

// refresh is how often a page reloads itself.
const refresh = 30 * time.Second

// Bounds on what a page lists.
const (
	recentAlerts = 10                  // on the overview, of the last 24 h
	maxAlerts    = 500                 // on the alerts and host pages
	alertWindow  = 30 * 24 * time.Hour // how far back those pages look
	shownPaths   = 3                   // paths of an alert shown before "N more"
	maxPaths     = 100                 // paths of an alert listed at all
)

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{"dict": dict}).
	ParseFS(assets, "assets/*.html"))

// dict makes a map of its arguments, keys and values in turn, so that a
// template can hand several values to another.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

var style = mustRead("assets/style.css")

func mustRead(name string) []byte {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: a missing file is a build error
	}
	return b
}

// Dashboard is the http.Handler of the pages. Safe for concurrent use as
// far as its Fleet is.
type Dashboard struct {
	fleet Fleet
	now   func() time.Time
}

var _ http.Handler = (*Dashboard)(nil)

// New returns the dashboard of f; now is the clock of ages and of the
// windows of alerts (nil: time.Now).
func New(f Fleet, now func() time.Time) *Dashboard {
	if now == nil {
		now = time.Now
	}
	return &Dashboard{fleet: f, now: now}
}

// ServeHTTP answers the paths "/" (overview), "/alerts", "/host/NAME" and
// "/style.css"; "" (the prefix alone) redirects to "/"; anything else is
// 404.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed, "the dashboard is read-only: GET and HEAD only")
		return
	}
	path := r.URL.Path
	switch {
	case path == "":
		h.Set("Location", "dashboard/")
		w.WriteHeader(http.StatusMovedPermanently)
	case path == "/style.css":
		h.Set("Content-Type", "text/css; charset=utf-8")
		_, _ = w.Write(style) // a failed write: the client went away
	case path == "/":
		d.render(w, "overview", d.overview())
	case path == "/alerts":
		d.render(w, "alerts", d.alerts())
	case strings.HasPrefix(path, "/host/"):
		p, ok := d.host(strings.TrimPrefix(path, "/host/"))
		if !ok {
			plain(w, http.StatusNotFound, "no such host")
			return
		}
		d.render(w, "host", p)
	default:
		plain(w, http.StatusNotFound, "no such page")
	}
}

// render executes a page into memory first, so that a failure is a 500
// and not half a page.
func (d *Dashboard) render(w http.ResponseWriter, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		plain(w, http.StatusInternalServerError, "render "+name+": "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = b.WriteTo(w) // a failed write: the client went away
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}
