//go:build kalaja_noledger

package main

// withLedger is false in the build bench/ledger.sh measures the ledger's
// cost against; see withledger.go.
const withLedger = false
