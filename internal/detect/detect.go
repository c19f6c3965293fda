// Package detect scores file events for ransomware and wiper behaviour. It
// is pure: no I/O, no goroutines, no clock. The caller (internal/watcher)
// turns what the kernel reports into Events carrying content Samples, and
// feeds them in time order to a Detector, which returns an Alert when an
// actor's score crosses a threshold.
//
// Each event yields signals (see Signal) with a weight per file; what one
// file adds is capped (Config.FileCap) so a single odd file never alerts.
// Evidence is summed per actor over a sliding window: per process group
// or tree (Actor.Group, chosen by the caller) and, summed over those, per
// user.
// Boosters count only for an actor that already shows damage. Every alert
// lists the signals that fired, with their scores and files, and the
// processes involved. The scoring is specified in docs/design.md,
// "Watcher (detector version 1)".
package detect

import (
	"cmp"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// Op is what happened to a file.
type Op uint8

// The operations.
const (
	// Write: content was written (the file was closed after writing,
	// truncated, or another file was renamed over it). New is its sample,
	// Old the sample from before if known.
	Write Op = iota + 1
	// Delete: the file was removed. Old is its last known sample.
	Delete
	// Rename: the file moved from OldPath to Path.
	Rename
	// RawWrite: a block device (Path) was written to directly.
	RawWrite
	// Create: the file (or folder, Dir) was created. It scores nothing,
	// but deleting or truncating it within Config.FreshAge is churn
	// (temporary files, journals, lock files), not damage, and the same
	// small file appearing in new folders is a tree being unpacked, not
	// ransom notes. A file created where its own actor deleted one
	// earlier in the window replaces it (git checkout, installers): once
	// it is written the deletion no longer counts, and the content is
	// compared with the deleted file's.
	Create
	// Writing: the file is being written and is still open. It scores
	// nothing; a caller need report it only while LockedDown, for whom
	// it is an event of the actor (see Observe).
	Writing
)

// Actor is who caused an event. Group names the actor the caller
// aggregates the process into (internal/watcher: its process group ID, or
// the root PID of its process tree); 0 when the PID is unknown (inotify),
// in which case every such event is one actor.
type Actor struct {
	PID     int
	Group   int
	UID     int
	Command string
	// Own: the process is in the caller's own process group (the job
	// that runs the watcher: a drill's clean-up, a test runner). It is
	// scored as any other, but neither implicated by its user's alerts
	// nor locked down (see Observe).
	Own bool
	// Exe identifies the executable file the process runs (opaque to
	// the detector; internal/watcher: device and inode), or "" when it
	// is unknown or one many unrelated programs run (a shell, an
	// interpreter, a system tool). The groups of one user running one
	// such executable are scored together (see Observe).
	Exe string
}

// Event is one file event with its features.
type Event struct {
	Time    time.Time
	Actor   Actor
	Op      Op
	Path    string
	OldPath string  // Rename: the former path
	Old     *Sample // content before the event, nil if unknown
	New     *Sample // Write: content after
	Canary  bool    // the event touched a canary file
	// Copies are other files that held the same content as Old when a
	// Delete was read (equal samples): the content lives on in any of
	// them not created within FreshAge.
	Copies []string
	Dir    bool // Create: Path is a folder
	// Guarded: the event wrote, renamed or deleted a file Kalaja keeps on
	// the host (its repository, state, keys). It alerts on its own,
	// whatever the weights and threshold (see Observe).
	Guarded bool
}

// Hit is one signal in an alert: its total score and the files it fired
// for. Files are paths, each once; a rename lists both its paths, and
// Renames says which became which.
type Hit struct {
	Signal  string   `json:"signal"`
	Score   float64  `json:"score"`
	Files   []string `json:"files"`
	Renames []Move   `json:"renames,omitempty"` // the renames the signal fired for (rename_ext)
}

// Move is a file renamed from one path to another.
type Move struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Alert says which actor crossed its threshold, why, and what it touched.
type Alert struct {
	Time      time.Time `json:"time"`
	Scope     string    `json:"scope"`     // "process tree", "executable", "user", or "unknown process" (no PID)
	PID       int       `json:"pid"`       // the process whose event crossed the threshold (0 if unknown)
	Group     int       `json:"group"`     // its Actor.Group (0 if unknown)
	PIDs      []int     `json:"pids"`      // every process whose events scored (the caller adds the ones it stopped)
	Command   string    `json:"command"`   // command of PID
	UID       int       `json:"uid"`       // -1 if unknown
	Score     float64   `json:"score"`     // score that crossed Threshold
	Threshold float64   `json:"threshold"` // the threshold crossed
	Signals   []Hit     `json:"signals"`   // highest score first
	Files     []string  `json:"files"`     // files the implicated processes touched in the window (bounded)
	Stopped   bool      `json:"stopped"`   // set by the caller once the processes are stopped
	StopError string    `json:"stop_error,omitempty"`
}

// Paths returns every path a implicates, each once, sorted: the files
// the processes touched and every file of every signal, both paths of
// each rename included.
func (a Alert) Paths() []string {
	seen := map[string]bool{}
	for _, f := range a.Files {
		seen[f] = true
	}
	for _, h := range a.Signals {
		for _, f := range h.Files {
			seen[f] = true
		}
		for _, m := range h.Renames {
			seen[m.From], seen[m.To] = true, true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// Limits on the state kept per actor, so memory stays bounded whatever
// the event rate.
const (
	maxHits    = 4096 // evidence entries per group
	maxTouched = 256  // files remembered per group for alerts
	maxRecent  = 256  // recent new and deleted files per group (pairing)
	maxFresh   = 1 << 17
	maxNotes   = 1024
	maxUsers   = 1024 // users with a recent user alert
)

// Detector scores events. It is not safe for concurrent use.
type Detector struct {
	cfg    Config
	groups map[int]*group
	users  map[int]time.Time    // UID -> its last user alert (see Observe)
	fresh  map[string]birth     // path -> creation seen, kept for the window
	heirs  map[string]time.Time // fresh copy -> when it became the only copy of a deleted file's content
	swept  time.Time
	raised uint64 // events that raised an actor's score
}

type contrib struct {
	t     time.Time
	key   string // the file (or note name) the contribution is for
	sig   Signal
	score float64
	files []string
	move  Move // a rename's paths, or zero
	pid   int
}

// birth is when a file was created, and by which actor (its group key).
type birth struct {
	t     time.Time
	group int
}

type recent struct {
	t      time.Time
	path   string
	opaque bool    // a new file with high-entropy unrecognised content
	old    *Sample // a deleted file's last sample, if known
	typ    Type    // a written file's type
	inner  Type    // a written gzip file's Sample.Inner
}

type group struct {
	key      int
	uid      int
	own      bool   // Actor.Own
	exe      string // Actor.Exe of its latest event that named one
	hits     []contrib
	seen     map[[2]string]bool // (key, signal) already counted in the window
	pids     map[int]string     // PID -> command
	last     time.Time
	lastPID  int
	touched  []string
	created  []recent
	deleted  []recent
	wrote    []recent                     // files written, with their types (see kept)
	notes    map[string]map[string]string // name+hash -> dir -> path
	replaced map[string]*Sample           // path recreated after its deletion -> the deleted content
	score    float64
	scoreHit []Hit
	alerted  time.Time // last alert
}

// New returns a Detector with cfg, which must be valid (Config.Validate).
func New(cfg Config) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Weights = maps.Clone(cfg.Weights)
	return &Detector{cfg: cfg, groups: map[int]*group{}, users: map[int]time.Time{}, fresh: map[string]birth{}, heirs: map[string]time.Time{}}, nil
}

// Observe scores one event and returns an alert if the event's actor
// crossed a threshold, or the event is Guarded (nil otherwise). Events must come in time order.
// After an alert the implicated actors start again from zero, so an actor
// that goes on (not stopped) alerts again once it has done as much more,
// and Config.Cooldown has passed.
//
// The groups of one user that run one executable (Actor.Exe) are also
// scored together against Threshold (scope "executable"): the workers of
// a split attack, each in a session of its own, are one program's.
//
// An alert of a process tree, an executable or a user (the groups of one
// user together crossing UserThreshold) implicates every group of that user with an
// event within Cooldown before it, and puts the user under lockdown
// until Cooldown has passed since its last alert: any other group of
// that user with an event in that time alerts at once (scope "user",
// Threshold 0), whatever the event. So the workers of a split attack are
// stopped with the first, or at their first event (before their first
// damaged file, as a ransom note or an open for writing comes first).
func (d *Detector) Observe(e Event) *Alert {
	d.sweep(e.Time)
	g := d.group(e.Actor, e.Time)
	// quiet is what an event that crosses no threshold returns: nothing,
	// unless the user is under lockdown (see above).
	quiet := func() *Alert {
		if d.lockdown(g, e) {
			return d.alert(e, d.userGroups(g.uid, e.Time, g), g.score, 0, "user")
		}
		return nil
	}
	if !e.Dir {
		g.touch(e.Path)
	}
	if e.Op == Create && !e.Dir && !e.Guarded && g.recreate(e.Path) {
		return quiet() // a replacement scores nothing, and is not fresh
	}
	if e.Op == Write && e.Old == nil {
		if old, ok := g.replaced[e.Path]; ok {
			// The replacement's content is here: the deletion is taken
			// back, and the content judged against the deleted file's.
			delete(g.replaced, e.Path)
			e.Old = old
			g.hits = slices.DeleteFunc(g.hits, func(c contrib) bool { return c.key == e.Path && c.sig == Deleted })
			delete(g.seen, [2]string{e.Path, string(Deleted)})
			g.rescore(d.cfg)
		}
	}
	hits := d.signals(g, e)
	d.remember(e)
	if len(hits) == 0 {
		return quiet()
	}
	before := g.score
	for _, h := range hits {
		g.add(h)
	}
	g.rescore(d.cfg)
	if g.score > before {
		d.raised++
	}
	if !g.alerted.IsZero() && e.Time.Sub(g.alerted) < d.cfg.Cooldown {
		return nil
	}
	if e.Actor.PID == 0 {
		if g.score >= d.cfg.Threshold || e.Guarded {
			a := d.alert(e, []*group{g}, g.score, d.cfg.Threshold, "process tree")
			a.Scope = "unknown process"
			return a
		}
		return nil
	}
	if g.score >= d.cfg.Threshold || e.Guarded {
		return d.alert(e, d.userGroups(g.uid, e.Time, g), g.score, d.cfg.Threshold, "process tree")
	}
	if g.exe != "" {
		var kin []*group
		total := 0.0
		for _, o := range d.groups {
			if o.uid == g.uid && o.exe == g.exe && o.key != 0 && o.score > 0 && (o.alerted.IsZero() || e.Time.Sub(o.alerted) >= d.cfg.Cooldown) {
				kin = append(kin, o)
				total += o.score
			}
		}
		if len(kin) > 1 && total >= d.cfg.Threshold {
			return d.alert(e, d.userGroups(g.uid, e.Time, kin...), total, d.cfg.Threshold, "executable")
		}
	}
	var user []*group
	total := 0.0
	for _, o := range d.groups {
		if o.uid == g.uid && o.key != 0 && o.score > 0 && (o.alerted.IsZero() || e.Time.Sub(o.alerted) >= d.cfg.Cooldown) {
			user = append(user, o)
			total += o.score
		}
	}
	if len(user) > 1 && total >= d.cfg.UserThreshold {
		return d.alert(e, d.userGroups(g.uid, e.Time, user...), total, d.cfg.UserThreshold, "user")
	}
	return quiet()
}

// LockedDown reports whether some user is under lockdown at t (see
// Observe): then every event of that user's processes counts, Writing
// included.
func (d *Detector) LockedDown(t time.Time) bool {
	for _, at := range d.users {
		if t.Sub(at) < d.cfg.Cooldown {
			return true
		}
	}
	return false
}

// lockdown reports whether e's group, of a known user and process, acts
// while its user is under lockdown: within Cooldown of the user's last
// alert, and the group itself was not alerted within Cooldown.
func (d *Detector) lockdown(g *group, e Event) bool {
	if e.Actor.PID == 0 || g.uid < 0 || g.own {
		return false
	}
	t, ok := d.users[g.uid]
	return ok && e.Time.Sub(t) < d.cfg.Cooldown && (g.alerted.IsZero() || e.Time.Sub(g.alerted) >= d.cfg.Cooldown)
}

// userGroups returns scored, the groups an alert is about, and with them
// every other group of uid (if known) that acted in the protected folders
// within Cooldown before t and was not alerted within it: the other
// workers of a split attack, also those that had not scored yet (one
// writing its first file), so that they are stopped with the rest. It
// marks uid as alerted at t (see Observe).
func (d *Detector) userGroups(uid int, t time.Time, scored ...*group) []*group {
	if uid < 0 {
		return scored
	}
	if _, ok := d.users[uid]; !ok && len(d.users) >= maxUsers {
		clear(d.users)
	}
	d.users[uid] = t
	out := slices.Clone(scored)
	for _, o := range d.groups {
		recent := !o.alerted.IsZero() && t.Sub(o.alerted) < d.cfg.Cooldown // alerted already
		if o.uid == uid && o.key != 0 && !o.own && t.Sub(o.last) < d.cfg.Cooldown && !recent && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// Raised returns how many events so far raised an actor's score. The
// watcher reads the next events at once while it grows: an attack under
// way adds evidence with every batch it causes, while a program's one odd
// file (a lock file deleted) should not keep the watcher reading eagerly
// for the whole window.
func (d *Detector) Raised() uint64 { return d.raised }

// Score returns the score of a's process tree now: 0 for one without
// evidence (an alert starts the trees it implicates again from zero).
func (d *Detector) Score(a Actor) float64 {
	if g := d.groups[d.key(a)]; g != nil {
		return g.score
	}
	return 0
}

// Threshold returns the score at which a process tree alerts.
func (d *Detector) Threshold() float64 { return d.cfg.Threshold }

// signals returns the evidence one event adds.
func (d *Detector) signals(g *group, e Event) []contrib {
	var out []contrib
	add := func(key string, s Signal, files ...string) {
		if len(files) == 0 {
			files = []string{key}
		}
		out = append(out, contrib{t: e.Time, key: key, sig: s, score: d.cfg.Weights[s], files: files, pid: e.Actor.PID})
	}
	kept := false // a deleted file's content lives on
	if e.Op == Delete && (e.Canary || d.counts(e.Path, e.Time, g)) {
		kept = g.kept(e.Path, e.Old) || d.copied(e)
	}
	if e.Canary && !kept {
		add(e.Path, Canary)
	}
	if e.Guarded {
		add(e.Path, BackupTamper)
		return out // what it did to the file does not matter
	}
	switch e.Op {
	case RawWrite:
		add(e.Path, RawDisk)
	case Write:
		if e.New == nil {
			break
		}
		if e.New.Type == EmptyType {
			if e.Old != nil && e.Old.Size > 0 && d.counts(e.Path, e.Time, g) {
				add(e.Path, Truncated)
			}
			break
		}
		if e.Old == nil {
			d.newFile(g, e, add)
		}
		g.wrote = appendRecent(g.wrote, recent{t: e.Time, path: e.Path, typ: e.New.Type, inner: e.New.Inner})
		contentSignals(e.Path, e.Old, e.New, add)
	case Delete:
		if !d.counts(e.Path, e.Time, g) {
			break
		}
		g.deleted = appendRecent(g.deleted, recent{t: e.Time, path: e.Path, old: e.Old})
		for _, c := range g.created {
			if c.opaque && replaces(c.path, e.Path) {
				add(e.Path, TypeLost, e.Path, c.path)
			}
		}
		if !kept && (valuable(e.Path, e.Old) || d.heir(e.Path, e.Time)) {
			add(e.Path, Deleted)
		}
	case Rename:
		if suspiciousRename(e.OldPath, e.Path) {
			add(e.OldPath, RenamedExt, e.OldPath, e.Path) // one file: capped with its content signals
			out[len(out)-1].move = Move{From: e.OldPath, To: e.Path}
		}
	}
	return out
}

// contentSignals compares a file's new content with what it was (old, if
// known) or what its name promises.
func contentSignals(p string, old, cur *Sample, add func(string, Signal, ...string)) {
	prior := expectedType(p)
	if old != nil {
		prior = old.Type
	}
	fired := false
	if cur.Type == ZeroType {
		if old != nil && old.Type != ZeroType && old.Type != EmptyType || old == nil && prior != Unknown {
			add(p, Zeroed)
			fired = true
		}
	} else {
		// A new file whose name promises a format but whose content is
		// unrecognised and low in entropy (text in a legacy encoding, an
		// archive with a prefix) was never of that format: only
		// ciphertext-like content loses the type a new name promises.
		lost := prior != Unknown && prior != EmptyType && prior != ZeroType && prior != EncodedType &&
			(cur.Type == Unknown || cur.Type == EncodedType) &&
			(old != nil || cur.Type == EncodedType || cur.High())
		if lost {
			add(p, TypeLost)
			fired = true
		}
		if cur.Type == EncodedType && prior != EncodedType && (old != nil || prior != Unknown) {
			add(p, Encoded)
			fired = true
		}
		if s, ok := entropySignal(old, cur, prior); ok {
			add(p, s)
			fired = true
		}
	}
	if fired && old != nil && old.Size > 0 && !overlap(old, cur) {
		add(p, SimilarityLost)
	}
}

// entropySignal reports Entropy when blocks turned from low to high entropy
// while the type did not stay the same recognised format, or Partial when
// besides such blocks others are unchanged (intermittent encryption).
func entropySignal(old, cur *Sample, prior Type) (Signal, bool) {
	if cur.Type != Unknown && cur.Type == prior {
		return "", false
	}
	if old == nil {
		if prior == TextType && cur.High() {
			return Entropy, true
		}
		return "", false
	}
	sameShape := old.Size == cur.Size && len(old.Blocks) == len(cur.Blocks)
	if old.High() && !sameShape {
		return "", false
	}
	turned, same := 0, 0
	for i, b := range cur.Blocks {
		var was *Block
		if sameShape {
			was = &old.Blocks[i]
		}
		switch {
		case was != nil && was.Hash == b.Hash:
			same++
		case b.High && (was != nil && !was.High || was == nil && !old.High()):
			turned++
		}
	}
	switch {
	case turned > 0 && same > 0:
		return Partial, true
	case turned > 0:
		return Entropy, true
	}
	return "", false
}

// overlap reports whether any block of old survives unchanged in cur.
func overlap(old, cur *Sample) bool {
	for _, a := range old.Blocks {
		for _, b := range cur.Blocks {
			if a.Hash == b.Hash {
				return true
			}
		}
	}
	return false
}

// newFile scores a file written with no known earlier content: a new
// opaque file (booster), one that replaces a file the actor deleted, or a
// ransom note.
func (d *Detector) newFile(g *group, e Event, add func(string, Signal, ...string)) {
	cur := e.New
	// gzip whose start does not decompress to anything recognised is as
	// opaque as unknown bytes: compressed ciphertext, or a header on noise.
	opaque := (cur.Type == Unknown || cur.Type == "gzip" && cur.Inner == Unknown) && cur.High()
	if opaque || cur.Type == EncodedType {
		add(e.Path, NewHighEntropy)
		g.created = appendRecent(g.created, recent{t: e.Time, path: e.Path, opaque: true})
		for _, r := range g.deleted {
			if replaces(e.Path, r.path) {
				add(r.path, TypeLost, r.path, e.Path)
			}
		}
	}
	if cur.Type == TextType && cur.Size >= 16 && cur.Size <= 64<<10 && len(cur.Blocks) > 0 {
		key := path.Base(e.Path) + "\x00" + hashKey(cur)
		if g.notes == nil {
			g.notes = map[string]map[string]string{}
		}
		dirs := g.notes[key]
		if dirs == nil {
			if len(g.notes) >= maxNotes {
				return
			}
			dirs = map[string]string{}
			g.notes[key] = dirs
		}
		if dir := path.Dir(e.Path); !d.isFresh(dir, e.Time) {
			dirs[dir] = e.Path
		}
		if len(dirs) >= d.cfg.NoteDirs {
			add("note:"+path.Base(e.Path), RansomNote, slices.Sorted(maps.Values(dirs))...)
		}
	}
}

func hashKey(s *Sample) string {
	var b [8]byte
	h := s.Blocks[0].Hash
	for i := range b {
		b[i] = byte(h >> (8 * i))
	}
	return string(b[:])
}

// kept reports whether the content of p, which the group deleted (old is
// its last sample, if known), lives on in a file the group wrote: p
// compressed into p.gz, whose decompressed head is of p's type (of any
// recognised type when p was never sampled), or, p being such a .gz, p
// decompressed into its name without .gz. Compression keeps every byte;
// gzip magic followed by noise, or compressed ciphertext, has no
// recognised inner type and keeps nothing. Formats the detector cannot
// look into (xz, zstd, bzip2) are not trusted.
func (g *group) kept(p string, old *Sample) bool {
	for _, w := range g.wrote {
		switch {
		case w.typ == "gzip" && joins(w.path, p, ".gz"):
			if w.inner != Unknown && (old == nil || w.inner == old.Type) {
				return true
			}
		case old != nil && old.Type == "gzip" && old.Inner != Unknown && joins(p, w.path, ".gz"):
			if w.typ == old.Inner {
				return true
			}
		}
	}
	return false
}

// copied reports whether a deleted file's content lives on in a copy:
// rsync --delete of a file moved in the source, a duplicate removed, mv
// onto another file system (copy, then delete). A copy made within
// FreshAge inherits the deleted file's standing: deleting or truncating
// it counts though it is fresh (an heir), so copy, delete, delete the
// copy costs an attacker as much as deleting.
func (d *Detector) copied(e Event) bool {
	var fresh []string
	for _, c := range e.Copies {
		if c == e.Path {
			continue
		}
		if !d.isFresh(c, e.Time) {
			return true
		}
		fresh = append(fresh, c)
	}
	for _, c := range fresh {
		if len(d.heirs) >= maxFresh {
			clear(d.heirs)
		}
		d.heirs[c] = e.Time
	}
	return len(fresh) > 0
}

// counts reports whether g deleting or truncating p at t is damage rather
// than churn: p is the heir of a deleted file, or it is neither fresh nor
// g's own (created by g within the window: a build's temporary files,
// deleted at the end of a build that took longer than FreshAge, are its
// own output, no user's data).
func (d *Detector) counts(p string, t time.Time, g *group) bool {
	if d.heir(p, t) {
		return true
	}
	b, ok := d.fresh[p]
	return !ok || t.Sub(b.t) >= d.cfg.FreshAge && (b.group != g.key || t.Sub(b.t) > d.cfg.Window)
}

// heir reports whether p, at t, is the only copy of a file deleted within
// the window (see copied): it has that file's standing, whatever its name.
func (d *Detector) heir(p string, t time.Time) bool {
	h, ok := d.heirs[p]
	return ok && t.Sub(h) <= d.cfg.Window
}

// valuable reports whether deleting p, last sampled as old (nil if
// unknown), loses a user's data. Not a log, a rotated or compressed
// generation of one, or a temporary file (expendable); not text, or a file
// never sampled, under a name with no known extension: Maildir messages,
// session, cache and spool files, which servers expire every day. Any
// other file is: a known document, media, code or archive extension, or a
// sampled file of any format but text.
func valuable(p string, old *Sample) bool {
	if old == nil {
		return Valuable(p, Unknown, false)
	}
	return Valuable(p, old.Type, true)
}

// Valuable reports whether deleting the file p, whose content was last
// seen to be of type t (seen false: never looked at), loses a user's data,
// by the rule valuable states: the watcher's deletion signal and a
// snapshot's health (internal/health) count the same deletions.
func Valuable(p string, t Type, seen bool) bool {
	if expendable(p) {
		return false
	}
	if known[ext(p)] {
		return true
	}
	return seen && t != TextType
}

// replaces reports whether newPath looks like a transformed copy of old:
// the same folder, and old's name plus an extension.
func replaces(newPath, old string) bool {
	ext, ok := strings.CutPrefix(newPath, old)
	return ok && strings.HasPrefix(ext, ".") && !strings.Contains(ext, "/")
}

// joins reports whether s is a+b, without making a+b: the detector asks
// it of every file a group recently wrote, at each deletion.
func joins(s, a, b string) bool {
	return len(s) == len(a)+len(b) && strings.HasPrefix(s, a) && strings.HasSuffix(s, b)
}

func appendRecent(list []recent, r recent) []recent {
	if len(list) >= maxRecent {
		list = list[1:]
	}
	return append(list, r)
}

// isFresh reports whether p was created less than FreshAge before t.
func (d *Detector) isFresh(p string, t time.Time) bool {
	b, ok := d.fresh[p]
	return ok && t.Sub(b.t) < d.cfg.FreshAge
}

// remember updates which files were created recently.
func (d *Detector) remember(e Event) {
	switch e.Op {
	case Create:
		if len(d.fresh) >= maxFresh {
			clear(d.fresh)
		}
		d.fresh[e.Path] = birth{t: e.Time, group: d.key(e.Actor)}
	case Rename:
		if w, ok := d.fresh[e.OldPath]; ok {
			delete(d.fresh, e.OldPath)
			d.fresh[e.Path] = w
		}
		if h, ok := d.heirs[e.OldPath]; ok {
			delete(d.heirs, e.OldPath)
			d.heirs[e.Path] = h
		}
	case Delete:
		delete(d.fresh, e.Path)
		delete(d.heirs, e.Path)
	}
}

// key returns the key of a's group.
func (d *Detector) key(a Actor) int {
	if a.Group == 0 {
		return a.PID
	}
	return a.Group
}

// group returns the state of a's process tree, creating it.
func (d *Detector) group(a Actor, t time.Time) *group {
	key := d.key(a)
	g := d.groups[key]
	if g == nil {
		g = &group{key: key, uid: a.UID, own: a.Own, seen: map[[2]string]bool{}, pids: map[int]string{}}
		if a.PID == 0 {
			g.uid = -1
		}
		d.groups[key] = g
	}
	if a.PID != 0 {
		g.pids[a.PID] = a.Command
	}
	if a.Exe != "" {
		g.exe = a.Exe
	}
	g.last, g.lastPID = t, a.PID
	return g
}

// sweep drops evidence older than the window, at most once a second of
// event time.
func (d *Detector) sweep(now time.Time) {
	if now.Sub(d.swept) < time.Second {
		return
	}
	d.swept = now
	for k, g := range d.groups {
		g.expire(now, d.cfg)
		if len(g.hits) == 0 && now.Sub(g.last) > d.cfg.Window {
			delete(d.groups, k)
		}
	}
	for p, b := range d.fresh {
		if now.Sub(b.t) > max(d.cfg.FreshAge, d.cfg.Window) {
			delete(d.fresh, p)
		}
	}
	for p, h := range d.heirs {
		if now.Sub(h) > d.cfg.Window {
			delete(d.heirs, p)
		}
	}
}

func (g *group) touch(p string) {
	if p == "" || slices.Contains(g.touched, p) {
		return
	}
	if len(g.touched) >= maxTouched {
		g.touched = g.touched[1:]
	}
	g.touched = append(g.touched, p)
}

// recreate reports whether p, just created, replaces a file the group
// deleted within the window. If so the deleted file's sample is kept for
// the write that follows, which takes the deletion's evidence back (see
// Observe): a name filled with no content (a symbolic link, a device) is
// still a deletion.
func (g *group) recreate(p string) bool {
	i := slices.IndexFunc(g.deleted, func(r recent) bool { return r.path == p })
	if i < 0 {
		return false
	}
	if g.replaced == nil {
		g.replaced = map[string]*Sample{}
	}
	if len(g.replaced) >= maxRecent {
		clear(g.replaced)
	}
	g.replaced[p] = g.deleted[i].old
	g.deleted = slices.Delete(g.deleted, i, i+1)
	return true
}

func (g *group) add(c contrib) {
	k := [2]string{c.key, string(c.sig)}
	if g.seen[k] {
		return
	}
	g.seen[k] = true
	if len(g.hits) >= maxHits {
		g.hits = g.hits[1:]
	}
	g.hits = append(g.hits, c)
}

// expire drops evidence older than the window.
func (g *group) expire(now time.Time, cfg Config) {
	i := 0
	for i < len(g.hits) && now.Sub(g.hits[i].t) > cfg.Window {
		delete(g.seen, [2]string{g.hits[i].key, string(g.hits[i].sig)})
		i++
	}
	if i > 0 {
		g.hits = slices.Delete(g.hits, 0, i)
		g.rescore(cfg)
	}
	keep := func(list []recent) []recent {
		return slices.DeleteFunc(list, func(r recent) bool { return now.Sub(r.t) > cfg.Window })
	}
	g.created, g.deleted, g.wrote = keep(g.created), keep(g.deleted), keep(g.wrote)
	if now.Sub(g.last) > cfg.Window {
		g.notes = nil
		g.touched = nil
		g.replaced = nil
	}
}

// rescore recomputes the group's score and its explanation: per file the
// capped sum of its signals, boosters only when there is damage.
func (g *group) rescore(cfg Config) {
	perFile := map[string]float64{}
	for _, c := range g.hits {
		if !immediate(c.sig) {
			perFile[c.key] += c.score
		}
	}
	bySig := map[Signal]*Hit{}
	var damage, boost float64
	for _, c := range g.hits {
		s := c.score
		if !immediate(c.sig) && perFile[c.key] > cfg.FileCap {
			s *= cfg.FileCap / perFile[c.key]
		}
		if booster(c.sig) {
			boost += s
		} else {
			damage += s
		}
		h := bySig[c.sig]
		if h == nil {
			h = &Hit{Signal: string(c.sig)}
			bySig[c.sig] = h
		}
		h.Score += s
		for _, f := range c.files {
			if len(h.Files) < maxTouched && !slices.Contains(h.Files, f) {
				h.Files = append(h.Files, f)
			}
		}
		if c.move != (Move{}) && len(h.Renames) < maxTouched && !slices.Contains(h.Renames, c.move) {
			h.Renames = append(h.Renames, c.move)
		}
	}
	g.score = damage
	if damage > 0 {
		g.score += boost
	}
	g.scoreHit = g.scoreHit[:0]
	for _, h := range bySig {
		if booster(Signal(h.Signal)) && damage == 0 {
			continue
		}
		h.Score = round(h.Score)
		g.scoreHit = append(g.scoreHit, *h)
	}
	slices.SortFunc(g.scoreHit, func(a, b Hit) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.Signal, b.Signal)
	})
}

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// alert builds the alert for groups and starts them again from zero.
func (d *Detector) alert(e Event, groups []*group, score, threshold float64, scope string) *Alert {
	a := &Alert{
		Time: e.Time, Scope: scope, PID: e.Actor.PID, Group: e.Actor.Group, Command: e.Actor.Command,
		UID: e.Actor.UID, Score: round(score), Threshold: threshold,
	}
	if e.Actor.PID == 0 {
		a.UID = -1
	}
	bySig := map[string]*Hit{}
	pids := map[int]bool{}
	for _, g := range groups {
		for p := range g.pids {
			pids[p] = true
		}
		for _, h := range g.scoreHit {
			m := bySig[h.Signal]
			if m == nil {
				m = &Hit{Signal: h.Signal}
				bySig[h.Signal] = m
			}
			m.Score = round(m.Score + h.Score)
			for _, f := range h.Files {
				if !slices.Contains(m.Files, f) {
					m.Files = append(m.Files, f)
				}
			}
			for _, r := range h.Renames {
				if !slices.Contains(m.Renames, r) {
					m.Renames = append(m.Renames, r)
				}
			}
		}
		for _, f := range g.touched {
			if len(a.Files) < maxTouched && !slices.Contains(a.Files, f) {
				a.Files = append(a.Files, f)
			}
		}
		g.hits, g.scoreHit, g.score, g.alerted = nil, nil, 0, e.Time
		g.created, g.deleted, g.wrote, g.notes, g.touched = nil, nil, nil, nil, nil
		clear(g.seen)
	}
	delete(pids, 0)
	a.PIDs = slices.Sorted(maps.Keys(pids))
	for _, h := range bySig {
		a.Signals = append(a.Signals, *h)
	}
	sort.Slice(a.Signals, func(i, j int) bool {
		if a.Signals[i].Score != a.Signals[j].Score {
			return a.Signals[i].Score > a.Signals[j].Score
		}
		return a.Signals[i].Signal < a.Signals[j].Signal
	})
	return a
}
