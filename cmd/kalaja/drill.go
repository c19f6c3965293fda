package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/drill"
	"github.com/kalaja/kalaja/internal/recovery"
	"github.com/kalaja/kalaja/internal/watcher"
)

// errDrillFailed is returned when an attack went undetected, a benign
// workload raised an alarm, or a scenario could not run.
var errDrillFailed = errors.New("drill failed")

func newDrillCommand(g *globalOptions) *cobra.Command {
	var (
		sandbox  string
		force    bool
		names    []string
		files    int
		bulkMiB  int64
		seed     uint64
		slow     time.Duration
		settle   time.Duration
		timeout  time.Duration
		backend  string
		measure  bool
		reps     int
		keep     bool
		canaries bool
		verbose  bool
		recov    bool
		heal     bool
		load     bool
	)
	cmd := &cobra.Command{
		Use:   "drill --sandbox DIR",
		Short: "Attack a sandbox folder and report what the watcher caught",
		Long: `Fill the sandbox folder with a realistic tree (documents, spreadsheets, PDFs,
pictures, source code, a SQLite database) and run, one after another and each
on a fresh tree, ransomware and wiper simulators and benign workloads as child
processes, with the watcher guarding the folder. For each it reports whether
the watcher alerted, how fast, how many files were damaged before the process
was stopped, and any false alarms.

Attacks: encrypt-rename, encrypt-inplace, intermittent, encode-base64,
slow-encrypt, multiprocess, split-setsid, split-detached (eight workers, each
in a session of its own, the second reparented to init), wipe-random,
wipe-zero, wipe-truncate, wipe-delete, wipe-rm (rm -rf), wipe-find (find
-delete), wipe-unlink (a C unlink loop, built with gcc), wipe-raw (writes to
a loop device whose backing file is in the sandbox), and on a stand-in of
Kalaja's own files on a host (a local repository, the state directory, a
password file), which the watcher guards: backup-delete (rm -rf of the
repository), backup-overwrite (the shell overwrites the ledger pin, the
alert log and the password file). Benign: compress, git, go-build, sqlite,
office-save, log-rotate, bulk-move, and a server's everyday administration:
expire (find -mtime -delete of old files and day-old mail), logrotate,
convert (gzip -r and gunzip -r, iconv, sed -i in place), unpack (Go module
trees with their test data), rsync-mirror (rsync --delete), upgrade
(dpkg-style), mail (Maildir and mbox), quarantine (clamscan --move), move-fs
(mv onto a tmpfs). They run tar, zstd, gzip, git, go, gcc, sqlite3, mv, rm,
find, logrotate, rsync, clamscan, iconv, mount and losetup, which must be
installed (scripts/drilltools.sh).

The drill touches nothing outside the sandbox. It refuses system and home
folders, their ancestors and symbolic links to them, and a non-empty folder
it did not create; with --force it works in a new "kalaja-drill" folder
inside such a folder instead. Run it as root: the watcher needs fanotify to
stop processes, and wipe-raw needs losetup.

--recover also rehearses recovery, in a repository of its own outside the
sandbox: the tree is backed up before each attack; after it, a second
backup's health must be suspect, and the tree is repaired in place from the
clean snapshot as 'kalaja recover --in-place' does. With --heal the watcher
heals instead, as 'kalaja watch --heal' does. For each attack the drill
reports the files damaged, recovered byte for byte and lost (none may be:
the tree was backed up just before the attack), and the recovery's seconds;
with --heal, from the attack's start to the healed tree.

--load runs every scenario beside two CPU-bound processes and a go build -a
loop (needs go): the watcher's bounds must hold on a busy machine too.

--measure-overhead instead times each benign workload --reps times with and
without the watcher and reports the slowdown and the watcher's CPU and
memory (see bench/drill.sh).

The exit code is 1 when an attack went undetected, a benign workload raised
an alarm, a scenario could not run, or (--recover) a recovery failed, lost a
file, or a backup after an attack was judged clean.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if sandbox == "" {
				return usageError{errors.New("no sandbox: use --sandbox DIR (an empty or new folder)")}
			}
			// The watcher's alerts are the drill's results: its log only
			// with --verbose.
			logger := slog.New(slog.DiscardHandler)
			if verbose {
				logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			}
			home, _ := os.UserHomeDir()
			sb, err := drill.Prepare(sandbox, drill.Policy{Home: home, Force: force})
			if err != nil {
				return drillError(err)
			}
			defer func() { _ = sb.Close() }() // closes a folder descriptor: nothing to lose
			child, err := drillChild()
			if err != nil {
				return err
			}
			cfg := drill.Config{
				Sandbox: sb, Child: child, Env: os.Environ(),
				Watch: watchHere(backend, canaries, logger),
				Tree:  drill.Tree{Files: files, Seed: seed}, BulkBytes: bulkMiB << 20,
				SlowInterval: slow, Settle: settle, Timeout: timeout, Scenarios: names, Logger: logger, Load: load,
			}
			if g.progressEnabled() {
				cfg.OnResult = func(r drill.Result) { fmt.Fprintf(os.Stderr, "%s\n", progressNote(r)) }
			}
			if heal && !recov {
				return usageError{errors.New("--heal is a way to --recover: give both")}
			}
			if recov {
				if measure {
					return usageError{errors.New("--recover and --measure-overhead are separate runs")}
				}
				dir, err := os.MkdirTemp("", "kalaja-drill-recover-")
				if err != nil {
					return err
				}
				defer func() {
					if err := os.RemoveAll(dir); err != nil {
						g.warn("remove the rehearsal's repository: %v", err)
					}
				}()
				reh, err := recovery.NewRehearsal(ctx, dir)
				if err != nil {
					return err
				}
				rehearse(&cfg, reh, sb, dir, heal, backend, canaries, logger)
			}
			if !keep {
				defer func() {
					if err := sb.Reset(); err != nil {
						g.warn("clean the sandbox: %v", err)
					}
				}()
			}
			if measure {
				// A watcher of its own, so its CPU and memory are its own.
				cfg.Watch = drill.WatchProcess(child, "watch", "--backend", backend, "--canaries="+strconv.FormatBool(canaries))
				rep, err := drill.MeasureOverhead(ctx, cfg, reps)
				if err != nil {
					return drillError(err)
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), rep)
				}
				return rep.WriteTable(cmd.OutOrStdout())
			}
			// The watcher runs in this process: collections as rare as in
			// kalaja watch (a stop of the world waits for the event
			// thread's pause, and the event thread for the stop).
			restore := setGCPercent(watchGCPercent)
			rep, err := drill.Run(ctx, cfg)
			restore()
			if err != nil {
				return drillError(err)
			}
			if g.json {
				err = printJSON(cmd.OutOrStdout(), rep)
			} else if !g.quiet {
				err = rep.WriteTable(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				s := rep.Summary
				return fmt.Errorf("%w: %d of %d attacks missed, %d false alarms, %d scenarios failed to run",
					errDrillFailed, s.Attacks-s.Detected, s.Attacks, s.FalseAlarms, s.Errors)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&sandbox, "sandbox", "", "the folder to attack (created if missing; must be empty or made by the drill)")
	f.BoolVar(&force, "force", false, "use a non-empty folder: work in a new kalaja-drill folder inside it")
	f.StringSliceVar(&names, "scenario", nil, "run only these scenarios (comma-separated)")
	f.IntVar(&files, "files", drill.DefaultFiles, "files in the generated tree")
	f.Int64Var(&bulkMiB, "bulk-mib", drill.DefaultBulkBytes>>20, "MiB of the compress dataset (log-rotate uses an eighth)")
	f.Uint64Var(&seed, "seed", 1, "seed of the generated tree")
	f.DurationVar(&slow, "slow-interval", drill.DefaultSlowInterval, "slow-encrypt's pause between files")
	f.DurationVar(&settle, "settle", drill.DefaultSettle, "how long to wait for a late alert after a workload ends")
	f.DurationVar(&timeout, "timeout", drill.DefaultTimeout, "give up on a scenario after this long")
	f.StringVar(&backend, "backend", "auto", "watcher backend: auto, fanotify or inotify")
	f.BoolVar(&measure, "measure-overhead", false, "time the benign workloads with and without the watcher instead")
	f.IntVar(&reps, "reps", 5, "repetitions for --measure-overhead")
	f.BoolVar(&canaries, "canaries", true, "let the watcher place canary files (false: content signals alone)")
	f.BoolVar(&keep, "keep", false, "leave the last scenario's files in the sandbox")
	f.BoolVarP(&verbose, "verbose", "v", false, "log each scenario and the watcher's messages")
	f.BoolVar(&recov, "recover", false, "after each attack, check the backup's health and recover the sandbox in place")
	f.BoolVar(&heal, "heal", false, "with --recover: let the watcher heal instead of recover")
	f.BoolVar(&load, "load", false, "run the scenarios beside two CPU-bound processes and a parallel compile loop (go build -a)")
	cmd.AddCommand(newDrillChildCommand("attack"), newDrillChildCommand("benign"), newDrillWatchCommand())
	return cmd
}

// newDrillWatchCommand is the hidden watcher process --measure-overhead
// runs: it watches the paths and writes drill.WatchLines on stdout until
// it is interrupted.
func newDrillWatchCommand() *cobra.Command {
	var (
		backend  string
		canaries bool
	)
	cmd := &cobra.Command{
		Use:    "watch PATH...",
		Short:  "run the watcher for kalaja drill --measure-overhead",
		Hidden: true,
		Args:   args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			out := json.NewEncoder(cmd.OutOrStdout())
			var mu sync.Mutex
			line := func(l drill.WatchLine) {
				mu.Lock()
				defer mu.Unlock()
				if err := out.Encode(l); err != nil {
					fmt.Fprintln(os.Stderr, "kalaja drill watch:", err) // the parent drill shows this stderr
				}
			}
			w, err := watcher.New(watcher.Config{
				Paths: paths, Detect: detect.DefaultConfig(), Backend: backend, Stop: true, Canaries: canaries, Guard: drillGuard(paths),
				Realtime: os.Geteuid() == 0,
				OnAlert: func(a detect.Alert) {
					da := drillAlert(a)
					line(drill.WatchLine{Alert: &da})
				},
			})
			if err != nil {
				return err
			}
			defer setGCPercent(watchGCPercent)()
			name, canStop := w.Backend()
			err = w.Run(cmd.Context(), func() {
				line(drill.WatchLine{Ready: &drill.WatchReady{Backend: name, CanStop: canStop, Canaries: w.Canaries()}})
			})
			return err
		},
	}
	cmd.Flags().StringVar(&backend, "backend", "auto", "watcher backend: auto, fanotify or inotify")
	cmd.Flags().BoolVar(&canaries, "canaries", true, "place canary files")
	return cmd
}

// drillGuard is what a drill's watcher over the sandbox paths guards as
// Kalaja's own: their host stand-ins (drill.Guarded).
func drillGuard(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, drill.Guarded(p)...)
	}
	return out
}

// watchHere makes the drill's watchers in this process, stopping the
// processes they alert on.
func watchHere(backend string, canaries bool, logger *slog.Logger) drill.WatchFunc {
	return watchHealing(backend, canaries, logger, nil)
}

// watchHealing is watchHere, calling stopped (if not nil) with every alert
// whose processes were stopped, and the watcher.
func watchHealing(backend string, canaries bool, logger *slog.Logger, stopped func(detect.Alert, *watcher.Watcher)) drill.WatchFunc {
	return func(paths []string, onAlert func(drill.Alert)) (drill.Watcher, error) {
		var w *watcher.Watcher
		var err error
		w, err = watcher.New(watcher.Config{
			Paths: paths, Detect: detect.DefaultConfig(), Backend: backend, Stop: true, Canaries: canaries, Guard: drillGuard(paths),
			Realtime: os.Geteuid() == 0,
			Logger:   logger, OnAlert: func(a detect.Alert) {
				onAlert(drillAlert(a))
				if stopped != nil && a.Stopped {
					stopped(a, w)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		return w, nil
	}
}

// rehearse makes cfg back the sandbox's tree up before each attack and,
// after it, judge a second backup and recover in place, or (heal) let the
// watcher heal and wait for it.
func rehearse(cfg *drill.Config, reh *recovery.Rehearsal, sb *drill.Sandbox, dir string, heal bool, backend string, canaries bool, logger *slog.Logger) {
	root := sb.Path(drill.DataDir)
	quarantine := func(sc drill.Scenario) string { return filepath.Join(dir, "quarantine", sc.Name) }
	var current drill.Scenario
	cfg.Prepared = func(ctx context.Context, sc drill.Scenario) error {
		current = sc
		if sc.Kind != drill.KindAttack {
			return nil
		}
		_, err := reh.Backup(ctx, root)
		return err
	}
	if heal {
		cfg.Watch = watchHealing(backend, canaries, logger, func(a detect.Alert, w *watcher.Watcher) {
			reh.Heal(context.WithoutCancel(context.Background()), a, w, []string{root}, w.Canaries(), quarantine(current))
		})
	}
	cfg.Recover = func(ctx context.Context, sc drill.Scenario, started time.Time, first *drill.Alert) (*drill.Recovery, error) {
		if heal {
			at, n, restored, err := reh.Healed()
			if n == 0 {
				return nil, errors.New("the watcher healed nothing")
			}
			return &drill.Recovery{Seconds: at.Sub(started).Seconds(), Healed: restored}, err
		}
		sn, err := reh.Backup(ctx, root)
		if err != nil {
			return nil, fmt.Errorf("backup after the attack: %w", err)
		}
		// Judged with the alert, as kalaja snapshots judges it: an attack
		// the watcher stopped after a few files is below the health's
		// floors, and the alert marks the snapshot.
		var a *detect.Alert
		log := &alert.Log{}
		if first != nil {
			a = &detect.Alert{Time: first.Time, PID: first.PID, Command: first.Command}
			log.Alerts = append(log.Alerts, *a)
		}
		rec := &drill.Recovery{Judged: true}
		if v := recovery.Judge(sn, log); v.Status == recovery.Suspect {
			rec.Suspect, rec.Reasons = true, v.Reasons
		}
		start := time.Now()
		_, err = reh.Recover(ctx, root, quarantine(sc), a)
		rec.Seconds = time.Since(start).Seconds()
		return rec, err
	}
}

// newDrillChildCommand is a hidden subcommand the drill runs itself as:
// an attack or the office-save workload, in a process of its own so the
// watcher can stop it.
func newDrillChildCommand(kind string) *cobra.Command {
	return &cobra.Command{
		Use:                kind + " [flags] NAME SANDBOX",
		Short:              "run one drill " + kind + " process (used by kalaja drill)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, a []string) error {
			child, err := drillChild()
			if err != nil {
				return err
			}
			home, _ := os.UserHomeDir()
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			return drillError(drill.RunChild(cmd.Context(), append([]string{kind}, a...), child, drill.Policy{Home: home}, logger))
		},
	}
}

// drillChild says how the drill re-executes this binary.
func drillChild() (drill.Child, error) {
	exe, err := os.Executable()
	if err != nil {
		return drill.Child{}, fmt.Errorf("find own executable: %w", err)
	}
	return drill.Child{Args: []string{exe, "drill"}, Env: os.Environ()}, nil
}

// drillError turns refusals and bad arguments into usage errors.
func drillError(err error) error {
	if errors.Is(err, drill.ErrUnsafe) || errors.Is(err, drill.ErrUsage) {
		return usageError{err}
	}
	return err
}

// drillAlert keeps what the drill reports of a watcher alert.
func drillAlert(a detect.Alert) drill.Alert {
	out := drill.Alert{Time: a.Time, PID: a.PID, PIDs: a.PIDs, Command: a.Command, Score: a.Score, Files: a.Files, Stopped: a.Stopped}
	for _, h := range a.Signals {
		out.Signals = append(out.Signals, string(h.Signal))
	}
	return out
}

// progressNote is the line printed on a terminal as a scenario ends.
func progressNote(r drill.Result) string {
	switch {
	case r.Error != "":
		return fmt.Sprintf("%-16s error: %s", r.Scenario, r.Error)
	case r.Kind == drill.KindAttack && r.Detected:
		return fmt.Sprintf("%-16s detected in %.0f ms, %d files damaged", r.Scenario, r.DetectionMS, r.FilesDamaged)
	case r.Kind == drill.KindAttack:
		return fmt.Sprintf("%-16s MISSED, %d files damaged", r.Scenario, r.FilesDamaged)
	case r.FalseAlarms > 0:
		return fmt.Sprintf("%-16s FALSE ALARM", r.Scenario)
	}
	return fmt.Sprintf("%-16s clean, %.1f s", r.Scenario, r.Seconds)
}
