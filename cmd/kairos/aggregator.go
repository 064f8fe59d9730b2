package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/server"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

// aggMemoryLimitMiB is serve's soft Go memory limit when neither
// --memory-limit-mib nor GOMEMLIMIT sets one, or the container's share
// (applyMemoryLimit) when that is lower: with the API's default
// in-flight body budget the heap stays well below it, so it only makes the
// collector work harder before the process nears 1 GiB.
const aggMemoryLimitMiB = 768

// aggFlags are the flags every aggregator subcommand shares.
type aggFlags struct {
	dir, config string
}

func (f *aggFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "dir", "", "aggregator directory (made by kairos aggregator init)")
	cmd.Flags().StringVar(&f.config, "config", "", "config file (default DIR/"+config.File+")")
}

func (f *aggFlags) load() (*config.Config, error) {
	path := f.config
	if path == "" && f.dir != "" {
		path = filepath.Join(f.dir, config.File)
	}
	if path == "" {
		path = os.Getenv(config.EnvConfig)
	}
	if path == "" {
		return nil, errors.New("--dir or --config (or $" + config.EnvConfig + ") is required")
	}
	c, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := c.ApplyEnv(os.Getenv); err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return c, nil
}

func newAggregatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "aggregator",
		Short: "Run the federation's aggregator: keys, database, HTTP API, enrolment, models",
		Long: `The aggregator runs training rounds for the enrolled merchants, accepts their sealed
differentially private updates, merges them and publishes model versions.

  kairos aggregator init --dir agg                  # keys, config, example policy, admin token
  kairos aggregator serve --dir agg                 # SQLite in agg/kairos.db
  kairos aggregator serve --dir agg --db postgres://user@host/kairos
  kairos aggregator enrol --dir agg --id cdnow-1 --time-zone America/New_York \
      --public-key shop/signing.pub > shop.token
  kairos aggregator merchants --dir agg
  kairos aggregator budgets --dir agg               # ε spent per merchant against its cap
  kairos aggregator models --dir agg
  kairos aggregator rollback --dir agg --version 3`,
	}
	cmd.AddCommand(newAggInitCmd(), newAggMigrateCmd(), newAggServeCmd(), newAggEnrolCmd(),
		newAggMerchantsCmd(), newAggBudgetsCmd(), newAggModelsCmd(), newAggRollbackCmd(), newAggRevokeTokenCmd(),
		newAggReloadCmd(), newAggCancelRoundCmd(), newAggWaitCmd())
	return cmd
}

func newAggInitCmd() *cobra.Command {
	var (
		dir, listen, db, policyFile string
		classic, keep               bool
		adminTTL                    time.Duration
		pf                          passphraseFlags
		cutoffs                     = defaultInitCutoffs()
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create an aggregator directory: keys, config, example policy and an admin token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("aggregator init: --dir is required")
			}
			if keep {
				if _, err := config.Load(filepath.Join(dir, config.File)); err == nil {
					_, err := fmt.Fprintf(cmd.ErrOrStderr(), "aggregator init: %s already holds an aggregator; kept\n", dir)
					return err
				}
			}
			if err := requireEmptyDir(dir); err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			policy := []byte(starterAggPolicy)
			if policyFile != "" {
				b, err := os.ReadFile(policyFile)
				if err != nil {
					return fmt.Errorf("aggregator init: %w", err)
				}
				policy = b
			}
			if _, err := policies.Parse(policyFile, policy); err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			wo, err := pf.writeOptions(cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			cfg := config.Default(listen, db)
			cfg.Rounds.Cutoffs = cutoffs
			if err := cfg.Check(); err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			// MkdirAll leaves an existing directory's mode alone: one that
			// group or others may write would let them rename their own
			// policy, config or database over ours, or plant a symlink
			// named like a file we are about to write.
			if err := os.Chmod(dir, 0o700); err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			a, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: classic})
			if err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			if err := keys.WriteAggregatorWithOptions(filepath.Join(dir, config.KeysDir), a, wo); err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			token, err := aggIssue(a, auth.Grant{Subject: "operator", Role: auth.RoleAdmin, TTL: adminTTL})
			if err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			cfgYAML, err := config.Marshal(&cfg)
			if err != nil {
				return fmt.Errorf("aggregator init: %w", err)
			}
			header := "# Kairos aggregator configuration (strict: unknown keys are errors).\n" +
				"# Relative paths are relative to this file's directory. Environment variables\n" +
				"# override some keys (docs/operations.md). rounds.cutoffs are the training\n" +
				"# cutoffs every merchant builds features at: dates inside the merchants' data,\n" +
				"# each at least 30 days before its end (the default fits the CDNOW shards).\n" +
				"# After editing, run: kairos aggregator reload --dir DIR\n"
			for _, f := range []struct {
				name string
				data []byte
				mode os.FileMode
			}{
				{config.PolicyFile, policy, 0o644},
				// The config may hold a database password (--db postgres://user:pass@…).
				{config.File, append([]byte(header), cfgYAML...), 0o600},
				{config.TokenFile, []byte(token + "\n"), 0o600},
			} {
				if err := writeNewFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
					return fmt.Errorf("aggregator init: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created %s: %s/ (aggregator keys), %s, %s, %s (admin token, valid %v)\n",
				dir, config.KeysDir, config.File, config.PolicyFile, config.TokenFile, adminTTL)
			fmt.Fprintf(out, "next: kairos aggregator serve --dir %s; enrol merchants with kairos aggregator enrol --dir %s --add-to-policy …\n", dir, dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory to create (must not exist or be empty)")
	f.StringVar(&listen, "listen", "127.0.0.1:8700", "address the server will listen on")
	f.StringVar(&db, "db", "sqlite:"+config.DBFile, "store URL (sqlite:FILE relative to DIR, or postgres://…)")
	f.StringVar(&policyFile, "policy", "", "policy file to copy (default: a starter policy with regions eu and us and no merchants yet)")
	f.Func("cutoffs", "training cutoffs for kairos.yaml, comma-separated dates (default the CDNOW reference cutoffs 1997-07-01,1997-09-01,1997-11-01,1998-01-01)", func(v string) error {
		ts, err := parseDates(v)
		if err != nil {
			return err
		}
		cutoffs = ts
		return nil
	})
	f.BoolVar(&classic, "classic", false, "X25519 age identity instead of the post-quantum hybrid")
	f.DurationVar(&adminTTL, "admin-token-ttl", 30*24*time.Hour, "lifetime of the admin token")
	f.BoolVar(&keep, "keep-existing", false, "when DIR already holds an aggregator (a valid kairos.yaml), keep it and exit 0 (container start-up)")
	pf.register(cmd)
	return cmd
}

// aggIssue signs a token with the aggregator's active JWT key.
func aggIssue(a *keys.Aggregator, g auth.Grant) (string, error) {
	iss, err := server.Issuer(a)
	if err != nil {
		return "", err
	}
	tok, _, err := iss.Issue(g)
	return tok, err
}

func newAggMigrateCmd() *cobra.Command {
	var (
		af aggFlags
		db string
	)
	cmd := &cobra.Command{
		Use:   "migrate --dir DIR [--db URL]",
		Short: "Apply the pending database migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := af.load()
			if err != nil {
				return fmt.Errorf("aggregator migrate: %w", err)
			}
			st, err := store.Open(cmd.Context(), cfg.DBURL(db))
			if err != nil {
				return fmt.Errorf("aggregator migrate: %w", err)
			}
			defer st.Close()
			if err := st.Migrate(cmd.Context()); err != nil {
				return fmt.Errorf("aggregator migrate: %w", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "migrated")
			return err
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&db, "db", "", "store URL instead of the config's")
	return cmd
}

func newAggServeCmd() *cobra.Command {
	var (
		af                  aggFlags
		db, listen, addrOut string
		metricsListen       string
		metricsAddrOut      string
		maxInflightMiB      int64
		logJSON, noMigrate  bool
		logLevel            slog.Level
		pf                  passphraseFlags
		gc                  = gcFlags{defaultLimitMiB: aggMemoryLimitMiB}
	)
	cmd := &cobra.Command{
		Use:   "serve --dir DIR [--db postgres://…] [--listen 127.0.0.1:8700]",
		Short: "Run the aggregator: round loop and HTTP API, until SIGTERM",
		Long: `Serve opens the store (migrating it unless --no-migrate), runs the round loop and
serves the HTTP API. On SIGTERM or interrupt it stops accepting connections, drains
in-flight requests (up to 30 s), stops the round loop and flushes the audit log.
At start it checks the audit log's entries from its last signed checkpoint (in the
database or the audit.witness file) and signs its head, refusing to start if an
entry under a signed checkpoint changed; then it signs the head every second in
which it moved and appends each checkpoint to the witness file.
With tls.cert and tls.key in the config it serves HTTPS (TLS 1.2+).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := gc.apply(); err != nil {
				return fmt.Errorf("aggregator serve: %w", err)
			}
			cfg, err := af.load()
			if err != nil {
				return fmt.Errorf("aggregator serve: %w", err)
			}
			if p := os.Getenv(config.EnvDBFile); p != "" {
				// Read and checked (not writable by others) by load.
				if fi, err := os.Stat(p); err == nil {
					warnReadableSecret(cmd.ErrOrStderr(), p, fi.Mode())
				}
			}
			if listen != "" {
				cfg.Listen = listen
			}
			if metricsListen != "" {
				cfg.MetricsListen = metricsListen
			}
			switch {
			case maxInflightMiB < 0:
				return fmt.Errorf("aggregator serve: --max-inflight-mib %d: want a positive size (0 keeps the config's)", maxInflightMiB)
			case maxInflightMiB > 0:
				cfg.Limits.MaxInflightBytes = maxInflightMiB << 20
			}
			h := slog.Handler(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel}))
			if logJSON {
				h = slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: logLevel})
			}
			pass, err := pf.passphrase(cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("aggregator serve: %w", err)
			}
			if err := aggServe(cmd.Context(), slog.New(h), cfg, server.OpenOptions{
				DB: cfg.DBURL(db), Migrate: !noMigrate, Passphrase: pass, Getenv: os.Getenv,
			}, addrOut, metricsAddrOut); err != nil {
				return fmt.Errorf("aggregator serve: %w", err)
			}
			return nil
		},
	}
	af.register(cmd)
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "store URL instead of the config's (postgres://… for replicas)")
	f.StringVar(&listen, "listen", "", "listen address instead of the config's (port 0 picks a free one)")
	f.StringVar(&addrOut, "addr-file", "", "write the server's base URL to this file once it listens")
	f.StringVar(&metricsListen, "metrics-listen", "", "serve GET /metrics without a token (and without per-merchant series) on this address instead of the config's metrics_listen; keep it on loopback")
	f.StringVar(&metricsAddrOut, "metrics-addr-file", "", "write the metrics listener's base URL to this file once it listens")
	f.Int64Var(&maxInflightMiB, "max-inflight-mib", 0, "request bodies held at once, in MiB, instead of the config's limits.max_inflight_bytes (default 96); a body that does not fit is refused with 503")
	f.BoolVar(&noMigrate, "no-migrate", false, "do not apply pending migrations at start")
	f.BoolVar(&logJSON, "log-json", false, "log JSON lines instead of text")
	f.TextVar(&logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	f.StringVar(&pf.file, "passphrase-file", "", "file whose first line is the key directory's passphrase")
	gc.register(cmd)
	return cmd
}

// gcFlags set the Go garbage collector of a serving process. The predict
// path allocates per request, and at Go's default (100) a loaded server
// collects every few tens of milliseconds; a higher percent trades memory
// (the live heap is small) for fewer cycles, with a memory limit as the
// bound. Zero values leave GOGC and GOMEMLIMIT (or Go's defaults) alone.
type gcFlags struct {
	percent  int
	limitMiB int64
	// defaultLimitMiB is the memory limit when neither --memory-limit-mib
	// nor GOMEMLIMIT sets one; 0 for none.
	defaultLimitMiB int64
}

func (g *gcFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&g.percent, "gc-percent", 0, "Go GC target percent as GOGC (e.g. 400: fewer collections, more memory); 0 keeps GOGC or 100; -1 collects only at --memory-limit-mib")
	def := "none"
	if g.defaultLimitMiB > 0 {
		def = fmt.Sprint(g.defaultLimitMiB)
	}
	f.Int64Var(&g.limitMiB, "memory-limit-mib", 0, "soft memory limit of the Go heap in MiB as GOMEMLIMIT; 0 keeps GOMEMLIMIT or else "+def+" (GOMEMLIMIT=off for none)")
}

func (g gcFlags) apply() error {
	switch {
	case g.percent < -1:
		return fmt.Errorf("--gc-percent %d: want -1 (off), 0 (unchanged) or a positive percent", g.percent)
	case g.limitMiB < 0:
		return fmt.Errorf("--memory-limit-mib %d: want 0 (unchanged) or a positive size", g.limitMiB)
	case g.percent == -1 && g.limitMiB == 0:
		return errors.New("--gc-percent -1 needs --memory-limit-mib: without a limit the heap would only grow")
	}
	if g.percent != 0 {
		debug.SetGCPercent(g.percent)
	}
	switch {
	case g.limitMiB > 0:
		debug.SetMemoryLimit(g.limitMiB << 20)
	case g.defaultLimitMiB > 0 && os.Getenv("GOMEMLIMIT") == "":
		// A lower limit already in force (applyMemoryLimit's share of a
		// small container) stays: the default must not lift it.
		debug.SetMemoryLimit(min(g.defaultLimitMiB<<20, debug.SetMemoryLimit(-1)))
	}
	return nil
}

// aggServe assembles the aggregator cfg describes and serves it until ctx
// ends, reloading it on SIGHUP.
func aggServe(ctx context.Context, log *slog.Logger, cfg *config.Config, o server.OpenOptions, addrOut, metricsAddrOut string) (err error) {
	agg, st, err := server.Open(ctx, log, cfg, o)
	if err != nil {
		return err
	}
	defer st.Close()
	defer func() {
		if cerr := agg.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	stopHUP := reloadOnSIGHUP(ctx, log, agg.Reload)
	defer stopHUP()
	return agg.Serve(ctx, server.ServeOptions{
		Listen: cfg.Listen, TLSCert: cfg.Path(cfg.TLS.Cert), TLSKey: cfg.Path(cfg.TLS.Key), MetricsListen: cfg.MetricsListen,
		Bound: writeAddr(addrOut), MetricsBound: writeAddr(metricsAddrOut),
	})
}

// writeAddr writes a listener's base URL to path, when path is set.
func writeAddr(path string) func(string) error {
	if path == "" {
		return nil
	}
	return func(url string) error { return writeFileReplacing(path, []byte(url+"\n"), 0o644) }
}

// writeFileReplacing writes data to a temporary file beside path and renames
// it over path, so a symlink planted at path is replaced, never followed.
func writeFileReplacing(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// aggClientFlags are the flags of the commands that call the API as admin.
type aggClientFlags struct {
	aggFlags
	url, tokenFile, caFile string
}

func (f *aggClientFlags) register(cmd *cobra.Command) {
	f.aggFlags.register(cmd)
	cmd.Flags().StringVar(&f.url, "url", "", "server base URL instead of the one derived from the config")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "admin token file instead of the config's")
	cmd.Flags().StringVar(&f.caFile, "ca", "", "PEM CA certificates to trust for https (default: the config's tls.cert, then the system roots)")
}

func (f *aggClientFlags) client() (*apiclient.Client, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, err
	}
	base := orDefault(f.url, cfg.BaseURL())
	tokFile := orDefault(f.tokenFile, cfg.Path(cfg.AdminToken))
	// Refused when group or others can read it, as a private key file is.
	tok, err := keys.ReadSecretFile(tokFile)
	if err != nil {
		return nil, fmt.Errorf("read admin token: %w", err)
	}
	opts := []apiclient.Option{apiclient.WithUserAgent("kairos-aggregator-cli")}
	if insecure, err := insecureHTTPEnv(); err != nil {
		return nil, err
	} else if insecure {
		opts = append(opts, apiclient.WithInsecureHTTP())
	}
	if ca := orDefault(f.caFile, cfg.Path(cfg.TLS.Cert)); ca != "" && strings.HasPrefix(base, "https://") {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("read ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read ca %s: no PEM certificates", ca)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts = append(opts, apiclient.WithHTTPClient(&http.Client{Transport: tr, Timeout: time.Minute}))
	}
	return apiclient.New(base, strings.TrimSpace(string(tok)), opts...)
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func newAggEnrolCmd() *cobra.Command {
	var (
		cf                              aggClientFlags
		id, region, tz, pubFile, tokOut string
		asJSON, addToPolicy, keep       bool
		partners                        []string
	)
	cmd := &cobra.Command{
		Use:   "enrol --dir DIR --id ID --time-zone ZONE --public-key FILE [--region R]",
		Short: "Enrol a merchant through the running server and print its token",
		Long: `Enrol sends the merchant's id, region, time zone and Ed25519 signing key to
POST /v1/merchants with the admin token, and prints the merchant token the server
issues (or writes it, 0600, to --token-out). --public-key is the merchant's
signing.pub (PEM) or its whole key directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keep && tokOut != "" {
				if _, err := os.Stat(tokOut); err == nil {
					_, err := fmt.Fprintf(cmd.ErrOrStderr(), "aggregator enrol: %s exists; %s counted as enrolled, kept\n", tokOut, id)
					return err
				}
			}
			pub, err := readMerchantPublicKey(pubFile)
			if err != nil {
				return fmt.Errorf("aggregator enrol: %w", err)
			}
			c, err := cf.client()
			if err != nil {
				return fmt.Errorf("aggregator enrol: %w", err)
			}
			if len(partners) > 0 && !addToPolicy {
				return errors.New("aggregator enrol: --partner edits the policy: give --add-to-policy too")
			}
			if addToPolicy {
				if err := enrolAddToPolicy(cmd, &cf, c, policies.MerchantEntry{ID: id, Region: region, Partners: partners}); err != nil {
					return fmt.Errorf("aggregator enrol: %w", err)
				}
			}
			e, err := c.Enrol(cmd.Context(), protocol.EnrolRequest{ID: id, Region: region, TimeZone: tz, PublicKey: pub})
			if err != nil {
				return fmt.Errorf("aggregator enrol: %w", err)
			}
			if tokOut != "" {
				if err := writeSecretFile(tokOut, []byte(e.Token+"\n")); err != nil {
					return fmt.Errorf("aggregator enrol: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				return printJSON(out, e)
			case tokOut != "":
				_, err = fmt.Fprintf(out, "enrolled %s; token (expires %s) written to %s\n", e.Merchant.ID, e.TokenExpiresAt.Format(time.RFC3339), tokOut)
			default:
				_, err = fmt.Fprintln(out, e.Token)
			}
			return err
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "merchant id")
	f.StringVar(&region, "region", "", "policy region")
	f.StringVar(&tz, "time-zone", "", "IANA time zone of the merchant (e.g. Europe/Berlin)")
	f.StringVar(&pubFile, "public-key", "", "merchant's signing.pub (PEM) or key directory")
	f.StringVar(&tokOut, "token-out", "", "write the token to this file (0600) instead of stdout")
	f.BoolVar(&asJSON, "json", false, "print the whole enrolment as JSON")
	f.BoolVar(&addToPolicy, "add-to-policy", false, "first add the merchant (with --region) to the policy file and have the server reload it")
	f.BoolVar(&keep, "keep-existing", false, "with --token-out: when that file exists, do nothing and exit 0 (container start-up)")
	f.StringSliceVar(&partners, "partner", nil, "with --add-to-policy: partner app ids allowed to query this merchant (created with 20 req/s, burst 40 if new)")
	for _, n := range []string{"id", "time-zone", "public-key"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

// readMerchantPublicKey reads an Ed25519 public key from a PKIX PEM file or a
// merchant key directory.
func readMerchantPublicKey(path string) (ed25519.PublicKey, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		p, err := keys.LoadMerchantPublic(path)
		if err != nil {
			return nil, err
		}
		return p.Signing, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("read public key %s: want a PEM \"PUBLIC KEY\" block", path)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("read public key %s: %T is not an Ed25519 key", path, k)
	}
	return pub, nil
}

// writeSecretFile writes data to a new 0600 file.
func writeSecretFile(path string, data []byte) error { return writeNewFile(path, data, 0o600) }

// writeNewFile writes data to a file it creates with mode (less the umask).
// An existing file or symlink at path is an error (O_EXCL), so nothing is
// written through a link someone else placed there.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func newAggMerchantsCmd() *cobra.Command {
	var (
		cf     aggClientFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "merchants --dir DIR",
		Short: "List the enrolled merchants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return fmt.Errorf("aggregator merchants: %w", err)
			}
			ms, err := c.Merchants(cmd.Context())
			if err != nil {
				return fmt.Errorf("aggregator merchants: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tREGION\tTIME ZONE\tSIGNING KEY\tREVOKED\tENROLLED")
			for _, m := range ms {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", m.ID, orDefault(m.Region, "-"), m.TimeZone,
					keys.KeyID(m.PublicKey), m.Revoked, m.EnrolledAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAggBudgetsCmd() *cobra.Command {
	var (
		cf     aggClientFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "budgets --dir DIR",
		Short: "Show every merchant's ε spent against its cap",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return fmt.Errorf("aggregator budgets: %w", err)
			}
			bs, err := c.Budgets(cmd.Context())
			if err != nil {
				return fmt.Errorf("aggregator budgets: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), bs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "MERCHANT\tε SPENT\tε CAP\tδ\tRELEASES\tLAST RELEASE")
			for _, b := range bs {
				last := "-"
				if !b.LastRelease.IsZero() {
					last = b.LastRelease.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%.4f\t%g\t%g\t%d\t%s\n", b.Merchant, b.Epsilon, b.Cap, b.Delta, b.Releases, last)
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newAggModelsCmd() *cobra.Command {
	var (
		cf     aggClientFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "models --dir DIR",
		Short: "List the published model versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return fmt.Errorf("aggregator models: %w", err)
			}
			ms, err := c.Models(cmd.Context())
			if err != nil {
				return fmt.Errorf("aggregator models: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			return writeModelTable(cmd.OutOrStdout(), ms)
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func writeModelTable(w io.Writer, ms []protocol.ModelVersion) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tACTIVE\tPARENT\tROUND\tPUBLISHED\tMERGE\tMERCHANTS\tMAX ε\tDP AUC@30")
	for _, m := range ms {
		active, maxEps := "", 0.0
		switch {
		case m.Active:
			active = "*"
		case m.Withdrawn && m.WithdrawnSeq != 0:
			active = fmt.Sprintf("withdrawn@%d", m.WithdrawnSeq)
		case m.Withdrawn:
			active = "withdrawn"
		}
		for _, c := range m.Contributions {
			maxEps = max(maxEps, c.Epsilon)
		}
		round := m.Round
		if round == "" {
			round = "-"
		}
		auc := "-"
		if v, ok := m.Metrics["auc_30"]; ok {
			auc = fmt.Sprintf("%.3f ± %.3f", v, m.Metrics["auc_30_se"])
		}
		merchants, eps := fmt.Sprint(len(m.Contributions)), fmt.Sprintf("%.4g", maxEps)
		if m.ContributionsRedacted {
			merchants, eps = "-", "-" // the token's role may not see them
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Version, active, m.Parent, round,
			m.PublishedAt.UTC().Format(time.RFC3339), m.Merge, merchants, eps, auc)
	}
	return tw.Flush()
}

func newAggRollbackCmd() *cobra.Command {
	var (
		cf      aggClientFlags
		version int
	)
	cmd := &cobra.Command{
		Use:   "rollback --dir DIR --version N",
		Short: "Make an earlier model version the active one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if version < 1 {
				return fmt.Errorf("aggregator rollback: --version %d: want a version ≥ 1", version)
			}
			c, err := cf.client()
			if err != nil {
				return fmt.Errorf("aggregator rollback: %w", err)
			}
			mv, err := c.Rollback(cmd.Context(), version)
			var prob *apiclient.Problem
			if errors.As(err, &prob) && prob.Status == http.StatusNotFound {
				ms, lerr := c.Models(cmd.Context())
				switch {
				case lerr != nil:
				case len(ms) <= 1:
					return fmt.Errorf("aggregator rollback --version %d: %w: the registry holds only the initial model (version 1); no round has published yet", version, errNoModels)
				default:
					return fmt.Errorf("aggregator rollback --version %d: no such version; the registry holds versions 1 to %d (kairos aggregator models)", version, ms[len(ms)-1].Version)
				}
			}
			if err != nil {
				return fmt.Errorf("aggregator rollback: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "active model is now version %d (round %s)\n", mv.Version, orDefault(mv.Round, "-"))
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().IntVar(&version, "version", 0, "model version to activate")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

func newAggRevokeTokenCmd() *cobra.Command {
	var (
		cf      aggClientFlags
		jti     string
		expires time.Time
	)
	cmd := &cobra.Command{
		Use:   "revoke-token --dir DIR (TOKEN|- | --jti ID --expires TIME)",
		Short: "Make the aggregator refuse an API token from now on (audited)",
		Long: `Revoke-token asks the running aggregator (admin token from DIR) to refuse a token
until it expires. Give the token itself (or - to read it from stdin): it is verified
against the aggregator's JWT keys in DIR and its jti and expiry are sent, never the
token. Or give --jti and --expires (RFC 3339) for a token known only by its id.
Every replica refuses the token within its verifier's revocation TTL (1 s by
default), and the audit log records who revoked it (token.revoke, the id as an
HMAC).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && (jti != "" || !expires.IsZero()):
				return errors.New("aggregator revoke-token: give a token or --jti with --expires, not both")
			case len(args) == 0 && (jti == "" || expires.IsZero()):
				return errors.New("aggregator revoke-token: give a token, or --jti and --expires")
			}
			if len(args) == 1 && strings.TrimSpace(args[0]) == "" {
				return errors.New(`aggregator revoke-token: the token argument is empty (an unset shell variable?); give the token, - to read it from stdin, or --jti and --expires`)
			}
			if len(args) == 1 {
				cfg, err := cf.load()
				if err != nil {
					return fmt.Errorf("aggregator revoke-token: %w", err)
				}
				c, err := verifyOwnToken(cmd, cfg.Path(cfg.Keys), args[0])
				if err != nil {
					return fmt.Errorf("aggregator revoke-token: %w", err)
				}
				jti, expires = c.ID, c.ExpiresAt.Time
			}
			c, err := cf.client()
			if err != nil {
				return fmt.Errorf("aggregator revoke-token: %w", err)
			}
			out, err := c.RevokeToken(cmd.Context(), jti, expires)
			if err != nil {
				return fmt.Errorf("aggregator revoke-token: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "token %s refused until %s\n", out.JTI, out.ExpiresAt.Format(time.RFC3339))
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&jti, "jti", "", "the token's id (its jti claim), instead of the token")
	cmd.Flags().Func("expires", "with --jti: the token's expiry, RFC 3339", func(v string) error {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return fmt.Errorf("not an RFC 3339 time such as 2026-12-31T00:00:00Z: %w", err)
		}
		expires = t
		return nil
	})
	return cmd
}

// verifyOwnToken verifies tok ("-": read from stdin) against the JWT keys in
// the aggregator key directory dir and returns its claims.
func verifyOwnToken(cmd *cobra.Command, dir, tok string) (*auth.Claims, error) {
	if tok == "-" {
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), auth.MaxTokenSize+1))
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		tok = string(b)
	}
	pubs, err := tokenPublicKeys(dir, "")
	if err != nil {
		return nil, err
	}
	v, err := auth.NewVerifier(auth.VerifierOptions{
		Keys: pubs, Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience, Revocations: auth.NewMemoryRevocations(nil),
	})
	if err != nil {
		return nil, err
	}
	return v.Verify(cmd.Context(), strings.TrimSpace(tok))
}
