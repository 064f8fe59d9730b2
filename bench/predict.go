package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/server"
	"github.com/kairos-fl/kairos/api"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/synth"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

// PredictResult is what `kairos bench predict` measures; also its JSON.
type PredictResult struct {
	Target       string      `json:"target"` // in-process or the --url
	Store        string      `json:"store"`
	GoMaxProcs   int         `json:"gomaxprocs"`
	CPUs         int         `json:"cpus"`
	Duration     float64     `json:"seconds_per_level"`
	Single       []LoadLevel `json:"single"`
	Batch        BatchResult `json:"batch"`          // customers with events
	BatchVectors BatchResult `json:"batch_features"` // customers as feature vectors
	Peer         []LoadLevel `json:"peer,omitempty"`
	PeerAgree    int         `json:"peer_predictions_compared,omitempty"`
	Ratio        float64     `json:"throughput_ratio_vs_peer,omitempty"` // Go (features, 32 clients) / Flask (32 clients)
	RatioEvents  float64     `json:"throughput_ratio_events_vs_peer,omitempty"`
	AuditEntries uint64      `json:"audit_entries,omitempty"`
	AuditBatches uint64      `json:"audit_batches,omitempty"`
	Errors       []string    `json:"errors,omitempty"`
}

// LoadLevel is one closed-loop run.
type LoadLevel struct {
	Name      string      `json:"name"` // go-events, go-features, flask
	Clients   int         `json:"clients"`
	Requests  int         `json:"requests"`
	Failures  int         `json:"failures"` // non-200 answers and transport errors
	PerSecond float64     `json:"per_second"`
	P50ms     float64     `json:"p50_ms"`
	P99ms     float64     `json:"p99_ms"`
	P999ms    float64     `json:"p999_ms"`
	MaxMs     float64     `json:"max_ms"`
	Codes     map[int]int `json:"codes"`
	// CPUus is this process's user+system CPU time per answered request
	// (server and load generator together; not the database's).
	CPUus float64 `json:"cpu_us_per_request"`
	// Breakdown is filled with --breakdown (in-process server only).
	Breakdown *Breakdown `json:"breakdown,omitempty"`
}

// BatchResult times batch requests two ways. P50ms..MaxMs: from sending the
// request to the answer's last byte (the server's work and the transfer).
// Decoded*: the same plus this client's encoding/json decoding of the
// answer. Every answer is checked (each customer answered in order, none in
// error) after the clock has stopped.
type BatchResult struct {
	Customers    int     `json:"customers"`
	Bytes        int     `json:"body_bytes"`
	AnswerBytes  int     `json:"answer_bytes"`
	Runs         int     `json:"runs"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	DecodedP50ms float64 `json:"decoded_p50_ms"`
	DecodedP99ms float64 `json:"decoded_p99_ms"`
	DecodedMaxMs float64 `json:"decoded_max_ms"`
}

// benchInputs are pre-encoded request bodies.
type benchInputs struct {
	events   [][]byte // single-customer bodies with events
	features [][]byte // single-customer bodies with feature vectors
	vectors  [][]float64
	batch    []byte // customers with events
	batchX   []byte // the same number of customers as feature vectors
	// batchIDs and batchXIDs are the customers of batch and batchX in order.
	batchIDs, batchXIDs []string
}

// PredictOptions configure Predict; the command's flags of the same names
// say what each one does.
type PredictOptions struct {
	// DB is the in-process aggregator's store (a postgres:// URL gets a fresh
	// database beside the one named); empty: SQLite in a temporary file.
	DB string
	// URL, Token and Merchant target a running aggregator instead.
	URL, Token, Merchant string
	// Clients are the concurrent client counts of the load levels.
	Clients []int
	// Duration of each level, after a Warmup.
	Duration, Warmup time.Duration
	// Customers are the synthetic customers (distinct bodies); Batches batch
	// requests of Batch customers are timed.
	Customers, Batch, Batches int
	Seed                      uint64
	// Flask is the peer script (empty: no peer), run with Python.
	Flask, Python string
	// Breakdown reports where the time of each level goes (in process only).
	Breakdown bool
	// Logger receives the in-process aggregator's warnings; discarded when nil.
	Logger *slog.Logger
}

// Predict load-tests POST /v1/predict and /v1/predict:batch and writes a
// line per measurement to out.
func Predict(ctx context.Context, out io.Writer, o PredictOptions) (*PredictResult, error) {
	if len(o.Clients) == 0 || o.Duration <= 0 || o.Customers < 1 || o.Batch < 1 || o.Batches < 1 {
		return nil, errors.New("clients, duration, customers, batch and batches must be positive")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	target, token, merchant := o.URL, o.Token, o.Merchant
	res := &PredictResult{GoMaxProcs: runtime.GOMAXPROCS(0), CPUs: runtime.NumCPU(), Duration: o.Duration.Seconds()}
	loc := time.UTC
	var stats func() audit.Stats
	var dg *diag
	if target == "" {
		if o.Breakdown {
			dg = &diag{wait: &latencies{}, commit: &latencies{}}
		}
		srv, err := startBenchServer(ctx, o.Logger, o.DB, o.Seed, o.Customers, dg)
		if err != nil {
			return nil, err
		}
		defer srv.close()
		target, token, merchant, loc = srv.url, srv.token, benchMerchant, srv.loc
		res.Store, stats = srv.storeKind, srv.alog.Stats
		res.Target = "in-process " + target
	} else {
		if token == "" || merchant == "" {
			return nil, errors.New("a target URL needs a token and a merchant")
		}
		res.Target, res.Store = target, "remote"
	}
	hc := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute, DisableCompression: true,
	}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()

	mv, err := fetchActiveModel(ctx, hc, target, token)
	if err != nil {
		return nil, err
	}
	in, err := benchBodies(merchant, o.Seed, o.Customers, o.Batch, loc, mv)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "target %s, store %s, model version %d, GOMAXPROCS %d on %d CPUs\n", res.Target, res.Store, mv.Version, res.GoMaxProcs, res.CPUs)

	post := func(path string, body []byte) func() (*http.Request, error) {
		return func() (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+path, bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			return req, nil
		}
	}
	// Warm up: connections, caches, the JIT-free but cold paths.
	_ = runLoad(ctx, hc, "warmup", slices.Max(o.Clients), o.Warmup, rotate(in.events, func(b []byte) func() (*http.Request, error) { return post("/v1/predict", b) }))

	for _, c := range o.Clients {
		dg.start()
		lv := runLoad(ctx, hc, "go-events", c, o.Duration, rotate(in.events, func(b []byte) func() (*http.Request, error) { return post("/v1/predict", b) }))
		lv.Breakdown = dg.finish()
		res.Single = append(res.Single, lv)
		printLevel(out, lv)
	}
	for _, c := range o.Clients {
		dg.start()
		lv := runLoad(ctx, hc, "go-features", c, o.Duration, rotate(in.features, func(b []byte) func() (*http.Request, error) { return post("/v1/predict", b) }))
		lv.Breakdown = dg.finish()
		res.Single = append(res.Single, lv)
		printLevel(out, lv)
	}
	for _, bt := range []struct {
		name string
		body []byte
		ids  []string
		dst  *BatchResult
	}{{"events", in.batch, in.batchIDs, &res.Batch}, {"feature vectors", in.batchX, in.batchXIDs, &res.BatchVectors}} {
		br, err := runBatches(ctx, hc, post("/v1/predict:batch", bt.body), o.Batches, bt.ids)
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
			fmt.Fprintf(out, "batch (%s): %v\n", bt.name, err)
			continue
		}
		*bt.dst = br
		fmt.Fprintf(out, "batch of %d customers, %s (%d KiB, answer %d KiB), %d runs: to last byte p50 %.1f ms, p99 %.1f ms, max %.1f ms; with client decoding p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			br.Customers, bt.name, br.Bytes>>10, br.AnswerBytes>>10, br.Runs, br.P50ms, br.P99ms, br.MaxMs, br.DecodedP50ms, br.DecodedP99ms, br.DecodedMaxMs)
	}

	if o.Flask != "" {
		if err := runPeer(ctx, out, hc, res, o.Python, o.Flask, mv, in, o.Clients, o.Duration, target, token, merchant); err != nil {
			res.Errors = append(res.Errors, "flask peer: "+err.Error())
			fmt.Fprintf(out, "flask peer: %v\n", err)
		}
	}
	if stats != nil {
		st := stats()
		res.AuditEntries, res.AuditBatches = st.Entries, st.Batches
		fmt.Fprintf(out, "audit: %d entries in %d group commits (%.1f per commit)\n", st.Entries, st.Batches, float64(st.Entries)/math.Max(1, float64(st.Batches)))
	}
	return res, nil
}

// rotate cycles through bodies.
func rotate(bodies [][]byte, mk func([]byte) func() (*http.Request, error)) func(i int) (*http.Request, error) {
	fs := make([]func() (*http.Request, error), len(bodies))
	for i, b := range bodies {
		fs[i] = mk(b)
	}
	return func(i int) (*http.Request, error) { return fs[i%len(fs)]() }
}

// runLoad runs clients closed-loop workers for d and returns the latencies'
// percentiles. Every latency is kept, so percentiles are exact.
func runLoad(ctx context.Context, hc *http.Client, name string, clients int, d time.Duration, next func(i int) (*http.Request, error)) LoadLevel {
	lv := LoadLevel{Name: name, Clients: clients, Codes: map[int]int{}}
	var mu sync.Mutex
	var all []time.Duration
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			codes := map[int]int{}
			for i := w; ctx.Err() == nil; i += clients {
				req, err := next(i)
				if err != nil {
					codes[-1]++
					continue
				}
				t0 := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						codes[-1]++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				codes[resp.StatusCode]++
			}
			mu.Lock()
			all = append(all, lat...)
			for k, v := range codes {
				lv.Codes[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	el, cpu := time.Since(start), cpuTime()-cpu0
	slices.Sort(all)
	lv.Requests = len(all)
	for code, n := range lv.Codes {
		if code != http.StatusOK {
			lv.Failures += n
		}
	}
	lv.PerSecond = float64(lv.Codes[http.StatusOK]) / el.Seconds()
	if lv.Requests > 0 {
		lv.CPUus = float64(cpu.Microseconds()) / float64(lv.Requests)
	}
	lv.P50ms, lv.P99ms, lv.P999ms = pct(all, 0.50), pct(all, 0.99), pct(all, 0.999)
	if len(all) > 0 {
		lv.MaxMs = ms(all[len(all)-1])
	}
	return lv
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct is the nearest-rank percentile of sorted.
func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return ms(sorted[max(0, min(i, len(sorted)-1))])
}

func printLevel(w io.Writer, lv LoadLevel) {
	fmt.Fprintf(w, "%-12s clients %4d: %8.0f /s  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  max %6.1f ms  %5.0f µs CPU/req  (%d requests, %d failures)\n",
		lv.Name, lv.Clients, lv.PerSecond, lv.P50ms, lv.P99ms, lv.P999ms, lv.MaxMs, lv.CPUus, lv.Requests, lv.Failures)
	printBreakdown(w, lv.Breakdown)
}

// runBatches sends runs batch requests one after the other. The clock stops
// at the answer's last byte; decoding and checking the answer (ids answered
// in order, none in error) are timed apart, so the server's time and the
// client's decoding are both reported and neither hides the other.
func runBatches(ctx context.Context, hc *http.Client, mk func() (*http.Request, error), runs int, ids []string) (BatchResult, error) {
	br := BatchResult{Customers: len(ids), Runs: runs}
	var lat, withDecode []time.Duration
	var buf bytes.Buffer
	for i := range runs {
		req, err := mk()
		if err != nil {
			return br, err
		}
		if i == 0 {
			br.Bytes = int(req.ContentLength)
		}
		buf.Reset()
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return br, fmt.Errorf("batch run %d: %w", i, err)
		}
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil {
			return br, fmt.Errorf("batch run %d: read answer: %w", i, err)
		}
		if resp.StatusCode != http.StatusOK {
			return br, fmt.Errorf("batch run %d: status %d: %.200s", i, resp.StatusCode, buf.Bytes())
		}
		t1 := time.Now()
		var bp api.BatchPrediction
		err = json.Unmarshal(buf.Bytes(), &bp)
		dec := time.Since(t1)
		if err != nil {
			return br, fmt.Errorf("batch run %d: decode answer: %w", i, err)
		}
		if err := checkBatchAnswer(&bp, ids); err != nil {
			return br, fmt.Errorf("batch run %d: %w", i, err)
		}
		br.AnswerBytes = buf.Len()
		lat, withDecode = append(lat, d), append(withDecode, d+dec)
	}
	slices.Sort(lat)
	slices.Sort(withDecode)
	br.P50ms, br.P99ms, br.MaxMs = pct(lat, 0.5), pct(lat, 0.99), ms(lat[len(lat)-1])
	br.DecodedP50ms, br.DecodedP99ms, br.DecodedMaxMs = pct(withDecode, 0.5), pct(withDecode, 0.99), ms(withDecode[len(withDecode)-1])
	return br, nil
}

// checkBatchAnswer checks that bp answers every customer of ids, in order,
// with a prediction and no error.
func checkBatchAnswer(bp *api.BatchPrediction, ids []string) error {
	if len(bp.Results) != len(ids) {
		return fmt.Errorf("%d results for %d customers", len(bp.Results), len(ids))
	}
	for i, r := range bp.Results {
		switch {
		case r.Customer != ids[i]:
			return fmt.Errorf("result %d is customer %q, want %q", i, r.Customer, ids[i])
		case r.Error != "":
			return fmt.Errorf("customer %q: error %q", r.Customer, r.Error)
		case r.Within == nil || r.Within.D30 <= 0 || r.Within.D30 > 1:
			return fmt.Errorf("customer %q: no probability within 30 days in (0, 1]", r.Customer)
		}
	}
	return nil
}

// ---- the in-process aggregator ----

const (
	benchMerchant = "bench-m1"
	benchPartner  = "bench-crm"
	benchZone     = "Europe/Berlin"
)

type benchServer struct {
	url, token, storeKind string
	loc                   *time.Location
	alog                  *audit.Log
	closers               []func()
}

func (b *benchServer) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// startBenchServer builds the aggregator and its API as `aggregator serve`
// does (real verifier with store revocations, rate limiter, durable audit),
// with a model trained on synthetic data as version 1.
func startBenchServer(ctx context.Context, log *slog.Logger, db string, seed uint64, customers int, dg *diag) (_ *benchServer, err error) {
	b := &benchServer{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.loc, err = time.LoadLocation(benchZone); err != nil {
		return nil, err
	}
	st, _, kind, err := openBenchStore(ctx, db, "kairos-bench-predict-", &b.closers)
	if err != nil {
		return nil, err
	}
	b.storeKind = kind
	a, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		return nil, err
	}
	policy, err := policies.Parse("bench.yaml", []byte(benchPolicy))
	if err != nil {
		return nil, err
	}
	m, err := benchModel(ctx, seed, customers, b.loc)
	if err != nil {
		return nil, err
	}
	o := server.Options{
		Store: st, Keys: a, Policy: policy, Logger: log, InitialModel: m,
		Rounds: aggregator.RoundConfig{Deadline: time.Hour},
		Audit:  config.Audit{CheckpointInterval: time.Minute},
	}
	if dg != nil {
		o.AuditStore = timedAuditStore{Store: st, lat: dg.commit}
		o.WrapAuditor = func(a api.Auditor) api.Auditor { return timedAuditor{Auditor: a, lat: dg.wait} }
	}
	agg, err := server.New(ctx, o)
	if err != nil {
		return nil, err
	}
	b.alog = agg.Audit
	b.closers = append(b.closers, func() { _ = agg.Close() })
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if _, err := agg.Service.Enrol(ctx, "admin:bench", aggregator.Merchant{ID: benchMerchant, TimeZone: benchZone, PublicKey: pub}); err != nil {
		return nil, err
	}
	if b.token, _, err = agg.Issuer.Issue(auth.Grant{Subject: benchPartner, Role: auth.RolePartner, Merchants: []string{benchMerchant}, TTL: 2 * time.Hour}); err != nil {
		return nil, err
	}
	handler := agg.API
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	go func() { _ = hs.Serve(ln) }()
	b.closers = append(b.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	b.url = "http://" + ln.Addr().String()
	return b, nil
}

// benchPolicy grants the bench partner a rate far above what the machine
// serves: the limiter is on the path but never refuses.
const benchPolicy = `version: 1
federation: bench-predict
defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 365
merchants:
  ` + benchMerchant + `: {}
partners:
  ` + benchPartner + `: { merchants: [` + benchMerchant + `], rate_per_second: 1000000, burst: 1000000 }
`

// freshBenchDB creates an empty database on the server of base and returns

// openBenchStore opens and migrates the store a benchmark runs on: a temporary
// SQLite file when db is empty, otherwise a fresh database on the PostgreSQL
// server db names (freshBenchDB). Everything to undo is appended to closers.
// kind is "sqlite" or "postgres".
func openBenchStore(ctx context.Context, db, tmpPrefix string, closers *[]func()) (store.Store, aggregator.Store, string, error) {
	kind := "sqlite"
	switch {
	case db == "":
		dir, err := os.MkdirTemp("", tmpPrefix)
		if err != nil {
			return nil, nil, "", err
		}
		*closers = append(*closers, func() { _ = os.RemoveAll(dir) })
		db = "sqlite:" + filepath.Join(dir, "kairos.db")
	case store.IsPostgres(db):
		kind = "postgres"
		fresh, drop, err := freshBenchDB(ctx, db)
		if err != nil {
			return nil, nil, "", err
		}
		*closers = append(*closers, drop)
		db = fresh
	}
	st, err := store.Open(ctx, db)
	if err != nil {
		return nil, nil, "", err
	}
	*closers = append(*closers, st.Close)
	if err := st.Migrate(ctx); err != nil {
		return nil, nil, "", err
	}
	fst, ok := st.(aggregator.Store)
	if !ok {
		return nil, nil, "", fmt.Errorf("store %T has no federation tables", st)
	}
	return st, fst, kind, nil
}

// its URL and a function that drops it.
func freshBenchDB(ctx context.Context, base string) (string, func(), error) {
	// pgxpool.ParseConfig understands (and strips) the pool_* settings a plain
	// connection would send to the server as unknown parameters; the returned URL
	// keeps them for the pool that opens the fresh database.
	cfg, err := pgxpool.ParseConfig(base)
	if err != nil {
		return "", nil, fmt.Errorf("parse %s: %w", config.RedactDB(base), err)
	}
	connect := func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy()) }
	conn, err := connect(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("connect %s: %w", config.RedactDB(base), err)
	}
	defer conn.Close(ctx)
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := "kairos_bench_" + hex.EncodeToString(r[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		c, err := connect(context.Background())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// benchWorld is the synthetic population both the model and the requests
// come from; asOf is the end of its window.
func benchWorld(seed uint64, customers int) (*synth.Generator, time.Time, error) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := synth.New(synth.Config{Seed: seed, Start: start, Days: 365, Customers: customers, EventsPerCustomer: 15})
	if err != nil {
		return nil, time.Time{}, err
	}
	return g, start.Add(365 * model.Day), nil
}

// benchModel trains a linear hazard model on the synthetic population at
// monthly cutoffs (labels inside the window).
func benchModel(ctx context.Context, seed uint64, customers int, loc *time.Location) (*hazard.Model, error) {
	g, end, err := benchWorld(seed, customers)
	if err != nil {
		return nil, err
	}
	var cutoffs []time.Time
	for c := end.AddDate(0, -6, 0); !c.After(end.Add(-model.Horizon * model.Day)); c = c.AddDate(0, 1, 0) {
		cutoffs = append(cutoffs, c)
	}
	b, err := feature.NewBuilder(feature.Config{Cutoffs: cutoffs, Location: loc})
	if err != nil {
		return nil, err
	}
	for i := range customers {
		for _, e := range g.Customer(i).Events {
			if err := b.Add(e); err != nil {
				return nil, err
			}
		}
	}
	m, _, err := hazard.Train(ctx, b.Schema(), b.Rows(), hazard.TrainOptions{Steps: 300, BatchSize: 256, Seed: seed, Meta: hazard.Metadata{Dataset: "synth"}})
	return m, err
}

// benchBodies encodes the request bodies: each customer's last 50 events
// before as_of, the same customers as feature vectors, and one batch.
func benchBodies(merchant string, seed uint64, customers, batch int, loc *time.Location, mv protocol.ModelVersion) (*benchInputs, error) {
	m, err := hazard.Unmarshal(mv.Model, mv.SchemaHash)
	if err != nil {
		return nil, err
	}
	g, asOf, err := benchWorld(seed+1, customers) // customers the model did not see
	if err != nil {
		return nil, err
	}
	var allow []string
	if full, _ := feature.NewSchema(nil); full.Hash != m.Schema.Hash {
		allow = m.Schema.Names
	}
	b, err := feature.NewBuilder(feature.Config{Cutoffs: []time.Time{asOf}, Location: loc, Allow: allow})
	if err != nil {
		return nil, err
	}
	in := &benchInputs{}
	asOfText := asOf.Format(time.RFC3339)
	var items []api.BatchCustomer
	ids := map[string][]api.EventInput{}
	for i := range customers {
		c := g.Customer(i)
		var evs []api.EventInput
		for _, e := range c.Events {
			if !e.Time.Before(asOf) {
				continue
			}
			if err := b.Add(e); err != nil {
				return nil, err
			}
			ev := api.EventInput{Time: e.Time.Format(time.RFC3339), Kind: e.Kind.String(), Item: e.Item, Category: e.Category}
			if e.HasAmount {
				a := e.Amount
				ev.Amount = &a
			}
			evs = append(evs, ev)
		}
		if len(evs) == 0 {
			continue
		}
		evs = evs[max(0, len(evs)-50):]
		ids[c.ID] = evs
		body, err := json.Marshal(api.PredictRequest{Merchant: merchant, Customer: c.ID, Events: evs, AsOf: asOfText})
		if err != nil {
			return nil, err
		}
		in.events = append(in.events, body)
		if len(items) < batch {
			items = append(items, api.BatchCustomer{Customer: c.ID, Events: evs})
			in.batchIDs = append(in.batchIDs, c.ID)
		}
	}
	var itemsX []api.BatchCustomer
	for _, r := range b.Rows() {
		in.vectors = append(in.vectors, r.X)
		if len(itemsX) < batch {
			itemsX = append(itemsX, api.BatchCustomer{Customer: r.Customer, Features: r.X})
			in.batchXIDs = append(in.batchXIDs, r.Customer)
		}
		body, err := json.Marshal(api.PredictRequest{Merchant: merchant, Customer: r.Customer, Features: r.X, AsOf: asOfText})
		if err != nil {
			return nil, err
		}
		in.features = append(in.features, body)
	}
	if len(items) < batch || len(in.events) == 0 {
		return nil, fmt.Errorf("only %d customers with events; raise --customers", len(items))
	}
	if in.batch, err = json.Marshal(api.PredictBatchRequest{Merchant: merchant, AsOf: asOfText, Customers: items}); err != nil {
		return nil, err
	}
	if in.batchX, err = json.Marshal(api.PredictBatchRequest{Merchant: merchant, AsOf: asOfText, Customers: itemsX}); err != nil {
		return nil, err
	}
	return in, nil
}

func fetchActiveModel(ctx context.Context, hc *http.Client, target, token string) (protocol.ModelVersion, error) {
	var mv protocol.ModelVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"/v1/models/active", nil)
	if err != nil {
		return mv, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return mv, fmt.Errorf("fetch active model: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return mv, fmt.Errorf("fetch active model: %d %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&mv); err != nil {
		return mv, fmt.Errorf("fetch active model: %w", err)
	}
	return mv, nil
}

// ---- the Flask peer ----

// runPeer starts the Flask peer on the active model, checks that it agrees
// with the API, and loads it at the same client counts.
func runPeer(ctx context.Context, out io.Writer, hc *http.Client, res *PredictResult, python, script string, mv protocol.ModelVersion,
	in *benchInputs, clients []int, dur time.Duration, target, token, merchant string) error {
	dir, err := os.MkdirTemp("", "kairos-peer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	modelPath := filepath.Join(dir, "model.json")
	if err := os.WriteFile(modelPath, mv.Model, 0o600); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(pctx, python, script, modelPath, strconv.Itoa(port))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s %s: %w", python, script, err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(stdout)) }()
	peer := fmt.Sprintf("http://127.0.0.1:%d", port)
	postPeer := func(x []float64) (*http.Request, error) {
		body, err := json.Marshal(map[string]any{"features": x})
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, peer+"/predict", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	}
	// Wait until it answers (Python and scikit-learn take a while to import).
	var up bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		req, _ := postPeer(in.vectors[0])
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			up = true
			break
		}
	}
	if !up {
		return fmt.Errorf("did not answer on %s: %s", peer, stderr.String())
	}
	// Same model, same answers: compare 20 customers' probabilities.
	for i := range min(20, len(in.vectors)) {
		x := in.vectors[i]
		var pw struct {
			Within        map[string]float64 `json:"within"`
			ExpectedDays  float64            `json:"expected_days"`
			MostLikelyDay int                `json:"most_likely_day"`
		}
		req, _ := postPeer(x)
		if err := doJSON(hc, req, &pw); err != nil {
			return fmt.Errorf("peer answer: %w", err)
		}
		body, _ := json.Marshal(api.PredictRequest{Merchant: merchant, Customer: "cmp", Features: x})
		greq, _ := http.NewRequestWithContext(ctx, http.MethodPost, target+"/v1/predict", bytes.NewReader(body))
		greq.Header.Set("Authorization", "Bearer "+token)
		greq.Header.Set("Content-Type", "application/json")
		var gp api.Prediction
		if err := doJSON(hc, greq, &gp); err != nil {
			return fmt.Errorf("api answer: %w", err)
		}
		got := []float64{gp.Within.D1, gp.Within.D3, gp.Within.D7, gp.Within.D14, gp.Within.D30, gp.ExpectedDays}
		want := []float64{pw.Within["1d"], pw.Within["3d"], pw.Within["7d"], pw.Within["14d"], pw.Within["30d"], pw.ExpectedDays}
		for j := range got {
			if math.Abs(got[j]-want[j]) > 1e-9*math.Max(1, math.Abs(want[j])) {
				return fmt.Errorf("customer %d value %d: API %v, peer %v", i, j, got[j], want[j])
			}
		}
		if gp.MostLikelyDay != pw.MostLikelyDay {
			return fmt.Errorf("customer %d: most likely day API %d, peer %d", i, gp.MostLikelyDay, pw.MostLikelyDay)
		}
		res.PeerAgree++
	}
	fmt.Fprintf(out, "flask peer agrees with the API on %d customers (probabilities within 1e-9)\n", res.PeerAgree)
	for _, c := range clients {
		py0 := procCPU(cmd.Process.Pid)
		lv := runLoad(ctx, hc, "flask", c, dur, func(i int) (*http.Request, error) { return postPeer(in.vectors[i%len(in.vectors)]) })
		if lv.Requests > 0 {
			lv.CPUus += float64((procCPU(cmd.Process.Pid) - py0).Microseconds()) / float64(lv.Requests)
		}
		res.Peer = append(res.Peer, lv)
		printLevel(out, lv)
	}
	find := func(levels []LoadLevel, name string, c int) float64 {
		for _, l := range levels {
			if l.Name == name && l.Clients == c {
				return l.PerSecond
			}
		}
		return 0
	}
	ref := 32
	if !slices.Contains(clients, ref) {
		ref = clients[len(clients)-1]
	}
	if pf := find(res.Peer, "flask", ref); pf > 0 {
		res.Ratio = find(res.Single, "go-features", ref) / pf
		res.RatioEvents = find(res.Single, "go-events", ref) / pf
		fmt.Fprintf(out, "throughput ratio at %d clients: API with features %.1f×, with events %.1f× the Flask peer (which has no auth and no audit)\n", ref, res.Ratio, res.RatioEvents)
	}
	return nil
}

func doJSON(hc *http.Client, req *http.Request, v any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// procCPU is process pid's user and system CPU time from /proc (0 when
// unreadable); the peer's CPU is added to the generator's.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name in parentheses: state is field 3,
	// utime and stime are fields 14 and 15, in clock ticks (100 per second).
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
