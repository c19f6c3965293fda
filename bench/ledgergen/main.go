// Command ledgergen makes a repository with many snapshots, each logged in
// the ledger by its own append, as that many backups would leave it, for
// benchmarking 'kalaja verify' (bench/ledger.sh). It is much faster than
// running the backups: the snapshots share the tree of one real backup.
//
//	ledgergen -repo DIR -state DIR -snapshots 10000 -src DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/kalaja/kalaja/internal/archiver"
	"github.com/kalaja/kalaja/internal/crypto"
	"github.com/kalaja/kalaja/internal/ledger"
	"github.com/kalaja/kalaja/internal/repo"
	"github.com/kalaja/kalaja/internal/store/local"
)

func main() {
	dir := flag.String("repo", "", "create the repository in this `dir`")
	n := flag.Int("snapshots", 10000, "number of snapshots")
	src := flag.String("src", "", "back up this `dir` once; every snapshot shares its tree")
	flag.Parse()
	if *dir == "" || *src == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), *dir, *src, *n); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, dir, src string, n int) error {
	st, err := local.Create(dir)
	if err != nil {
		return err
	}
	kdf, err := crypto.DefaultKDF()
	if err != nil {
		return err
	}
	r, err := repo.Init(ctx, st, []byte(os.Getenv("KALAJA_PASSWORD")), kdf)
	if err != nil {
		return err
	}
	lg, err := ledger.Open(ctx, st, r.Config().ID, r.Keys())
	if err != nil {
		return err
	}
	sn, err := archiver.Backup(ctx, r, []string{src}, archiver.Options{Hostname: "bench", Version: "ledgergen"})
	if err != nil {
		return err
	}
	seen := ledger.Checkpoint{}
	start := time.Now()
	for i := range n {
		if i > 0 {
			sn.ID, sn.Parent = [32]byte{}, &sn.ID
			sn.Time = sn.Time.Add(time.Hour)
			if _, err := r.SaveSnapshot(ctx, sn); err != nil {
				return err
			}
		}
		recs := ledger.Records(r.Written(), "bench", sn.Time)
		if seen, _, err = lg.Append(ctx, recs, seen); err != nil {
			return err
		}
		if (i+1)%1000 == 0 {
			fmt.Fprintf(os.Stderr, "%d snapshots, %d records, %s\n", i+1, seen.N, time.Since(start).Round(time.Second))
		}
	}
	return nil
}
