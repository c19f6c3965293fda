package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kalaja/kalaja/internal/outbox"
	"github.com/kalaja/kalaja/internal/store/remote"
)

// remoteOptions returns the settings of a server store that come from the
// flags and the environment: the pinned certificate from --cert or
// KALAJA_SERVER_CERT (else the system's roots), and the host's token from
// the file named by KALAJA_SERVER_TOKEN_FILE or from KALAJA_SERVER_TOKEN.
// A token is never taken from the command line.
func (g *globalOptions) remoteOptions() (remote.Options, error) {
	var o remote.Options
	if f := env(g.serverCert, "KALAJA_SERVER_CERT"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return o, fmt.Errorf("read the server's certificate: %w", err)
		}
		o.PinnedCert = b
	}
	if f := os.Getenv("KALAJA_SERVER_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return o, fmt.Errorf("read the server token file: %w", err)
		}
		o.Token = string(bytes.TrimSpace(b))
		if o.Token == "" {
			return o, fmt.Errorf("server token file %s is empty", f)
		}
	} else {
		o.Token = os.Getenv("KALAJA_SERVER_TOKEN")
	}
	if o.Token == "" {
		return o, usageError{errors.New("no token for the server: set KALAJA_SERVER_TOKEN_FILE or KALAJA_SERVER_TOKEN (see 'kalaja serve token add')")}
	}
	return o, nil
}

// openRemote opens the repository behind the server at an "https://"
// location.
func (g *globalOptions) openRemote(ctx context.Context, location string) (*remote.Store, error) {
	if _, err := remote.ParseLocation(location); err != nil {
		return nil, usageError{err}
	}
	o, err := g.remoteOptions()
	if err != nil {
		return nil, err
	}
	return remote.Open(ctx, location, o)
}

// createRemote connects to the server at an "https://" location for a new
// repository.
func (g *globalOptions) createRemote(ctx context.Context, location string) (*remote.Store, error) {
	if _, err := remote.ParseLocation(location); err != nil {
		return nil, usageError{err}
	}
	o, err := g.remoteOptions()
	if err != nil {
		return nil, err
	}
	return remote.Create(ctx, location, o)
}

// openOutbox returns the host's outbox for the vault, and the server that
// receives it, when the repository is a server location; nil for a local
// or S3 repository, or none. It does not contact the server, which may be
// down: the outbox keeps the events until it is back. The queue is kept
// per server location, in <state dir>/outbox/<first 32 hex digits of the
// SHA-256 of the location>, since a watcher started while the server is
// unreachable cannot learn the repository's ID.
func (g *globalOptions) openOutbox() (*outbox.Queue, *remote.Store, error) {
	location := env(g.repo, "KALAJA_REPOSITORY")
	if !remote.IsLocation(location) {
		return nil, nil, nil
	}
	u, err := remote.ParseLocation(location)
	if err != nil {
		return nil, nil, usageError{err}
	}
	o, err := g.remoteOptions()
	if err != nil {
		return nil, nil, err
	}
	st, err := remote.New(location, o)
	if err != nil {
		return nil, nil, usageError{err}
	}
	root, err := g.stateRoot()
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256([]byte(u.String()))
	q, err := outbox.Open(filepath.Join(root, "outbox", hex.EncodeToString(sum[:16])))
	if err != nil {
		return nil, nil, err
	}
	return q, st, nil
}
