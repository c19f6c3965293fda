package snapshot

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/blob"
)

// stamped makes a snapshot claiming time claim, stored at stamp.
func stamped(name string, claim, stamp time.Time) Stamped {
	return Stamped{Snapshot: &Snapshot{ID: blob.Hash([]byte(name)), Time: claim}, Stamp: stamp}
}

// kept lists the names (by index into names) Apply keeps.
func kept(t *testing.T, p Policy, list []Stamped, now time.Time, names []string) []string {
	t.Helper()
	byID := map[blob.ID]string{}
	for i, s := range list {
		byID[s.ID] = names[i]
	}
	var out []string
	for _, d := range p.Apply(list, now) {
		if d.Keep != (len(d.Reasons) > 0) {
			t.Errorf("%s: keep %v with reasons %q", byID[d.ID], d.Keep, d.Reasons)
		}
		if d.Keep {
			out = append(out, byID[d.ID])
		}
	}
	slices.Sort(out)
	return out
}

func TestPolicy(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	// One honest snapshot every 6 hours for 40 days, stored a minute after
	// it started.
	var list []Stamped
	var names []string
	for h := 0; h < 40*24; h += 6 {
		at := now.Add(-time.Duration(h) * time.Hour)
		name := at.Format("01-02T15")
		list = append(list, stamped(name, at.Add(-time.Minute), at))
		names = append(names, name)
	}
	tests := []struct {
		name string
		p    Policy
		want []string
	}{
		{"last 3", Policy{Last: 3}, []string{"11-29T18", "11-30T00", "11-30T06", "11-30T12"}[1:]},
		{"daily 3", Policy{Daily: 3}, []string{"11-28T18", "11-29T18", "11-30T12"}},
		{"hourly 2", Policy{Hourly: 2}, []string{"11-30T06", "11-30T12"}},
		// 2026-11-30 is a Monday: the newest of its week is itself, of the
		// week before it is Sunday 29 18:00.
		{"weekly 2", Policy{Weekly: 2}, []string{"11-29T18", "11-30T12"}},
		{"monthly 2", Policy{Monthly: 2}, []string{"10-31T18", "11-30T12"}},
		{"yearly 5", Policy{Yearly: 5}, []string{"11-30T12"}},
		{"within 13h", Policy{Within: 13 * time.Hour}, []string{"11-30T00", "11-30T06", "11-30T12"}},
		{"rules add up", Policy{Last: 1, Daily: 2}, []string{"11-29T18", "11-30T12"}},
		{"empty keeps nothing", Policy{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kept(t, tt.p, list, now, names); !slices.Equal(got, tt.want) {
				t.Errorf("kept %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPolicyFlood is the attack restic's append-only mode loses to: a
// compromised host stores many snapshots that claim future dates, and the
// administrator's forget, run on claimed times, would keep those and drop
// the real ones. On store stamps every real snapshot inside the policy
// stays, and the fakes are kept as suspect, not counted.
func TestPolicyFlood(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var list []Stamped
	var names, real []string
	for d := range 7 {
		at := now.Add(-time.Duration(d)*24*time.Hour - time.Hour)
		name := fmt.Sprintf("real-%d", d)
		list = append(list, stamped(name, at.Add(-10*time.Minute), at))
		names, real = append(names, name), append(real, name)
	}
	for i := range 100 {
		name := fmt.Sprintf("fake-%03d", i)
		claim := now.AddDate(0, 0, i+1) // a day each into the future
		list = append(list, stamped(name, claim, now.Add(-time.Duration(i)*time.Second)))
		names = append(names, name)
	}
	p := Policy{Daily: 7, MaxSkew: time.Hour}
	var fakesKept int
	keptSet := map[string]bool{}
	for _, name := range kept(t, p, list, now, names) {
		keptSet[name] = true
		if name[:4] == "fake" {
			fakesKept++
		}
	}
	for _, name := range real {
		if !keptSet[name] {
			t.Errorf("real snapshot %s was forgotten", name)
		}
	}
	if fakesKept != 100 {
		t.Errorf("%d of 100 suspect snapshots kept, want all (for the administrator to forget by ID)", fakesKept)
	}
	for _, d := range p.Apply(list, now) {
		if p.Suspect(d.Stamped) != (d.Time.After(now)) {
			t.Errorf("snapshot claiming %v stored %v: suspect %v", d.Time, d.Stamp, p.Suspect(d.Stamped))
		}
	}
}

func TestPolicyWithoutStamp(t *testing.T) {
	now := time.Now()
	list := []Stamped{stamped("old", now.AddDate(-1, 0, 0), time.Time{}), stamped("new", now, now)}
	if got := kept(t, Policy{Last: 1}, list, now, []string{"old", "new"}); !slices.Equal(got, []string{"new", "old"}) {
		t.Errorf("kept %q, want both: a snapshot without a stamp is never forgotten", got)
	}
}

// TestPolicyEqualStamps: snapshots stored within one tick of the store's
// clock have equal stamps; the newer claimed time is the newer, whatever
// their IDs.
func TestPolicyEqualStamps(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, names := range [][]string{{"a", "b", "c"}, {"c", "b", "a"}, {"b", "c", "a"}} {
		var list []Stamped
		for i, name := range names {
			list = append(list, stamped(name, now.Add(time.Duration(i-3)*time.Second), now)) // claims before the stamp: honest
		}
		if got := kept(t, Policy{Last: 1}, list, now, names); !slices.Equal(got, names[2:]) {
			t.Errorf("claims in order %q, one stamp: kept %q, want the newest claim %q", names, got, names[2])
		}
	}
}

func TestApplyGroups(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	snap := func(name, host string, paths []string, age time.Duration) Stamped {
		s := stamped(name, now.Add(-age), now.Add(-age))
		s.Hostname, s.Paths = host, paths
		return s
	}
	list := []Stamped{
		snap("a1", "a", []string{"/x", "/y"}, 3*time.Hour),
		snap("a2", "a", []string{"/y", "/x"}, 2*time.Hour), // the same paths in another order
		snap("a3", "a", []string{"/x"}, time.Hour),
		snap("b1", "b", []string{"/x", "/y"}, 4*time.Hour),
		snap("b2", "b", []string{"/x", "/y"}, time.Hour),
	}
	names := map[blob.ID]string{}
	for i, s := range list {
		names[s.ID] = []string{"a1", "a2", "a3", "b1", "b2"}[i]
	}
	tests := []struct {
		hosts []string
		keep  []string
		drop  []string
	}{
		{nil, []string{"a2", "a3", "b2"}, []string{"a1", "b1"}},
		{[]string{"b"}, []string{"b2"}, []string{"b1"}},
		{[]string{"c"}, nil, nil},
	}
	for _, tt := range tests {
		var keep, drop []string
		for _, d := range (Policy{Last: 1}).ApplyGroups(list, tt.hosts, now) {
			if d.Keep {
				keep = append(keep, names[d.ID])
			} else {
				drop = append(drop, names[d.ID])
			}
		}
		slices.Sort(keep)
		slices.Sort(drop)
		if !slices.Equal(keep, tt.keep) || !slices.Equal(drop, tt.drop) {
			t.Errorf("hosts %q: keep %q, drop %q; want keep %q, drop %q", tt.hosts, keep, drop, tt.keep, tt.drop)
		}
	}
}

func TestNamed(t *testing.T) {
	now := time.Now()
	list := []Stamped{stamped("one", now, now), stamped("two", now, now)}
	got, err := Named(list, []string{list[1].ID.String()[:8]})
	if err != nil || len(got) != 1 || got[0].ID != list[1].ID || got[0].Keep {
		t.Fatalf("Named = %+v, %v; want the second snapshot, to remove", got, err)
	}
	if _, err := Named(list, []string{"ffffffff"}); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Named of an unknown ID = %v, want ErrNotFound", err)
	}
}

// TestApplyGroupsByOwner: a host (token web-07) stores snapshots that claim
// the hostname and paths of another (db-01), newer than the other's. The
// store recorded who stored each: grouping by it, the claims neither push
// db-01's newest snapshot out of its group, nor shelter web-07's under
// db-01's policy. Without an owner (a local directory) the claimed name
// groups.
func TestApplyGroupsByOwner(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	snap := func(name, owner string, age time.Duration) Stamped {
		s := stamped(name, now.Add(-age), now.Add(-age))
		s.Hostname, s.Paths, s.Owner = "db-01", []string{"/srv"}, owner
		return s
	}
	names := map[blob.ID]string{}
	list := []Stamped{snap("v1", "db-01", 3*time.Hour), snap("v2", "db-01", 2*time.Hour),
		snap("t1", "web-07", time.Hour), snap("t2", "web-07", time.Minute)}
	for _, s := range list {
		names[s.ID] = map[time.Duration]string{3 * time.Hour: "v1", 2 * time.Hour: "v2", time.Hour: "t1", time.Minute: "t2"}[now.Sub(s.Stamp)]
	}
	unowned := make([]Stamped, len(list))
	for i, s := range list {
		unowned[i] = s
		unowned[i].Owner = ""
	}
	tests := []struct {
		name  string
		list  []Stamped
		hosts []string
		keep  []string
	}{
		{"owned", list, nil, []string{"t2", "v2"}},
		{"owned, db-01 only", list, []string{"db-01"}, []string{"v2"}},
		{"owned, web-07 only", list, []string{"web-07"}, []string{"t2"}},
		{"no owner: the claim groups", unowned, []string{"db-01"}, []string{"t2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var keep []string
			for _, d := range (Policy{Last: 1}).ApplyGroups(tt.list, tt.hosts, now) {
				if d.Keep {
					keep = append(keep, names[d.ID])
				}
			}
			slices.Sort(keep)
			if !slices.Equal(keep, tt.keep) {
				t.Errorf("keep %q, want %q", keep, tt.keep)
			}
		})
	}
}
