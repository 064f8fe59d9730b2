package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

// HTTP server hardening.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second // a 4 MiB envelope over a slow link
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	// ShutdownTimeout bounds the wait for in-flight requests at shutdown.
	ShutdownTimeout = 30 * time.Second
)

// OpenOptions say how Open reads what the config file names.
type OpenOptions struct {
	// DB is the store URL (config.Config.DBURL, with a --db override).
	DB string
	// Migrate applies pending migrations before anything else.
	Migrate bool
	// Passphrase decrypts the key files (nil: unencrypted).
	Passphrase []byte
	// Getenv reads the environment overrides at a reload (config.ApplyEnv);
	// none when nil.
	Getenv func(string) string
}

// Open assembles the aggregator a config file describes: it loads the keys
// and the policy, opens (and migrates) the store and calls New. Its
// Aggregator reloads by re-reading the config file (ReloadFile). Close the
// returned Aggregator, then the store.
func Open(ctx context.Context, log *slog.Logger, cfg *config.Config, o OpenOptions) (_ *Aggregator, _ store.Store, err error) {
	if err := checkFiles(cfg); err != nil {
		return nil, nil, err
	}
	a, err := keys.LoadAggregator(cfg.Path(cfg.Keys), o.Passphrase)
	if err != nil {
		return nil, nil, err
	}
	policy, err := readPolicy(cfg.Path(cfg.Policy))
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, o.DB)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	if o.Migrate {
		if err := st.Migrate(ctx); err != nil {
			return nil, nil, err
		}
	}
	auditCfg := cfg.Audit
	auditCfg.Witness = cfg.Path(cfg.Audit.Witness)
	agg, err := New(ctx, Options{
		Store: st, Keys: a, Policy: policy, Rounds: cfg.Rounds, Logger: log,
		Envelopes: cfg.Envelopes, Limits: cfg.Limits, Tokens: cfg.Tokens, Audit: auditCfg,
		Source: config.RedactDB(o.DB),
		Reload: func(ctx context.Context, svc *aggregator.Service, actor string) (protocol.Reload, error) {
			return ReloadFile(ctx, log, cfg, o.Getenv, svc, actor)
		},
	})
	if err != nil {
		return nil, nil, err
	}
	return agg, st, nil
}

// checkFiles refuses the aggregator directory (the config file's), the
// config file (the database URL), the policy (who may predict for whom),
// the admin token and the TLS key when group or others may write them
// (keys.ErrInsecureMode): init makes the directory 0700, but one opened up
// later would let them rename their own files over these. The key directory
// is checked by keys.LoadAggregator; a missing admin token (the operator
// moved it elsewhere) is not an error.
func checkFiles(cfg *config.Config) error {
	if cfg.Filename() == "" {
		return nil
	}
	type file struct {
		path     string
		optional bool
	}
	files := []file{{filepath.Dir(cfg.Filename()), false}, {cfg.Filename(), false}, {cfg.Path(cfg.Policy), false}}
	if cfg.AdminToken != "" {
		files = append(files, file{cfg.Path(cfg.AdminToken), true})
	}
	if cfg.TLS.Key != "" {
		files = append(files, file{cfg.Path(cfg.TLS.Key), false})
	}
	for _, f := range files {
		err := keys.CheckNotWritable(f.path)
		if f.optional && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("aggregator files: %w", err)
		}
	}
	return nil
}

func readPolicy(path string) (*policies.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return policies.Parse(path, data)
}

// ReloadFile re-reads the config file running was loaded from (and the
// environment, through getenv) and the policy it names, and installs the
// policy and the rounds section in svc. Keys that need a restart (listen,
// db, keys, tls, limits, tokens, audit, envelopes) are not applied; a change
// to them is logged and noted in the answer. A refusal matches
// aggregator.ErrPolicy.
func ReloadFile(ctx context.Context, log *slog.Logger, running *config.Config, getenv func(string) string, svc *aggregator.Service, actor string) (protocol.Reload, error) {
	refuse := func(err error) (protocol.Reload, error) {
		log.Warn("reload refused", "actor", actor, "err", err)
		// Audited as Reload's own refusals are; the policy and rounds in force stay.
		return protocol.Reload{}, svc.RefuseReload(ctx, actor, err)
	}
	next, err := config.Load(running.Filename())
	if err == nil && getenv != nil {
		err = next.ApplyEnv(getenv)
	}
	if err != nil {
		return refuse(err)
	}
	var restart []string
	if next.Listen != running.Listen || next.MetricsListen != running.MetricsListen {
		restart = append(restart, "listen")
	}
	if next.DB != running.DB {
		restart = append(restart, "db")
	}
	if next.Path(next.Keys) != running.Path(running.Keys) || next.TLS != running.TLS {
		restart = append(restart, "keys/tls")
	}
	if next.Limits != running.Limits || next.Tokens != running.Tokens || next.Audit != running.Audit || next.Envelopes != running.Envelopes {
		restart = append(restart, "limits/tokens/audit/envelopes")
	}
	pol, err := readPolicy(next.Path(next.Policy))
	if err != nil {
		return refuse(err)
	}
	out, err := svc.Reload(ctx, actor, pol, next.Rounds)
	if err != nil {
		return out, err
	}
	if len(restart) > 0 {
		out.Note += "; changed keys that take a restart, not applied: " + strings.Join(restart, ", ")
		log.Warn("reload: changed keys need a restart", "keys", strings.Join(restart, ", "))
	}
	return out, nil
}

// ServeOptions say where Serve listens.
type ServeOptions struct {
	// Listen is the API's address (port 0 picks a free one).
	Listen string
	// TLSCert and TLSKey, when set, serve HTTPS (TLS 1.2+) from these PEM files.
	TLSCert, TLSKey string
	// MetricsListen, when set, answers GET /metrics there without a token
	// and without per-merchant series.
	MetricsListen string
	// Bound, when set, is called with the API's base URL once it listens;
	// MetricsBound the same for the metrics listener.
	Bound, MetricsBound func(url string) error
}

// Serve runs the round loop and the HTTP API until ctx ends or either stops.
// Then it stops accepting connections, drains in-flight requests (up to
// ShutdownTimeout) and only then stops the round loop, so that a request
// being handled still has the service behind it.
func (a *Aggregator) Serve(ctx context.Context, o ServeOptions) error {
	srv := &http.Server{
		Handler:           a.API,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	tlsOn := o.TLSCert != ""
	if tlsOn {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if o.MetricsListen != "" {
		stop, err := serveMetrics(ctx, a.log, o.MetricsListen, a.API.MetricsHandler(), o.MetricsBound)
		if err != nil {
			return err
		}
		defer stop()
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.Listen)
	if err != nil {
		return err
	}
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	base := scheme + "://" + ln.Addr().String()
	if o.Bound != nil {
		if err := o.Bound(base); err != nil {
			_ = ln.Close()
			return err
		}
	}
	a.log.Info("aggregator serving", "url", base, "store", a.source, "policy_hash", a.Service.Policy().Hash())
	serve := func() error {
		if tlsOn {
			return srv.ServeTLS(ln, o.TLSCert, o.TLSKey)
		}
		return srv.Serve(ln)
	}
	loop := a.Service.Run
	if a.reload != nil {
		loop = func(ctx context.Context) error {
			fctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); a.followReloads(fctx) }()
			err := a.Service.Run(ctx)
			stop()
			<-done
			return err
		}
	}
	return ServeUntilDone(ctx, a.log, srv, serve, loop)
}

// ServeUntilDone runs serve (an HTTP server's Serve on its listener) and
// loop (the round loop) until ctx ends or either of them stops. Then it
// shuts srv down, which stops accepting connections and waits up to
// ShutdownTimeout for in-flight requests, and only then stops the loop.
func ServeUntilDone(ctx context.Context, log *slog.Logger, srv *http.Server, serve func() error, loop func(context.Context) error) error {
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoop()
	loopDone := make(chan error, 1)
	go func() { loopDone <- loop(loopCtx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- serve() }()

	var failure error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining requests")
	case err := <-serveDone:
		failure = fmt.Errorf("http: %w", err)
		serveDone <- nil
	case err := <-loopDone:
		if err == nil {
			err = errors.New("returned before shutdown")
		}
		failure = fmt.Errorf("round loop stopped: %w", err)
		loopDone <- nil
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		failure = errors.Join(failure, fmt.Errorf("shutdown: %w", err))
	}
	if err := <-serveDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		failure = errors.Join(failure, fmt.Errorf("http: %w", err))
	}
	stopLoop()
	if err := <-loopDone; err != nil && !errors.Is(err, context.Canceled) {
		failure = errors.Join(failure, fmt.Errorf("round loop: %w", err))
	}
	log.Info("aggregator stopped")
	return failure
}

// serveMetrics answers GET /metrics with h on addr, the operator's
// listener: no token, and h holds no per-merchant series
// (api.Server.MetricsHandler). It returns once the address is bound
// (reported to bound as a base URL when set) and stop, which closes the
// listener and waits briefly for scrapes in flight.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, h http.Handler, bound func(string) error) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	base := "http://" + ln.Addr().String()
	if bound != nil {
		if err := bound(base); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	log.Info("metrics serving", "url", base+"/metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}
