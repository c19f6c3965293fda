package recovery

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/kalaja/kalaja/internal/fswatch"
	"github.com/kalaja/kalaja/internal/snapshot"
	"golang.org/x/sys/unix"
)

func TestDefaultQuarantine(t *testing.T) {
	now := time.Date(2027, 3, 4, 5, 6, 7, 8, time.FixedZone("CET", 3600))
	for _, path := range []string{t.TempDir(), filepath.Join(t.TempDir(), "not", "there"), "/dev/shm/kalaja-none", "/"} {
		q, err := DefaultQuarantine(path, now)
		if err != nil {
			t.Errorf("DefaultQuarantine(%s): %v", path, err)
			continue
		}
		if filepath.Base(q) != "20270304T040607Z" || filepath.Base(filepath.Dir(q)) != snapshot.QuarantineName {
			t.Errorf("DefaultQuarantine(%s) = %s, want .../%s/20270304T040607Z", path, q, snapshot.QuarantineName)
		}
		// The folder above snapshot.QuarantineName is a mount point holding path.
		mount := filepath.Dir(filepath.Dir(q))
		if !fswatch.Under(path, mount) {
			t.Errorf("DefaultQuarantine(%s) = %s: not above the path", path, q)
		}
		var m, up unix.Stat_t
		must(t, unix.Stat(mount, &m))
		if mount != "/" && unix.Stat(filepath.Dir(mount), &up) == nil && up.Dev == m.Dev {
			t.Errorf("DefaultQuarantine(%s) = %s: %s is not where its file system begins", path, q, mount)
		}
	}
	if _, err := DefaultQuarantine("relative/path", now); err == nil {
		t.Error("a relative path is accepted")
	}
}

func TestCheckQuarantine(t *testing.T) {
	paths := []string{"/srv/data", "/home/a"}
	for _, tc := range []struct {
		q  string
		ok bool
	}{
		{"/var/q", true},
		{"/srv/.kalaja-quarantine/T", true},
		{"/srv/data/.kalaja-quarantine/T", true},
		{"/srv/data/x/.kalaja-quarantine", true},
		{"/srv/data/q", false},
		{"/srv/data", false},
		{"/srv", false}, // holds a path
		{"/", false},
		{"/srv/data-other/q", true},
		{"relative", false},
		{"/srv/../srv/q", false},
		{"/srv/data/.kalaja-quarantine-not/T", false},
	} {
		if err := checkQuarantine(tc.q, paths); (err == nil) != tc.ok {
			t.Errorf("checkQuarantine(%s): %v, want ok=%v", tc.q, err, tc.ok)
		}
	}
}
