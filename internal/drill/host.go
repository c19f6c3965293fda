package drill

import (
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
)

// The attacks on what Kalaja keeps on the host, by the name the report
// uses. Ransomware deletes backups before it encrypts; these do it with
// real programs (rm, the shell), as a script would, not with the drill's
// own binary, which is Kalaja's and so allowed there.
const (
	BackupDelete    = "backup-delete"
	BackupOverwrite = "backup-overwrite"
)

// FamilyBackup is the Family of the attacks on Kalaja's own files: they
// leave the tree alone, so a backup of it stays clean and there is
// nothing of it to recover.
const FamilyBackup = "backup"

// HostDir is the sandbox folder holding a stand-in of what Kalaja keeps on
// a host, laid out before a backup-* attack: a local repository (config,
// keys, packs of random bytes, index, snapshots), the state directory (a
// ledger pin, its lock and logged cache, the alert log) and a password
// file. The drill's watcher guards it (Guarded).
const HostDir = "host"

// hostRepoID names the stand-in repository's state folder.
const hostRepoID = "5f0c2a7e"

// Guarded returns the paths of the host stand-in in the sandbox at root
// that a drill's watcher guards as Kalaja's own (watcher.Config.Guard).
// They exist only while a backup-* attack runs.
func Guarded(root string) []string {
	h := filepath.Join(root, HostDir)
	return []string{filepath.Join(h, "repo"), filepath.Join(h, "state"), filepath.Join(h, "password")}
}

// hostPacks and hostPackSize shape the stand-in repository's data.
const (
	hostPacks    = 48
	hostPackSize = 256 << 10
)

// prepareHost lays out the host stand-in and counts its files into
// st.hostFiles.
func prepareHost(_ context.Context, st *stage) error {
	g := newGen(st.cfg.Tree.Seed + 7)
	id := func() string {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		return hex.EncodeToString(b)
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"repo/config":                          []byte(`{"version": 2, "id": "` + hostRepoID + `"}`),
		"repo/keys/" + id():                    random(512),
		"repo/index/" + id():                   random(32 << 10),
		"repo/snapshots/" + id():               random(600),
		"repo/snapshots/" + id():               random(600),
		"repo/ledger/" + id():                  random(1 << 10),
		"state/" + hostRepoID + "/ledger.json": []byte(`{"version": 1, "log_key": "drill", "checkpoint": "drill"}`),
		"state/" + hostRepoID + "/ledger.lock": nil,
		"state/" + hostRepoID + "/logged":      random(8 + 4*32),
		"state/alerts.jsonl":                   []byte(`{"time": "2026-01-01T00:00:00Z", "scope": "process tree"}` + "\n"),
		"password":                             []byte("correct horse battery staple\n"),
	}
	for range hostPacks {
		p := id()
		files["repo/data/"+p[:2]+"/"+p] = random(hostPackSize)
	}
	for name, body := range files {
		rel := path.Join(HostDir, name)
		if err := st.sb.MkdirAll(path.Dir(rel)); err != nil {
			return err
		}
		if err := st.sb.WriteFile(rel, body, 0o600); err != nil {
			return err
		}
	}
	st.hostFiles = len(files)
	return nil
}

// startBackupDelete deletes the local repository as a script would.
func startBackupDelete(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `rm -rf --one-file-system `+HostDir+`/repo`)
}

// startBackupOverwrite overwrites, from the shell itself, the state
// directory's files (the ledger pin, its lock and cache, the alert log)
// and the password file: what an attacker forges to hide a rollback, or
// destroys so that the backups cannot be opened.
func startBackupOverwrite(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, fmt.Sprintf(`for f in %[1]s/state/*/* %[1]s/state/alerts.jsonl %[1]s/password; do printf '{}' >"$f"; done`, HostDir))
}
