package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/backup"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/event"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/outbox"
	"github.com/kalaja/kalaja/internal/recovery"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store/remote"
	"github.com/kalaja/kalaja/internal/store/s3"
	"github.com/kalaja/kalaja/internal/watcher"
)

// watchOptions are the flags of kalaja watch.
type watchOptions struct {
	config         string
	threshold      float64
	userThreshold  float64
	window         time.Duration
	weights        []string
	backend        string
	noStop         bool
	normalPriority bool
	noCanaries     bool
	alertLog       string
	webhook        string
	syslog         bool
	snapshot       bool
	heal           bool
	rawDevices     []string
	heartbeat      time.Duration
	guard          []string
	noGuard        bool
}

func newWatchCommand(g *globalOptions) *cobra.Command {
	o := &watchOptions{}
	cmd := &cobra.Command{
		Use:   "watch PATH...",
		Short: "Detect ransomware and wipers at work on protected folders, stop them and alert",
		Long: `Watch the given folders for ransomware and wiper behaviour until interrupted.

Every file write, truncation, rename and deletion under the folders is scored
for the process that made it and its process tree: content turned high-entropy
or unrecognisable (its format lost), similarity with the old content lost,
base64/hex encoding, overwrites with zeros, renames to unknown extensions,
ransom notes in many folders, mass deletion or truncation of older files,
canary files touched, and any raw write to a block device. Scores add up over
a window per process tree and per user; see docs/design.md, "Watcher
(detector version 1)", for the signals, weights and limits.

When a score crosses its threshold: the offending processes are stopped with
SIGSTOP (inspect them, then 'kill -KILL' or 'kill -CONT'), unless --no-stop;
one JSON line describing the alert (signals, scores, files, processes) goes to
stdout and to the alert log (--alert-log), which 'kalaja snapshots' and
'kalaja recover' read to mark the snapshots taken after an alert suspect, and
to syslog (--syslog) and a webhook (--webhook); with
--snapshot a protective snapshot of the folders is saved into the repository
(--repo and its password), leaving out the files the offenders touched.

With --heal, once the offending processes are stopped, the files the alert
names (written, renamed, truncated or deleted by them, and the file behind
a loop device they wrote to) are brought back from the newest clean
snapshot the ledger proves that predates the alert, in place, as 'kalaja
recover --in-place' does: what the attack left is moved into a quarantine
folder, every file written is verified, and a line saying what was healed
follows the alert in the alert log. The processes stay stopped.

When the repository (--repo, KALAJA_REPOSITORY) is a 'kalaja serve' location
(https://...), each alert, and a heartbeat every --heartbeat, also go to the
server with the host's token (KALAJA_SERVER_TOKEN_FILE or KALAJA_SERVER_TOKEN;
the certificate pinned with --cert as for every command), so that the vault
sees the attack and notices a watcher that falls silent. They go through an
on-disk queue in the state directory (outbox/): appended and synced first,
sent in order, kept while the server is unreachable and sent when it is
back, also after a restart of the watcher; the repository's password is not
needed for this. Nothing is sent for a local or S3 repository.

Kalaja's own files on this host are guarded whether or not they are in the
folders: the repository when it is a local folder, the state directory (ledger
pins, the alert log), the password file, the server token and certificate
files, and any --guard path. A write, rename or deletion there by a program
other than kalaja itself (ransomware deletes backups before it encrypts) is
an alert with the signal backup_tamper, raised at the first such change, and
the program is stopped. Reads are not watched. Change those files (a new
token, a new password file) with the watcher stopped, or expect an alert.
Guarding needs fanotify (root).

Kernel needs: as root (CAP_SYS_ADMIN) on Linux 5.17 or later, fanotify names
the process behind each event, so processes can be stopped and raw disk writes
seen. Otherwise (or with --backend inotify) the watcher runs with reduced
powers: inotify, no process IDs, nothing stopped; it says so when it starts.

Detector settings come from the defaults, then --config (a JSON file such as
{"threshold": 10, "user_threshold": 20, "window": "10m", "fresh_age": "30s",
"cooldown": "10s", "file_cap": 9, "note_dirs": 3, "weights": {"delete": 2.5}}),
then the flags.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			return runWatch(cmd, g, o, paths)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "JSON file with detector settings (threshold, user_threshold, file_cap, window, fresh_age, cooldown, note_dirs, weights)")
	f.Float64Var(&o.threshold, "threshold", 0, "score at which a process tree alerts (default 10)")
	f.Float64Var(&o.userThreshold, "user-threshold", 0, "score at which one user's process trees together alert (default 20)")
	f.DurationVar(&o.window, "window", 0, "how long evidence counts (default 10m)")
	f.StringArrayVar(&o.weights, "weight", nil, "set a signal's weight, as signal=number (repeatable)")
	f.StringVar(&o.backend, "backend", "auto", "event source: auto, fanotify or inotify")
	f.BoolVar(&o.noStop, "no-stop", false, "alert only; do not stop the offending processes")
	f.BoolVar(&o.normalPriority, "normal-priority", false, "never handle events at real-time priority, nor hold a suspect on the watcher's CPU (as root the watcher uses real-time priority for the first event after a quiet spell and after a score rose, and holds a process whose score rose: it stops an attack sooner on a busy machine)")
	f.BoolVar(&o.noCanaries, "no-canaries", false, "do not place canary files in the folders")
	f.StringVar(&o.alertLog, "alert-log", "", "append each alert as a JSON line to this file (default $KALAJA_ALERT_LOG, else alerts.jsonl in the state directory; 'kalaja snapshots' and 'kalaja recover' read it)")
	f.StringVar(&o.webhook, "webhook", "", "POST each alert as JSON to this URL")
	f.BoolVar(&o.syslog, "syslog", false, "send each alert to the system log")
	f.BoolVar(&o.snapshot, "snapshot", false, "on an alert, save a protective snapshot into the repository (--repo)")
	f.BoolVar(&o.heal, "heal", false, "once an alert's processes are stopped, bring the files they touched back from the newest clean snapshot in the repository (--repo), in place")
	f.StringSliceVar(&o.rawDevices, "raw-devices", nil, "block devices to watch for raw writes (default: all in /dev)")
	f.DurationVar(&o.heartbeat, "heartbeat", 30*time.Second, "with a 'kalaja serve' repository, tell the server every this often (1s to 24h) that the watcher runs; it marks the host silent after three missed (0: no heartbeats; alerts are still sent)")
	f.StringArrayVar(&o.guard, "guard", nil, "also guard this file or folder as Kalaja's own: any change by another program alerts (repeatable)")
	f.BoolVar(&o.noGuard, "no-guard", false, "do not guard Kalaja's own files (repository, state directory, password, token and certificate files)")
	return cmd
}

// detectConfig is the detector configuration: defaults < file < flags.
func (o *watchOptions) detectConfig() (detect.Config, error) {
	cfg := detect.DefaultConfig()
	if o.config != "" {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return cfg, usageError{fmt.Errorf("--config: %w", err)}
		}
		var fc struct {
			Threshold     *float64           `json:"threshold"`
			UserThreshold *float64           `json:"user_threshold"`
			FileCap       *float64           `json:"file_cap"`
			Window        string             `json:"window"`
			FreshAge      string             `json:"fresh_age"`
			Cooldown      string             `json:"cooldown"`
			NoteDirs      *int               `json:"note_dirs"`
			Weights       map[string]float64 `json:"weights"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc); err != nil {
			return cfg, usageError{fmt.Errorf("--config %s: %w", o.config, err)}
		}
		set := func(dst *float64, v *float64) {
			if v != nil {
				*dst = *v
			}
		}
		set(&cfg.Threshold, fc.Threshold)
		set(&cfg.UserThreshold, fc.UserThreshold)
		set(&cfg.FileCap, fc.FileCap)
		if fc.NoteDirs != nil {
			cfg.NoteDirs = *fc.NoteDirs
		}
		for _, d := range []struct {
			s   string
			dst *time.Duration
		}{{fc.Window, &cfg.Window}, {fc.FreshAge, &cfg.FreshAge}, {fc.Cooldown, &cfg.Cooldown}} {
			if d.s == "" {
				continue
			}
			v, err := time.ParseDuration(d.s)
			if err != nil {
				return cfg, usageError{fmt.Errorf("--config %s: %w", o.config, err)}
			}
			*d.dst = v
		}
		for s, w := range fc.Weights {
			cfg.Weights[detect.Signal(s)] = w
		}
	}
	if o.threshold != 0 {
		cfg.Threshold = o.threshold
	}
	if o.userThreshold != 0 {
		cfg.UserThreshold = o.userThreshold
	}
	if o.window != 0 {
		cfg.Window = o.window
	}
	for _, kv := range o.weights {
		name, v, ok := strings.Cut(kv, "=")
		w, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			return cfg, usageError{fmt.Errorf("--weight %q: want signal=number", kv)}
		}
		cfg.Weights[detect.Signal(name)] = w
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

func runWatch(cmd *cobra.Command, g *globalOptions, o *watchOptions, paths []string) error {
	ctx := cmd.Context()
	dcfg, err := o.detectConfig()
	if err != nil {
		return err
	}
	abs, err := archiver.CleanPaths(paths)
	if err != nil {
		return usageError{err}
	}
	var (
		r  *repo.Repository
		lc *ledger.Client
	)
	if o.snapshot || o.heal {
		if r, err = g.open(ctx, true); err != nil {
			return err
		}
		if o.heal {
			// Healing restores files: a write-only host cannot (3.1); its
			// files are brought back by recover with the recovery key.
			if err := r.RequireRead(); err != nil {
				return fmt.Errorf("--heal: %w", err)
			}
		}
		if lc, err = g.openLedger(ctx, r); err != nil {
			return err
		}
	}
	level := slog.LevelInfo
	if g.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	alertLog, err := g.alertLogPath(o.alertLog)
	if err != nil {
		return err
	}
	if o.heartbeat != 0 && (o.heartbeat < event.MinInterval || o.heartbeat > event.MaxInterval) {
		return usageError{fmt.Errorf("--heartbeat %v: want 0 (none) or %v to %v", o.heartbeat, event.MinInterval, event.MaxInterval)}
	}
	queue, vault, err := g.openOutbox()
	if err != nil {
		return err
	}
	sinkOpts := alert.Options{Stdout: cmd.OutOrStdout(), LogFile: alertLog, Syslog: o.syslog, Webhook: o.webhook}
	if queue != nil {
		sinkOpts.Outbox = queue
	}
	sinks, err := alert.Open(sinkOpts)
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = sinks.Close() }() // Send synced every alert to the log already

	alerts := make(chan detect.Alert, 64)
	var guard []string
	if !o.noGuard {
		guard = append(g.hostFiles(alertLog), o.guard...)
	}
	cfg := watcher.Config{
		Paths: abs, Detect: dcfg, Backend: o.backend, Stop: !o.noStop, Canaries: !o.noCanaries, Logger: log, Guard: guard,
		Realtime: !o.normalPriority && os.Geteuid() == 0,
		OnAlert: func(a detect.Alert) {
			select {
			case alerts <- a:
			default:
				log.Error("alert queue full: alert dropped from the sinks", "pid", a.PID, "score", a.Score)
			}
		},
	}
	if o.rawDevices != nil {
		cfg.RawDevices = o.rawDevices
	}
	w, err := watcher.New(cfg)
	if err != nil {
		return err
	}
	defer setGCPercent(watchGCPercent)()
	name, canStop := w.Backend()
	switch {
	case name != "fanotify":
		fmt.Fprintf(os.Stderr, "kalaja watch: REDUCED POWERS: backend %s (fanotify needs root and Linux 5.17+): "+
			"no process IDs, so nothing can be stopped and alerts cannot name the process\n", name)
	case !canStop:
		fmt.Fprintln(os.Stderr, "kalaja watch: backend fanotify; --no-stop: offending processes are named, not stopped")
	default:
		fmt.Fprintln(os.Stderr, "kalaja watch: backend fanotify: offending processes are named and stopped (SIGSTOP)")
	}

	var protector *backup.Protector
	if o.snapshot {
		host, _ := os.Hostname()
		cache, err := g.parentCache(r)
		if err != nil {
			return err
		}
		protector = backup.NewProtector(r, lc, abs, w.Canaries(), backup.Options{
			Host: host, Tags: []string{"alert"}, Version: version, Log: log, Cache: cache,
			OnError: func(path string, err error) { log.Warn("protective snapshot: unreadable", "path", path, "err", err) },
		})
	}
	host, _ := os.Hostname()
	vctx, stopVault := context.WithCancel(ctx)
	var vwg sync.WaitGroup
	if queue != nil {
		vwg.Go(func() { // the outbox's sender and heartbeats, until the watcher ends
			runOutbox(vctx, queue, vault, o.heartbeat, abs, log)
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() { // the alert sinks, healing and the protective snapshots
		for a := range alerts {
			sinks.Send(ctx, a, log)
			if o.heal && a.Stopped {
				restore := setGCPercent(backupGCPercent)
				h, err := heal(ctx, r, lc, a, w, host, abs, alertLog, log)
				restore()
				sinks.SendHealing(ctx, h, log)
				if err != nil {
					log.Error("healing failed", "err", err)
				} else {
					log.Warn("healed", "restored", h.Healed.Restored, "quarantined", h.Healed.Quarantined, "seconds", h.Healed.Seconds)
				}
			}
			if protector == nil {
				continue
			}
			restore := setGCPercent(backupGCPercent)
			res, left, err := protector.Snapshot(ctx, a)
			restore()
			if err != nil {
				log.Error("protective snapshot failed", "err", err)
				continue
			}
			log.Warn("protective snapshot saved", "snapshot", res.Snapshot.ID.Short(), "files left out", left)
		}
	})
	err = w.Run(ctx, func() {
		log.Info("ready", "paths", abs)
	})
	close(alerts)
	wg.Wait()
	stopVault()
	vwg.Wait()
	if err == nil && ctx.Err() != nil {
		return nil // interrupted: the normal way to end watching
	}
	return err
}

// hostFiles lists what Kalaja keeps on this host, for the watcher to
// guard (watcher.Config.Guard): the repository if it is a local folder,
// the state directory, the alert log, and the password, token, server
// certificate, administrator key, witness and server folders named by the
// flags and environment. Paths not set are left out; the watcher leaves
// out those that do not exist.
func (g *globalOptions) hostFiles(alertLog string) []string {
	var out []string
	if p := env(g.repo, "KALAJA_REPOSITORY"); p != "" && !s3.IsLocation(p) && !remote.IsLocation(p) {
		out = append(out, p)
	}
	if root, err := g.stateRoot(); err == nil {
		out = append(out, root)
	}
	for _, p := range []string{
		alertLog,
		env(g.passwordFile, "KALAJA_PASSWORD_FILE"),
		os.Getenv("KALAJA_SERVER_TOKEN_FILE"),
		env(g.serverCert, "KALAJA_SERVER_CERT"),
		os.Getenv("KALAJA_ADMIN_KEY_FILE"),
		os.Getenv("KALAJA_WITNESS_DIR"),
		os.Getenv("KALAJA_SERVER_DIR"),
	} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// heal brings back the files alert a names (recovery.Heal), with this
// host's alert log as it stands.
func heal(ctx context.Context, r *repo.Repository, lc *ledger.Client, a detect.Alert, w *watcher.Watcher, host string, roots []string, alertLog string, log *slog.Logger) (alert.Healing, error) {
	alerts, err := alert.ReadLog(alertLog)
	if err != nil {
		log.Warn("healing without the alert log", "err", err)
		alerts = nil
	}
	return recovery.Heal(ctx, r, lc, a, recovery.HealOptions{Host: host, Roots: roots, Skip: w.Canaries(), Alerts: alerts, Watch: w,
		OnError: func(path string, err error) { log.Error("heal", "path", path, "err", err) }})
}

// runOutbox sends queue's events to vault and, unless every is 0, queues a
// heartbeat every every, until ctx is done.
func runOutbox(ctx context.Context, queue *outbox.Queue, vault *remote.Store, every time.Duration, watching []string, log *slog.Logger) {
	s := &outbox.Sender{Queue: queue, Poster: vault, Log: log,
		Refused: func(err error) bool { return errors.Is(err, remote.ErrRefused) }}
	if every > 0 {
		s.MaxBackoff = min(every, 5*time.Minute)
	}
	var wg sync.WaitGroup
	if every > 0 {
		wg.Go(func() { _ = queue.Beat(ctx, every, watching, version, log) }) // ends with ctx
	}
	if err := s.Run(ctx); ctx.Err() == nil {
		log.Error("nothing more is sent to the vault; alerts stay queued", "err", err)
	}
	wg.Wait()
}
