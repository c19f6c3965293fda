package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/kalaja/kalaja/internal/admin"
	"github.com/kalaja/kalaja/internal/blob"
	"github.com/kalaja/kalaja/internal/dashboard"
	"github.com/kalaja/kalaja/internal/fleet"
	"github.com/kalaja/kalaja/internal/server"
	"github.com/kalaja/kalaja/internal/store"
	"github.com/kalaja/kalaja/internal/store/local"
	"github.com/kalaja/kalaja/internal/store/remote"
	"github.com/kalaja/kalaja/internal/store/s3"
)

// serveOptions are the flags of kalaja serve and its token subcommands.
type serveOptions struct {
	serverDir string
	dir       string
	listen    string
	tlsDir    string
	cert, key string
	quota     string
	retention string
	adminKey  string
	overdue   time.Duration
	tick      time.Duration
	survey    time.Duration
	verify    time.Duration
	renew     time.Duration
}

// tokensPath returns the tokens file in the server directory.
func (o *serveOptions) tokensPath() (string, error) {
	d := env(o.serverDir, "KALAJA_SERVER_DIR")
	if d == "" {
		return "", usageError{errors.New("no server directory: use --server-dir or set KALAJA_SERVER_DIR")}
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("create server directory: %w", err)
	}
	o.serverDir = d
	return filepath.Join(d, "tokens"), nil
}

// openTokens opens the tokens file in the server directory.
func (o *serveOptions) openTokens() (*server.Tokens, error) {
	p, err := o.tokensPath()
	if err != nil {
		return nil, err
	}
	return server.OpenTokens(p)
}

func newServeCommand(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve a repository to hosts over HTTPS, append-only",
		Long: `Serve the repository in --dir (a directory, created if needed) or at --repo
(a directory or an s3: location) over HTTPS, so that hosts can add objects and
read them but never delete or replace any (docs/design.md, "Server API").

Each host needs a token: 'kalaja serve token add HOST' prints one. Hosts then
use the repository https://SERVER:PORT/ with the token in
KALAJA_SERVER_TOKEN_FILE or KALAJA_SERVER_TOKEN and the server's certificate in
--cert or KALAJA_SERVER_CERT.

Objects are deleted, and the retention changed, only by requests signed with
the administrator's offline key ('kalaja admin keygen'; give its public key
with --admin-key FILE once, it is kept in SERVER-DIR/admin.pub), and only
objects stored longer than the retention ago (--retention, on first start
only; default 30d).

In front of an s3: location with Object Lock, the server extends the lock of
every object it keeps, at start and every --renew-every, when it would end
within half of the location's retention; objects a signed request asked to
delete are left to expire.

The server directory (--server-dir or $KALAJA_SERVER_DIR) holds the token
hashes, per-host usage, the administrator state (admin.json, admin.pub) and the
objects signed requests could not delete yet (condemned). Without --cert and --key, a self-signed certificate
is generated on first start in --tls-dir (default SERVER-DIR/tls) and its
SHA-256 fingerprint printed; copy its cert.pem to the hosts. Metrics for
Prometheus are at /metrics.

The server is also the vault that sees the fleet (docs/design.md, "The
vault"): hosts' watchers post heartbeats and alerts to /v1/events; every
alert, and every host whose heartbeats stop for three intervals ("silent")
and return ("back"), becomes a record in the ledger, and the events are
kept in SERVER-DIR/fleet. The server reads the hosts' snapshots from the
ledger (a host whose last one is older than --overdue is overdue), measures
the storage every --survey-every and verifies the ledger every
--verify-every, without the password.

A read-only dashboard of the fleet is at https://SERVER:PORT/dashboard/, for
the credentials that 'kalaja serve token add --dashboard NAME' makes (log in
with the user name NAME and the printed token as the password).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, g, o) },
	}
	cmd.PersistentFlags().StringVar(&o.serverDir, "server-dir", "", "the server's directory: tokens and usage (default $KALAJA_SERVER_DIR)")
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "serve the repository in this directory (created if needed)")
	f.StringVar(&o.listen, "listen", ":8443", "address to listen on, host:port")
	f.StringVar(&o.tlsDir, "tls-dir", "", "directory of the generated certificate (default SERVER-DIR/tls)")
	f.StringVar(&o.cert, "cert", "", "TLS certificate file (PEM), instead of a generated one")
	f.StringVar(&o.key, "key", "", "TLS private key file (PEM) for --cert")
	f.StringVar(&o.quota, "quota-per-host", "", "bytes each host may add, e.g. 500GiB (default no limit)")
	f.StringVar(&o.retention, "retention", "30d", "how long an object is kept before a signed request may delete it, e.g. 30d or 36h (first start only)")
	f.StringVar(&o.adminKey, "admin-key", "", "file holding the administrator's note verifier key (kept in SERVER-DIR/admin.pub)")
	f.DurationVar(&o.overdue, "overdue", fleet.DefaultOverdue, "a host whose last snapshot is older than this is overdue")
	f.DurationVar(&o.tick, "check-every", 5*time.Second, "how often to check hosts for silence and read the ledger's new records")
	f.DurationVar(&o.survey, "survey-every", time.Hour, "how often to measure the storage and read the ledger's checkpoints and co-signatures")
	f.DurationVar(&o.verify, "verify-every", 6*time.Hour, "how often to verify the ledger, as 'kalaja verify' does without the password (0: never)")
	f.DurationVar(&o.renew, "renew-every", 0, "how often to extend the S3 Object Lock retention of the objects kept (default an eighth of the location's retention, at most 6h)")
	cmd.AddCommand(newServeTokenCommand(g, o))
	return cmd
}

func runServe(cmd *cobra.Command, g *globalOptions, o *serveOptions) error {
	ctx := cmd.Context()
	tokensPath, err := o.tokensPath()
	if err != nil {
		return err
	}
	var quota uint64
	if o.quota != "" {
		if quota, err = humanize.ParseBytes(o.quota); err != nil || quota > 1<<62 {
			return usageError{fmt.Errorf("--quota-per-host %q: want a size such as 500GiB", o.quota)}
		}
	}
	if (o.cert == "") != (o.key == "") {
		return usageError{errors.New("--cert and --key go together")}
	}
	var retention time.Duration // 0: the stored one, or the default
	if cmd.Flags().Changed("retention") {
		if retention, err = admin.ParseRetention(o.retention); err != nil {
			return usageError{fmt.Errorf("--retention: %w", err)}
		}
	}
	var adminKey string
	if o.adminKey != "" {
		b, err := os.ReadFile(o.adminKey)
		if err != nil {
			return fmt.Errorf("read the administrator key: %w", err)
		}
		adminKey = strings.TrimSpace(string(b))
	}
	if o.overdue <= 0 || o.tick <= 0 || o.survey <= 0 || o.verify < 0 {
		return usageError{errors.New("--overdue, --check-every and --survey-every must be positive, --verify-every positive or 0")}
	}
	st, localDir, err := openServed(ctx, g, o.dir)
	if err != nil {
		return err
	}
	every, err := renewInterval(st, o.renew)
	if err != nil {
		return err
	}
	tokens, err := server.OpenTokens(tokensPath)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	fl, err := openFleet(o.serverDir, st, localDir, tokens, o.overdue, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := fl.Close(); err != nil {
			log.Warn("close the fleet state", "err", err)
		}
	}()
	verifyEvery := o.verify
	if verifyEvery == 0 {
		verifyEvery = -1 // never
	}
	srv, err := server.New(server.Options{Store: st, Tokens: tokens, UsageFile: filepath.Join(o.serverDir, "usage.json"),
		Quota: int64(quota), Logger: log, AdminFile: filepath.Join(o.serverDir, "admin.json"), OwnersFile: filepath.Join(o.serverDir, "owners"),
		AdminKeyFile: filepath.Join(o.serverDir, "admin.pub"), AdminKey: adminKey, Retention: retention,
		Fleet: fl, TickEvery: o.tick, SurveyEvery: o.survey, VerifyEvery: verifyEvery,
		Dashboard: dashboard.New(fl, nil), CondemnedFile: filepath.Join(o.serverDir, "condemned")})
	if err != nil {
		return err
	}
	state := srv.State()
	g.printf("server id %s, retention %s\n", state.Server, admin.FormatRetention(state.Retention))
	if state.Key == "" {
		g.printf("no administrator key: signed deletes are refused (--admin-key)\n")
	}
	if err := srv.Count(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	cert, err := o.certificate(g, ln.Addr())
	if err != nil {
		_ = ln.Close() // it never served; the certificate error is the one to report
		return err
	}
	hs := &http.Server{
		Handler:           srv,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 30 * time.Second,
		ReadTimeout:       15 * time.Minute, // a 64 MiB body at 75 KB/s
		WriteTimeout:      15 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if every > 0 {
		g.printf("extending Object Lock retention every %s\n", every)
	}
	g.printf("serving %s on https://%s/\n", st.Location(), ln.Addr())
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		srv.Run(runCtx)
	}()
	defer func() {
		stopRun()
		<-ran
	}()
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewDone := make(chan struct{})
	defer func() { stopRenew(); <-renewDone }()
	if every > 0 {
		go func() { defer close(renewDone); srv.RenewEvery(renewCtx, every) }()
	} else {
		close(renewDone)
	}
	done := make(chan error, 1)
	go func() { done <- hs.ServeTLS(ln, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := hs.Shutdown(shut); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// maxRenewInterval bounds the time between two renewal passes.
const maxRenewInterval = 6 * time.Hour

// renewInterval returns how often the server extends the retention of the
// objects st keeps: given, or an eighth of the S3 location's retention (so
// that an object comes up for renewal, within half its retention of the
// end, four times before it could lapse), at most maxRenewInterval; 0 for
// a store without retention of its own. An interval of half the
// retention or more could let an object lapse between two passes: a usage
// error.
func renewInterval(st store.Store, given time.Duration) (time.Duration, error) {
	s, ok := st.(*s3.Store)
	if !ok || s.Retention() == 0 {
		return 0, nil
	}
	switch r := s.Retention(); {
	case given >= r/2:
		return 0, usageError{fmt.Errorf("--renew-every %v: must be less than half the location's retention (%v), or an object could lapse between two passes", given, r)}
	case given > 0:
		return given, nil
	default:
		return min(r/8, maxRenewInterval), nil
	}
}

// certificate loads --cert and --key, or the generated certificate in the
// TLS directory, generating it for the listening address and this host's
// name on first start.
func (o *serveOptions) certificate(g *globalOptions, addr net.Addr) (tls.Certificate, error) {
	if o.cert != "" {
		c, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return c, fmt.Errorf("load TLS certificate: %w", err)
		}
		return c, nil
	}
	dir := o.tlsDir
	if dir == "" {
		dir = filepath.Join(o.serverDir, "tls")
	}
	var hosts []string
	if h, _, err := net.SplitHostPort(addr.String()); err == nil && !net.ParseIP(h).IsUnspecified() {
		hosts = append(hosts, h)
	}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	c, created, err := server.SelfSignedCert(dir, hosts, time.Now())
	if err != nil {
		return c, err
	}
	if created {
		g.printf("generated a self-signed certificate: %s\n", filepath.Join(dir, server.CertFile))
	}
	g.printf("certificate fingerprint %s\n", server.Fingerprint(c.Certificate[0]))
	return c, nil
}

// openServed opens the repository the server serves: the directory dir,
// else --repo or $KALAJA_REPOSITORY (a directory or an s3: location),
// creating the directory layout or checking the bucket if the repository
// does not exist yet, so that a host's 'kalaja init' can create it. It
// returns the directory of a local repository, "" for S3.
func openServed(ctx context.Context, g *globalOptions, dir string) (store.Store, string, error) {
	path := dir
	if path == "" {
		var err error
		if path, err = g.repoPath(); err != nil {
			return nil, "", usageError{errors.New("no repository to serve: use --dir, --repo or KALAJA_REPOSITORY")}
		}
	}
	switch {
	case remote.IsLocation(path):
		return nil, "", usageError{errors.New("a server cannot serve another server's repository")}
	case s3.IsLocation(path):
		st, err := openS3(ctx, path)
		if errors.Is(err, blob.ErrNotFound) {
			st, err = createS3(ctx, path, false)
		}
		if err != nil {
			return nil, "", err
		}
		return st, "", nil
	}
	st, err := local.Open(path)
	if errors.Is(err, blob.ErrNotFound) {
		st, err = local.Create(path)
	}
	if err != nil {
		return nil, "", err
	}
	if err := st.CleanTemp(time.Minute); err != nil {
		g.warn("%v", err)
	}
	return st, path, nil
}

func newServeTokenCommand(g *globalOptions, o *serveOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the hosts' tokens",
		Args:  args(cobra.NoArgs),
	}
	var dashboard bool
	add := &cobra.Command{
		Use:   "add HOST",
		Short: "Create a token for a host, or a dashboard credential, and print it (once)",
		Long: `Create a token for HOST and print it on stdout; only its SHA-256 is stored,
in the server directory. A running server takes it up without a restart. Give
the token to the host in a file named by KALAJA_SERVER_TOKEN_FILE.

With --dashboard, NAME gets a dashboard credential instead: the token is the
password to log in to https://SERVER:PORT/dashboard/ with the user name NAME.
It can read the dashboard and nothing else: every /v1/ request with it is
refused, and a host's token cannot read the dashboard.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := server.CheckHost(a[0]); err != nil {
				return usageError{err}
			}
			t, err := o.openTokens()
			if err != nil {
				return err
			}
			create, key := t.Add, "host"
			if dashboard {
				create, key = t.AddDashboard, "dashboard"
			}
			token, err := create(a[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{key: a[0], "token": token})
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), token); err != nil {
				return fmt.Errorf("print the token (it is stored: remove the name and add it again): %w", err)
			}
			return nil
		},
	}
	add.Flags().BoolVar(&dashboard, "dashboard", false, "make a dashboard credential (read-only web page), not a host token")
	cmd.AddCommand(add)
	cmd.AddCommand(&cobra.Command{
		Use:   "remove NAME",
		Short: "Revoke a host's token or a dashboard credential",
		Long: `Remove NAME's token (a host's or a dashboard credential) from the server
directory. A running server refuses it from the next request on, without a
restart.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			t, err := o.openTokens()
			if err != nil {
				return err
			}
			if err := t.Remove(a[0]); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"removed": a[0]})
			}
			g.printf("removed the token of %s\n", a[0])
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the hosts and dashboard credentials that have a token",
		Long: `List the names that have a token, one a line: hosts as their name,
dashboard credentials as "NAME (dashboard)". With --json:
{"hosts":[...],"dashboards":[...]}.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := o.openTokens()
			if err != nil {
				return err
			}
			all, err := t.List()
			if err != nil {
				return err
			}
			hosts, dashboards := []string{}, []string{}
			for _, c := range all {
				line := c.Name
				if c.Role == server.RoleDashboard {
					dashboards = append(dashboards, c.Name)
					line += " (dashboard)"
				} else {
					hosts = append(hosts, c.Name)
				}
				if !g.json {
					if _, err := fmt.Fprintln(cmd.OutOrStdout(), line); err != nil {
						return err
					}
				}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string][]string{"hosts": hosts, "dashboards": dashboards})
			}
			return nil
		},
	})
	return cmd
}
