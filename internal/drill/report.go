package drill

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Result is what one scenario showed.
type Result struct {
	Scenario string `json:"scenario"`
	Kind     string `json:"kind"`
	Family   string `json:"family"`
	// Detected: an alert came while the workload ran or within the settle
	// time after it ended. For a benign workload this is a false alarm.
	Detected bool `json:"detected"`
	// DetectionMS is the time from the process's start to the first
	// alert, in milliseconds.
	DetectionMS float64 `json:"time_to_detection_ms,omitempty"`
	// Stopped: the watcher said it stopped the offending processes.
	Stopped bool `json:"stopped"`
	// Finished: the workload ended by itself before any alert.
	Finished bool `json:"finished"`
	// FilesDamaged counts the tree's files changed, missing or renamed
	// after the attack was stopped (attacks only; the watcher's canaries
	// are not counted; wipe-raw's disk image counts as one file).
	FilesDamaged int `json:"files_damaged"`
	FilesTotal   int `json:"files_total"`
	// Running counts the attack's processes still running (not stopped)
	// once the watcher had alerted and had the settle time to stop them
	// (a split attack's workers are stopped by alerts of their own): the
	// attack's first process, which started the others, is not counted.
	Running int `json:"still_running,omitempty"`
	// Alerts is the number of alerts during the scenario; FalseAlarms is
	// the same for a benign workload and 0 for an attack.
	Alerts      int `json:"alerts"`
	FalseAlarms int `json:"false_alarms"`
	// ForeignAlerts counts alerts during the scenario about processes
	// that are not the scenario's (other work on the machine); they are
	// not counted above.
	ForeignAlerts int `json:"foreign_alerts,omitempty"`
	// Seconds is how long the process ran until it ended, the first
	// alert came, or the timeout.
	Seconds float64 `json:"seconds"`
	// Alert is the first alert, if any.
	Alert *Alert `json:"alert,omitempty"`
	// Recovery is what bringing the sandbox back after an attack showed
	// (Config.Recover), if asked.
	Recovery *Recovery `json:"recovery,omitempty"`
	// Error says why the scenario could not run (a missing program, a
	// workload that failed by itself).
	Error string `json:"error,omitempty"`
}

// Summary condenses a report into the numbers the acceptance criteria
// name.
type Summary struct {
	Attacks       int     `json:"attacks"`
	Detected      int     `json:"detected"`
	DamagedMedian float64 `json:"files_damaged_median"`
	DamagedWorst  int     `json:"files_damaged_worst"`
	Benign        int     `json:"benign"`
	FalseAlarms   int     `json:"false_alarms"`
	Errors        int     `json:"errors"`
	// With Config.Recover: attacks recovered, files lost over all
	// attacks, attacks whose post-attack backup was not suspect (only
	// when backups were judged), and the median and worst recovery
	// seconds.
	Recovered     int     `json:"recovered,omitempty"`
	FilesLost     int     `json:"files_lost,omitempty"`
	NotSuspect    int     `json:"not_suspect,omitempty"`
	RecoverMedian float64 `json:"recover_seconds_median,omitempty"`
	RecoverWorst  float64 `json:"recover_seconds_worst,omitempty"`
}

// Report is the outcome of a drill.
type Report struct {
	Sandbox string `json:"sandbox"`
	Backend string `json:"backend,omitempty"`
	CanStop bool   `json:"can_stop"`
	Files   int    `json:"files_per_scenario"`
	// Load: the scenarios ran beside busy work (Config.Load).
	Load    bool     `json:"load,omitempty"`
	Results []Result `json:"results"`
	Summary Summary  `json:"summary"`
}

func (r *Report) summarise() {
	s := Summary{}
	var dmg, secs []float64
	for _, res := range r.Results {
		if res.Error != "" {
			s.Errors++
		}
		switch res.Kind {
		case KindAttack:
			s.Attacks++
			if res.Detected {
				s.Detected++
			}
			dmg = append(dmg, float64(res.FilesDamaged))
			s.DamagedWorst = max(s.DamagedWorst, res.FilesDamaged)
			if rec := res.Recovery; rec != nil {
				if rec.Error == "" {
					s.Recovered++
				}
				s.FilesLost += rec.FilesLost
				if rec.Judged && !rec.Suspect {
					s.NotSuspect++
				}
				secs = append(secs, rec.Seconds)
				s.RecoverWorst = max(s.RecoverWorst, rec.Seconds)
			}
		case KindBenign:
			s.Benign++
			s.FalseAlarms += res.FalseAlarms
		}
	}
	s.DamagedMedian = median(dmg)
	s.RecoverMedian = median(secs)
	r.Summary = s
}

// OK reports whether every attack was detected, no benign workload raised
// an alarm, and no scenario failed to run; and, where attacks were
// recovered, whether every recovery worked, lost no file and found the
// backup after the attack suspect.
func (r *Report) OK() bool {
	s := r.Summary
	ok := s.Detected == s.Attacks && s.FalseAlarms == 0 && s.Errors == 0
	for _, res := range r.Results {
		if rec := res.Recovery; rec != nil {
			ok = ok && rec.Error == "" && rec.FilesLost == 0 && (!rec.Judged || rec.Suspect)
		}
	}
	return ok
}

// median returns the median of v (0 for none); v is reordered.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// WriteTable writes the report as an aligned table with a summary line.
func (r *Report) WriteTable(w io.Writer) error {
	stop := "cannot stop processes"
	if r.CanStop {
		stop = "stops processes"
	}
	backend := r.Backend
	if backend == "" {
		backend = "none"
	}
	if _, err := fmt.Fprintf(w, "drill in %s: %d files per scenario; watcher backend %s (%s)\n\n", r.Sandbox, r.Files, backend, stop); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tKIND\tRESULT\tDETECTED IN\tDAMAGED\tSTOPPED\tSECONDS\tSIGNALS\t")
	for _, res := range r.Results {
		result, in, dmg, stopped, signals := "", "-", "-", "-", ""
		switch {
		case res.Error != "":
			result = "ERROR"
		case res.Kind == KindAttack && res.Detected:
			result = "detected"
		case res.Kind == KindAttack:
			result = "MISSED"
		case res.FalseAlarms > 0:
			result = "FALSE ALARM"
		default:
			result = "clean"
		}
		if res.Detected {
			in = fmt.Sprintf("%.0f ms", res.DetectionMS)
			stopped = map[bool]string{true: "yes", false: "no"}[res.Stopped]
			signals = strings.Join(res.Alert.Signals, ",")
		}
		if res.Kind == KindAttack && res.Error == "" {
			dmg = fmt.Sprintf("%d/%d", res.FilesDamaged, res.FilesTotal)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t\n", res.Scenario, res.Kind, result, in, dmg, stopped, res.Seconds, signals)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range r.Results {
		if res.Error != "" {
			if _, err := fmt.Fprintf(w, "\n%s: %s", res.Scenario, res.Error); err != nil {
				return err
			}
		}
	}
	s := r.Summary
	if _, err := fmt.Fprintf(w, "\nattacks: %d/%d detected; files damaged: median %g, worst %d. benign workloads: %d, false alarms: %d.\n",
		s.Detected, s.Attacks, s.DamagedMedian, s.DamagedWorst, s.Benign, s.FalseAlarms); err != nil {
		return err
	}
	return r.writeRecoveries(w)
}

// writeRecoveries writes the table of recoveries, if the drill recovered.
func (r *Report) writeRecoveries(w io.Writer) error {
	if !slices.ContainsFunc(r.Results, func(res Result) bool { return res.Recovery != nil }) {
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tBACKUP AFTER\tDAMAGED\tHEALED\tRECOVERED\tLOST\tSECONDS\tERROR\t")
	for _, res := range r.Results {
		rec := res.Recovery
		if rec == nil {
			continue
		}
		health := "-"
		if rec.Judged {
			health = map[bool]string{true: "suspect", false: "CLEAN"}[rec.Suspect]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.2f\t%s\t\n", res.Scenario, health, res.FilesDamaged, rec.Healed, rec.FilesRecovered, rec.FilesLost, rec.Seconds, rec.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := r.Summary
	_, err := fmt.Fprintf(w, "\nrecovered: %d/%d attacks; files lost: %d; backups after an attack judged clean: %d; recovery seconds: median %.2f, worst %.2f.\n",
		s.Recovered, s.Attacks, s.FilesLost, s.NotSuspect, s.RecoverMedian, s.RecoverWorst)
	return err
}
