//go:build !kalaja_noledger

package main

// withLedger is true in every build but the one bench/ledger.sh makes with
// the tag kalaja_noledger, whose backups neither check nor append to the
// ledger, to measure what the ledger costs a backup. Never ship that build.
const withLedger = true
