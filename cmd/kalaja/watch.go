package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/recovery"
	"github.com/kalaja/kalaja/internal/repo"
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
	sinks, err := alert.Open(alert.Options{Stdout: cmd.OutOrStdout(), LogFile: alertLog, Syslog: o.syslog, Webhook: o.webhook})
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = sinks.Close() }() // Send synced every alert to the log already

	alerts := make(chan detect.Alert, 64)
	cfg := watcher.Config{
		Paths: abs, Detect: dcfg, Backend: o.backend, Stop: !o.noStop, Canaries: !o.noCanaries, Logger: log,
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
		protector = backup.NewProtector(r, lc, abs, w.Canaries(), backup.Options{
			Host: host, Tags: []string{"alert"}, Version: version, Log: log,
			OnError: func(path string, err error) { log.Warn("protective snapshot: unreadable", "path", path, "err", err) },
		})
	}
	host, _ := os.Hostname()
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
	if err == nil && ctx.Err() != nil {
		return nil // interrupted: the normal way to end watching
	}
	return err
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
