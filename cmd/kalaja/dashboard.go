package main

import (
	"time"

	"github.com/kalaja/kalaja/internal/fleet"
	"github.com/kalaja/kalaja/internal/server"
)

// tokenFleet is what the dashboard shows until the server keeps the
// fleet's state (internal/fleet, issue 19): the hosts that have a token,
// nothing else known. The *fleet.State of kalaja serve replaces it.
type tokenFleet struct{ tokens *server.Tokens }

func (f tokenFleet) Hosts() []fleet.Host {
	names, err := f.tokens.Hosts()
	if err != nil {
		return nil
	}
	hosts := make([]fleet.Host, len(names))
	for i, n := range names {
		hosts[i] = fleet.Host{Name: n, Watcher: fleet.Never}
	}
	return hosts
}

func (tokenFleet) Alerts(time.Time, int) []fleet.Alert { return nil }
func (tokenFleet) Storage() fleet.Storage              { return fleet.Storage{Free: -1} }
func (tokenFleet) Ledger() fleet.LedgerStatus          { return fleet.LedgerStatus{} }
