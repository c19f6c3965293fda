package recovery

import (
	"github.com/kalaja/kalaja/internal/alert"
	"github.com/kalaja/kalaja/internal/detect"
	"github.com/kalaja/kalaja/internal/ledger"
)

// VaultScope is the Scope of an alert Timeline takes from the ledger: the
// vault received it, and its record holds only the vault's receipt time,
// no process, PID or files.
const VaultScope = "vault"

// ResolvedByLedger is the By of a resolution Timeline takes from the
// ledger.
const ResolvedByLedger = "ledger"

// Timeline returns host's incident timeline, the one input of Judge and
// Choose: the alerts and resolutions of the host's local alert log (nil
// for none), and those the ledger's records (recs, in log order) hold for
// host, a KindAlert record as an alert at the record's time (the vault's
// receipt time, with Scope VaultScope) and a KindResolved record as a
// resolution at its time (By ResolvedByLedger). The two are sources of the
// same incidents: an alert the vault received is usually in the local log
// too, and a recovery writes its resolution to both. Records of other
// kinds and other hosts are passed over. local is not changed; the result
// shares no slice with it.
func Timeline(local *alert.Log, recs []ledger.Record, host string) *alert.Log {
	out := &alert.Log{}
	if local != nil {
		out.Alerts = append(out.Alerts, local.Alerts...)
		out.Resolutions = append(out.Resolutions, local.Resolutions...)
		out.Healings = append(out.Healings, local.Healings...)
		out.Bad = local.Bad
	}
	for _, r := range recs {
		if r.Host != host {
			continue
		}
		switch r.Kind {
		case ledger.KindAlert:
			out.Alerts = append(out.Alerts, detect.Alert{Time: r.Time, Scope: VaultScope, UID: -1})
		case ledger.KindResolved:
			out.Resolutions = append(out.Resolutions, alert.Resolution{Time: r.Time, Resolved: alert.Resolved{By: ResolvedByLedger}})
		}
	}
	return out
}
