package drill

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
)

// The wipers that only delete, with real programs.
const (
	WipeRm     = "wipe-rm"
	WipeFind   = "wipe-find"
	WipeUnlink = "wipe-unlink"
)

// unlinkSource is wipe-unlink's program: a loop of unlinkat(2) over a
// folder tree, as fast as C goes. It descends only into real folders of
// the same file system, opened with O_NOFOLLOW, and removes only regular
// files (a hard link to a file elsewhere loses one name, as with rm).
const unlinkSource = `#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static dev_t dev;

static int wipe(int dfd) {
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 1;
	}
	int bad = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) || st.st_dev != dev)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				bad |= wipe(sub);
		} else if (S_ISREG(st.st_mode) && unlinkat(dirfd(d), e->d_name, 0)) {
			bad = 1;
		}
	}
	closedir(d);
	return bad;
}

int main(int argc, char **argv) {
	struct stat st;
	if (argc != 2)
		return 2;
	int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		perror(argv[1]);
		return 1;
	}
	dev = st.st_dev;
	return wipe(fd);
}
`

// unlinkProgram is where wipe-unlink's program is built.
const unlinkProgram = WorkDir + "/bin/unlink"

// prepareUnlink compiles wipe-unlink's program with gcc.
func prepareUnlink(ctx context.Context, st *stage) error {
	src := path.Join(WorkDir, "unlink.c")
	f, err := st.sb.OpenFile(src, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(unlinkSource); err != nil {
		_ = f.Close() // the write's error is the one to report
		return fmt.Errorf("write %s: %w", src, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", src, err)
	}
	return st.progs.RunEnv(ctx, st.sb.Root(), workEnv(st.sb), "", "gcc", "-O2", "-o", unlinkProgram, src)
}

// startUnlink runs wipe-unlink's program over DataDir.
func startUnlink(ctx context.Context, st *stage) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, st.sb.Path(unlinkProgram), DataDir)
	cmd.Dir, cmd.Env = st.sb.Root(), append(append([]string(nil), st.progs.Env...), workEnv(st.sb)...)
	return cmd, nil
}

// startRm removes every folder and file of DataDir with rm -rf.
func startRm(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.shell(ctx, `rm -rf `+DataDir+`/*`)
}

// startFind deletes every file of DataDir with find -delete.
func startFind(ctx context.Context, st *stage) (*exec.Cmd, error) {
	return st.progs.Command(ctx, st.sb.Root(), workEnv(st.sb), "find", DataDir, "-type", "f", "-delete")
}
