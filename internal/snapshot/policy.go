package snapshot

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
)

// Policy says which snapshots forget keeps: the newest Last, the newest in
// each of the newest Hourly hours, Daily days, and so on, and every one
// stored within Within before now. A snapshot kept by any rule is kept.
//
// Every rule reads the time the store recorded a snapshot (Stamped.Stamp),
// never the time in the snapshot, which is the client's claim. A snapshot
// that claims a time more than MaxSkew after its stamp cannot be what it
// says (a backup is stored after it starts): it is suspect, counts for no
// rule, and is kept for an administrator to forget by ID. So a compromised
// host that floods the repository with snapshots dated in the future
// pushes no real snapshot out of the policy (docs/design.md, "Forget and
// prune").
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       time.Duration
	// MaxSkew is how far a snapshot's claimed time may run ahead of its
	// stamp (clients' clocks are not exact).
	MaxSkew time.Duration
	// Location is the time zone of the calendar rules; nil means UTC.
	Location *time.Location
}

// Empty reports whether p keeps nothing, which forget refuses to apply.
func (p Policy) Empty() bool {
	return p.Last <= 0 && p.Hourly <= 0 && p.Daily <= 0 && p.Weekly <= 0 &&
		p.Monthly <= 0 && p.Yearly <= 0 && p.Within <= 0
}

// String describes p as its flags would.
func (p Policy) String() string {
	var parts []string
	for _, r := range p.rules() {
		if r.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r.name, r.n))
		}
	}
	if p.Within > 0 {
		parts = append(parts, "within "+p.Within.String())
	}
	return strings.Join(parts, ", ")
}

// Stamped is a snapshot with what the store recorded of it: the time, and
// the host whose credential stored it (Owner; "" if the store does not
// know).
type Stamped struct {
	*Snapshot
	Stamp time.Time
	Owner string
}

// Host is the host a snapshot is grouped under: the store's Owner if it
// recorded one, else the hostname the snapshot claims.
func (s Stamped) Host() string {
	if s.Owner != "" {
		return s.Owner
	}
	return s.Hostname
}

// Decision is what a policy says of one snapshot, and why.
type Decision struct {
	Stamped
	Keep    bool
	Reasons []string // the rules that keep it ("daily", "within 720h0m0s", ...)
}

type rule struct {
	name   string
	n      int
	bucket func(time.Time) string // "" for the last-n rule: every snapshot its own bucket
}

func (p Policy) rules() []rule {
	return []rule{
		{"last", p.Last, nil},
		{"hourly", p.Hourly, func(t time.Time) string { return t.Format("2006-01-02 15") }},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%d-W%02d", y, w)
		}},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
}

// Suspect reports whether s claims a time more than p.MaxSkew after the
// store stamped it.
func (p Policy) Suspect(s Stamped) bool {
	return !s.Stamp.IsZero() && s.Time.After(s.Stamp.Add(p.MaxSkew))
}

// Apply decides each snapshot of one group (forget groups by host and
// paths), newest stamp first; equal stamps (stored within one tick of
// the store's clock) are ordered by claimed time, then ID. A calendar
// rule keeps the newest snapshot of each of its newest n periods that
// hold one. A snapshot without a stamp is kept, as nothing says how old
// it is, and so is a suspect one.
func (p Policy) Apply(list []Stamped, now time.Time) []Decision {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	out := make([]Decision, len(list))
	for i, s := range list {
		out[i] = Decision{Stamped: s}
	}
	slices.SortStableFunc(out, func(a, b Decision) int {
		if c := b.Stamp.Compare(a.Stamp); c != 0 {
			return c
		}
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	keep := func(d *Decision, why string) {
		d.Keep = true
		d.Reasons = append(d.Reasons, why)
	}
	for _, r := range p.rules() {
		left, last := r.n, ""
		for i := range out {
			d := &out[i]
			if left <= 0 {
				break
			}
			if d.Stamp.IsZero() || p.Suspect(d.Stamped) {
				continue
			}
			if r.bucket != nil {
				b := r.bucket(d.Stamp.In(loc))
				if b == last {
					continue
				}
				last = b
			}
			keep(d, r.name)
			left--
		}
	}
	for i := range out {
		d := &out[i]
		switch {
		case d.Stamp.IsZero():
			keep(d, "no store stamp")
		case p.Suspect(d.Stamped):
			keep(d, fmt.Sprintf("suspect: claims %s, stored %s", d.Time.UTC().Format(time.RFC3339), d.Stamp.UTC().Format(time.RFC3339)))
		case p.Within > 0 && now.Sub(d.Stamp) <= p.Within:
			keep(d, "within "+p.Within.String())
		}
	}
	return out
}

// ApplyGroups applies p to each group of snapshots of one host and one set
// of paths, among the snapshots of hosts (all hosts if empty), groups in
// the order of their host and paths. The host is Stamped.Host: the one
// the store recorded as storing the snapshot where it records one, so a
// host that claims another's name in its snapshots neither pushes the
// other's snapshots out of their group nor has its own kept by it.
func (p Policy) ApplyGroups(list []Stamped, hosts []string, now time.Time) []Decision {
	groups := map[string][]Stamped{}
	var keys []string
	for _, s := range list {
		if len(hosts) > 0 && !slices.Contains(hosts, s.Host()) {
			continue
		}
		paths := slices.Clone(s.Paths)
		slices.Sort(paths)
		key := s.Host() + "\x00" + strings.Join(paths, "\x00")
		if groups[key] == nil {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], s)
	}
	slices.Sort(keys)
	var out []Decision
	for _, k := range keys {
		out = append(out, p.Apply(groups[k], now)...)
	}
	return out
}

// Named decides to remove the snapshots of list that names name (as Find
// resolves them), one Decision each, in the order of list. A name that
// matches none, or several, is an error.
func Named(list []Stamped, names []string) ([]Decision, error) {
	plain := make([]*Snapshot, len(list))
	for i, s := range list {
		plain[i] = s.Snapshot
	}
	doomed := map[blob.ID]bool{}
	for _, name := range names {
		sn, err := Find(plain, name, nil)
		if err != nil {
			return nil, err
		}
		doomed[sn.ID] = true
	}
	var out []Decision
	for _, s := range list {
		if doomed[s.ID] {
			out = append(out, Decision{Stamped: s})
		}
	}
	return out, nil
}
