package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/evaluate"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
)

// demoShares is the reference split of the shared data README, in percent.
var demoShares = []float64{40, 25, 15, 12, 8}

// demoOptions configure runDemo.
type demoOptions struct {
	exe, data, workDir string
	keep               bool
	timeout            time.Duration
	progress           io.Writer // stage lines; io.Discard for none
}

// demoReport is the demo's outcome; its JSON form is what --json prints.
type demoReport struct {
	Rounds    int            `json:"rounds"`
	Merchants []demoMerchant `json:"merchants"`
	AUC30     demoMetric     `json:"auc_30"`
	AUC7      demoMetric     `json:"auc_7"`
	PRAUC30   demoMetric     `json:"pr_auc_30"`
	// DPEvaluation is the final model's federated evaluation as the registry
	// holds it: computed by the aggregator from the merchants' noisy
	// histograms (each merchant paid for its own), with bootstrap standard
	// errors ("_se") — what a federation without a central test set can know.
	DPEvaluation map[string]float64 `json:"federated_dp_evaluation"`
	// BinnedAUC30 is the final model's AUC@30 from the same histogram without
	// noise, over every test customer (only the demo, holding all the data,
	// can compute it): the evaluation's binning loss apart from its noise.
	BinnedAUC30     float64           `json:"binned_auc_30_without_noise"`
	AuditVerified   bool              `json:"audit_verified"`
	AuditEntries    int               `json:"audit_entries,omitempty"`
	NoiseMultiplier float64           `json:"noise_multiplier"`
	Delta           float64           `json:"delta"`
	TestCustomers   int               `json:"test_customers"`
	Seconds         float64           `json:"seconds"`
	Timings         map[string]string `json:"timings,omitempty"`
	WorkDir         string            `json:"work_dir,omitempty"`
}

type demoMerchant struct {
	ID         string     `json:"id"`
	Customers  int        `json:"customers"`
	Epsilon    float64    `json:"epsilon"`
	EpsilonCap float64    `json:"epsilon_cap"`
	Releases   int        `json:"releases"`
	LocalOnly  sim.Scores `json:"local_only"`
	// LocalOnlyEpsilon is what the local-only model spent (the same plan).
	LocalOnlyEpsilon float64 `json:"local_only_epsilon"`
	// OwnFederated and OwnLocalOnly score the federated and the local-only
	// model on this merchant's own test customers: what the merchant sees.
	OwnFederated sim.Scores  `json:"own_federated"`
	OwnLocalOnly sim.Scores  `json:"own_local_only"`
	Share        float64     `json:"share"`
	Rounds       int         `json:"rounds_joined"`
	Client       demoProcess `json:"-"`
}

// demoMetric is one metric for every model of the comparison.
type demoMetric struct {
	Federated     float64 `json:"federated"`
	LocalOnlyMean float64 `json:"local_only_mean"`
	LocalOnlyMax  float64 `json:"local_only_max"`
	Centralized   float64 `json:"centralized"`
	BGNBD         float64 `json:"bgnbd"`
}

type demoProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

func newDemoCmd() *cobra.Command {
	var (
		asJSON, keep bool
		data, work   string
		timeout      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo [--json]",
		Short: "Run a five-merchant federation over CDNOW on this machine and compare it with the alternatives",
		Long: `Demo needs no set-up. In a temporary directory it creates an aggregator
(kairos aggregator init), starts it (kairos aggregator serve) and five merchant clients
(kairos client run) as separate processes on loopback. The merchants hold the CDNOW
customers split 40/25/15/12/8% by a hash of the customer id; each trains with DP-SGD
until its budget of ε = 1 at δ = 1e-6 (the cdnow-demo policy) is spent. The published
model is then scored at the reference test cutoff 1998-03-01 against each merchant's
local-only DP model (same plan, same budget), a centralised non-private model and
BG/NBD, and the aggregator's audit log is verified (kairos compliance audit verify).

The CDNOW file is looked up in --data, $KAIROS_DATA, ../shared/data and shared/data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			path, err := findCDNOW(data, exe)
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			progress := cmd.ErrOrStderr()
			rep, err := runDemo(cmd.Context(), demoOptions{exe: exe, data: path, workDir: work, keep: keep, timeout: timeout, progress: progress})
			if err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			if asJSON {
				err = printJSON(cmd.OutOrStdout(), rep)
			} else {
				err = writeDemoTable(cmd.OutOrStdout(), rep)
			}
			if err == nil && !rep.AuditVerified {
				err = errors.New("demo: the audit log did not verify")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of the table")
	f.StringVar(&data, "data", "", "CDNOW_master.txt (default: search, see above)")
	f.StringVar(&work, "work-dir", "", "directory for the run (default: a new temporary directory)")
	f.BoolVar(&keep, "keep", false, "keep the run's directory (logs, databases, states)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}

// findCDNOW locates CDNOW_master.txt (findSharedData).
func findCDNOW(flag, exe string) (string, error) {
	return findSharedData(flag, exe, "cdnow/CDNOW_master.txt")
}

// demoRoundsConfig is the aggregator's round configuration for the demo: the
// plan tuned in client/train/sim, every merchant in every round.
func demoRoundsConfig(n int) aggregator.RoundConfig {
	fo := sim.DefaultFedOptions()
	train, test := sim.ReferenceCutoffs()
	return aggregator.RoundConfig{
		Deadline: 2 * time.Minute, Quorum: n, SampleFraction: 1,
		StepsPerRound: fo.Steps, PlannedRounds: fo.Rounds, SamplingRate: fo.SamplingRate,
		LearningRate: fo.LearningRate, L2: fo.L2, CountNoise: fo.CountNoise, Cutoffs: train,
		Server: fo.Server, ServerLR: fo.ServerLR, ServerTau: fo.Tau, NormBound: fo.Merge.NormBound,
		Seed: 1, TickInterval: 50 * time.Millisecond,
		Evaluation: &aggregator.EvaluationConfig{Cutoff: test, Sigma: demoEvalSigma},
	}
}

// demoEvalSigma is the noise per histogram cell of the demo's final federated
// evaluation (see model/fedeval for the error it gives on CDNOW).
const demoEvalSigma = 10

// runDemo runs the whole demo; see newDemoCmd.
func runDemo(ctx context.Context, o demoOptions) (rep demoReport, err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	say := func(format string, args ...any) {
		fmt.Fprintf(o.progress, "[%5.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	timings := map[string]string{}
	mark := func(name string, since time.Time) {
		timings[name] = time.Since(since).Round(10 * time.Millisecond).String()
	}

	dir := o.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "kairos-demo-"); err != nil {
			return rep, err
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return rep, err
	}
	if o.keep || o.workDir != "" {
		rep.WorkDir = dir
	}
	defer func() {
		switch {
		case err != nil:
			err = fmt.Errorf("%w\n(logs, databases and states kept in %s)", err, dir)
		case rep.WorkDir == "":
			_ = os.RemoveAll(dir)
		}
	}()

	// Baselines run in this process while the federation runs in the others.
	base := startDemoBaselines(ctx, o.data)

	aggDir := filepath.Join(dir, "aggregator")
	demoPolicy := filepath.Join(dir, "cdnow-demo.yaml")
	if err := os.WriteFile(demoPolicy, []byte(exampleAggPolicy), 0o644); err != nil {
		return rep, err
	}
	if out, err := exec.CommandContext(ctx, o.exe, "aggregator", "init", "--dir", aggDir, "--listen", "127.0.0.1:0", "--policy", demoPolicy).CombinedOutput(); err != nil {
		return rep, fmt.Errorf("aggregator init: %w: %s", err, bytes.TrimSpace(out))
	}
	adminTok, err := os.ReadFile(filepath.Join(aggDir, config.TokenFile))
	if err != nil {
		return rep, err
	}
	rounds := demoRoundsConfig(len(demoShares))

	// Enrolment first, with the round loop idle, so that the first round samples
	// every merchant; then the federation proper.
	enrol := rounds
	enrol.TickInterval = time.Hour
	if err := setDemoRounds(filepath.Join(aggDir, config.File), enrol); err != nil {
		return rep, err
	}
	agg, _, admin, err := startDemoAggregator(ctx, o.exe, dir, aggDir, string(adminTok), "aggregator-enrol.log")
	if err != nil {
		return rep, err
	}
	defer agg.halt()
	tokens := make([]string, len(demoShares))
	rep.Merchants = make([]demoMerchant, len(demoShares))
	for i := range demoShares {
		m := &rep.Merchants[i]
		m.ID = fmt.Sprintf("cdnow-%d", i+1)
		m.Share = demoShares[i] / 100
		if tokens[i], err = enrolDemoMerchant(ctx, admin, dir, m.ID); err != nil {
			return rep, err
		}
	}
	if err := agg.stop(); err != nil {
		return rep, fmt.Errorf("stop aggregator after enrolment: %w\n%s", err, tailFile(agg.log, 10))
	}
	say("enrolled %d merchants", len(demoShares))
	if err := setDemoRounds(filepath.Join(aggDir, config.File), rounds); err != nil {
		return rep, err
	}
	fedStart := time.Now()
	var url string
	agg, url, admin, err = startDemoAggregator(ctx, o.exe, dir, aggDir, string(adminTok), "aggregator.log")
	if err != nil {
		return rep, err
	}
	defer agg.halt()
	say("aggregator serving at %s (SQLite in %s)", url, filepath.Join(aggDir, config.DBFile))
	for i := range rep.Merchants {
		m := &rep.Merchants[i]
		cfgPath, err := writeDemoClientConfig(dir, url, o.data, m.ID, i)
		if err != nil {
			return rep, err
		}
		p, err := startDemoProcess(filepath.Join(dir, m.ID+".log"), o.exe, "client", "run", "--config", cfgPath, "--log-json")
		if err != nil {
			return rep, err
		}
		m.Client = *p
		defer p.halt()
	}
	firstToken := tokens[0]
	say("started %d merchant clients", len(demoShares))

	// The plan (noise calibrated by the aggregator) drives the local-only models.
	mc, err := apiclient.New(url, firstToken)
	if err != nil {
		return rep, err
	}
	round, err := mc.CurrentRound(ctx)
	if err != nil {
		return rep, fmt.Errorf("fetch the round plan: %w", err)
	}
	rep.NoiseMultiplier, rep.Delta = round.Plan.NoiseMultiplier, round.Plan.Delta
	base.startLocalOnly(ctx, round.Plan, rounds)

	// Wait for every client to finish its budget, reporting published rounds.
	published := 0
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
	for i := range rep.Merchants {
		m := &rep.Merchants[i]
	wait:
		for {
			select {
			case err := <-m.Client.done:
				m.Client.done <- err
				if err != nil {
					return rep, fmt.Errorf("client %s: %w\n%s", m.ID, err, tailFile(m.Client.log, 15))
				}
				break wait
			case err := <-agg.done:
				agg.done <- err
				return rep, fmt.Errorf("aggregator exited (%s)\n%s", exitText(err), tailFile(agg.log, 15))
			case <-ticker.C:
				if n := countPublished(ctx, admin); n > published {
					published = n
					say("round %d/%d published", n, rounds.PlannedRounds)
				}
			case <-ctx.Done():
				return rep, fmt.Errorf("waiting for client %s: %w", m.ID, ctx.Err())
			}
		}
	}
	// Every client has stopped at its budget, the last round it joined being
	// the evaluation of the final model, which publishes at the next tick.
	for i := range rep.Merchants {
		m := &rep.Merchants[i]
		st, err := client.ReadState(filepath.Join(dir, m.ID, "state"))
		if err != nil {
			return rep, err
		}
		m.Rounds = st.Accepted()
	}
	var mv protocol.ModelVersion
	for {
		if mv, err = admin.Model(ctx, 0); err == nil && len(mv.Metrics) > 0 {
			break
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return rep, fmt.Errorf("waiting for the federated evaluation of the final model: %w", err)
		}
	}
	rep.Rounds = countPublished(ctx, admin)
	rep.DPEvaluation = mv.Metrics
	mark("federation", fedStart)
	say("federation done: %d training rounds and the final evaluation in %s", rep.Rounds, timings["federation"])
	fedModel, err := hazard.Unmarshal(mv.Model, mv.SchemaHash)
	if err != nil {
		return rep, fmt.Errorf("published model %d: %w", mv.Version, err)
	}
	budgets, err := admin.Budgets(ctx)
	if err != nil {
		return rep, fmt.Errorf("fetch budgets: %w", err)
	}
	for i := range rep.Merchants {
		m := &rep.Merchants[i]
		for _, b := range budgets {
			if b.Merchant == m.ID {
				m.Epsilon, m.EpsilonCap, m.Releases = b.Epsilon, b.Cap, b.Releases
			}
		}
	}
	// Stop the aggregator cleanly (flushes the audit log), then verify the log.
	if err := agg.stop(); err != nil {
		return rep, fmt.Errorf("stop aggregator: %w\n%s", err, tailFile(agg.log, 10))
	}
	verifyStart := time.Now()
	out, verr := exec.CommandContext(ctx, o.exe, "compliance", "audit", "verify",
		"--db", filepath.Join(aggDir, config.DBFile), "--keys", filepath.Join(aggDir, config.KeysDir)).CombinedOutput()
	mark("audit_verify", verifyStart)
	rep.AuditVerified = verr == nil
	if n, ok := parseAuditEntries(string(out)); ok {
		rep.AuditEntries = n
	}
	if verr != nil {
		say("audit verification FAILED: %s", bytes.TrimSpace(out))
	} else {
		say("audit log verified: %s", firstLine(string(out)))
	}

	say("waiting for the comparison models")
	b, err := base.wait(ctx)
	if err != nil {
		return rep, err
	}
	for k, v := range b.timings {
		timings[k] = v
	}
	fed, err := b.data.Evaluate(fedModel, -1)
	if err != nil {
		return rep, err
	}
	rep.TestCustomers = len(b.data.Test)
	counts, err := fedeval.Histogram(fedModel, b.data.Test, fedeval.DefaultEdges())
	if err != nil {
		return rep, err
	}
	binned, err := fedeval.Compute(counts)
	if err != nil {
		return rep, err
	}
	rep.BinnedAUC30 = binned.AUC30
	rep.AUC30 = demoMetric{Federated: fed.AUC30, Centralized: b.central.AUC30, BGNBD: b.bgnbd.AUC30}
	rep.AUC7 = demoMetric{Federated: fed.AUC7, Centralized: b.central.AUC7, BGNBD: b.bgnbd.AUC7}
	rep.PRAUC30 = demoMetric{Federated: fed.PRAUC30, Centralized: b.central.PRAUC30, BGNBD: b.bgnbd.PRAUC30}
	for i := range rep.Merchants {
		m := &rep.Merchants[i]
		m.Customers = b.customers[i]
		m.LocalOnly, m.LocalOnlyEpsilon, m.OwnLocalOnly = b.local[i], b.localEps[i], b.localOwn[i]
		if m.OwnFederated, err = b.data.Evaluate(fedModel, i); err != nil {
			return rep, err
		}
		n := float64(len(rep.Merchants))
		rep.AUC30.LocalOnlyMean += m.LocalOnly.AUC30 / n
		rep.AUC7.LocalOnlyMean += m.LocalOnly.AUC7 / n
		rep.PRAUC30.LocalOnlyMean += m.LocalOnly.PRAUC30 / n
		rep.AUC30.LocalOnlyMax = max(rep.AUC30.LocalOnlyMax, m.LocalOnly.AUC30)
		rep.AUC7.LocalOnlyMax = max(rep.AUC7.LocalOnlyMax, m.LocalOnly.AUC7)
		rep.PRAUC30.LocalOnlyMax = max(rep.PRAUC30.LocalOnlyMax, m.LocalOnly.PRAUC30)
	}
	rep.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	rep.Timings = timings
	return rep, nil
}

// setDemoRounds rewrites the rounds section of an aggregator config file.
func setDemoRounds(path string, r aggregator.RoundConfig) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	cfg.Rounds = r
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return fmt.Errorf("write demo config: %w", err)
	}
	if _, err := config.Parse(path, buf.Bytes()); err != nil {
		return fmt.Errorf("write demo config: %w", err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// enrolDemoMerchant creates merchant id's keys in DIR/id/keys, enrols it and
// writes its token to DIR/id/token.
func enrolDemoMerchant(ctx context.Context, admin *apiclient.Client, dir, id string) (string, error) {
	mdir := filepath.Join(dir, id)
	k, err := keys.GenerateMerchant(rand.Reader, id)
	if err != nil {
		return "", err
	}
	if err := keys.WriteMerchant(filepath.Join(mdir, "keys"), k, nil); err != nil {
		return "", err
	}
	e, err := admin.Enrol(ctx, protocol.EnrolRequest{ID: id, TimeZone: "UTC", PublicKey: k.Public().Signing})
	if err != nil {
		return "", fmt.Errorf("enrol %s: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(mdir, "token"), []byte(e.Token+"\n"), 0o600); err != nil {
		return "", err
	}
	return e.Token, nil
}

// writeDemoClientConfig writes merchant id's client config (shard index of
// the demo split) and returns its path.
func writeDemoClientConfig(dir, url, data, id string, index int) (string, error) {
	of := make([]string, len(demoShares))
	for i, s := range demoShares {
		of[i] = strconv.FormatFloat(s, 'f', -1, 64)
	}
	cfg := fmt.Sprintf(`# Merchant %s of the Kairos demo.
aggregator: %s
keys_dir: keys
token_file: token
time_zone: UTC
epsilon_cap: 1
state_dir: state
poll_interval: 100ms
data:
  format: cdnow
  path: %s
  shard: {of: [%s], index: %d, key: %s}
`, id, url, data, strings.Join(of, ", "), index, client.ShardKeyCustomerHash)
	path := filepath.Join(dir, id, "client.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", err
	}
	if _, err := client.LoadConfig(path); err != nil {
		return "", err
	}
	return path, nil
}

// startDemoAggregator starts `kairos aggregator serve` and waits until it is ready.
func startDemoAggregator(ctx context.Context, exe, dir, aggDir, adminToken, logName string) (*demoProcess, string, *apiclient.Client, error) {
	addrFile := filepath.Join(dir, "aggregator.url")
	_ = os.Remove(addrFile)
	p, err := startDemoProcess(filepath.Join(dir, logName), exe, "aggregator", "serve", "--dir", aggDir, "--addr-file", addrFile, "--log-json")
	if err != nil {
		return nil, "", nil, err
	}
	url, err := waitAddrFile(ctx, addrFile, p)
	if err != nil {
		p.halt()
		return nil, "", nil, err
	}
	admin, err := apiclient.New(url, strings.TrimSpace(adminToken))
	if err != nil {
		p.halt()
		return nil, "", nil, err
	}
	if err := waitReady(ctx, admin, p); err != nil {
		p.halt()
		return nil, "", nil, err
	}
	return p, url, admin, nil
}

// startDemoProcess starts exe with args, its stdout and stderr in logPath. The
// child is killed if this process dies.
func startDemoProcess(logPath, exe string, args ...string) (*demoProcess, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", strings.Join(args[:min(2, len(args))], " "), err)
	}
	p := &demoProcess{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.done <- err
	}()
	return p, nil
}

// halt is stop for deferred clean-up, where the exit status no longer matters.
func (p *demoProcess) halt() { _ = p.stop() }

// exitText describes how a process ended.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// stop sends SIGTERM and waits up to 30 s, then kills. It returns the exit
// error of a process that had already failed.
func (p *demoProcess) stop() error {
	if p == nil || p.cmd == nil {
		return nil
	}
	select {
	case err := <-p.done:
		p.done <- err
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("did not stop within 30 s: %w", err)
	}
}

// waitAddrFile waits for the aggregator to write its URL.
func waitAddrFile(ctx context.Context, path string, p *demoProcess) (string, error) {
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			return "", fmt.Errorf("aggregator exited before listening (%s)\n%s", exitText(err), tailFile(p.log, 15))
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the aggregator to listen: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func waitReady(ctx context.Context, c *apiclient.Client, p *demoProcess) error {
	for {
		err := c.Ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("aggregator exited (%s)\n%s", exitText(err), tailFile(p.log, 15))
		case <-ctx.Done():
			return fmt.Errorf("waiting for the aggregator to be ready: %w (last: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// countPublished counts the model versions published by rounds.
func countPublished(ctx context.Context, c *apiclient.Client) int {
	ms, err := c.Models(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range ms {
		if m.Round != "" {
			n++
		}
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// tailFile returns the last n lines of a log file, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + path + " ---\n" + strings.Join(lines, "\n")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// parseAuditEntries reads "OK: N entries" from kairos compliance audit verify.
func parseAuditEntries(out string) (int, bool) {
	var n int
	if _, err := fmt.Sscanf(firstLine(out), "OK: %d entries", &n); err != nil {
		return 0, false
	}
	return n, true
}

// demoBaselines computes the comparison models in this process.
type demoBaselines struct {
	mu        sync.Mutex
	ready     chan struct{} // closed when data, central and bgnbd are done (or err)
	localDone chan struct{}
	err       error
	data      *sim.Data
	customers []int
	central   sim.Scores
	bgnbd     sim.Scores
	local     []sim.Scores
	localEps  []float64
	localOwn  []sim.Scores
	timings   map[string]string
}

func startDemoBaselines(ctx context.Context, path string) *demoBaselines {
	b := &demoBaselines{ready: make(chan struct{}), localDone: make(chan struct{}), timings: map[string]string{}}
	go func() {
		defer close(b.ready)
		t := time.Now()
		events, err := sim.LoadCDNOW(ctx, path)
		if err != nil {
			b.fail(err)
			return
		}
		d, err := sim.Prepare(events, sim.DataOptions{})
		if err != nil {
			b.fail(err)
			return
		}
		b.data = d
		b.customers = demoCustomers(events)
		b.timing("prepare", t)
		t = time.Now()
		if _, b.central, err = d.Centralized(ctx, 1); err != nil {
			b.fail(err)
			return
		}
		b.timing("centralized", t)
		t = time.Now()
		if b.bgnbd, err = demoBGNBD(ctx, events); err != nil {
			b.fail(err)
			return
		}
		b.timing("bgnbd", t)
	}()
	return b
}

func (b *demoBaselines) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = fmt.Errorf("comparison models: %w", err)
	}
}

func (b *demoBaselines) timing(name string, since time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timings[name] = time.Since(since).Round(10 * time.Millisecond).String()
}

// startLocalOnly trains each merchant's local-only DP model under the
// federation's plan and budget once the data is ready.
func (b *demoBaselines) startLocalOnly(ctx context.Context, plan protocol.TrainingPlan, r aggregator.RoundConfig) {
	go func() {
		defer close(b.localDone)
		select {
		case <-b.ready:
		case <-ctx.Done():
			return
		}
		if b.data == nil {
			return
		}
		t := time.Now()
		fo := sim.DefaultFedOptions()
		fo.Rounds, fo.Steps, fo.SamplingRate = r.PlannedRounds, plan.Steps, plan.SamplingRate
		fo.ClipNorm, fo.LearningRate, fo.L2 = plan.ClipNorm, plan.LearningRate, plan.L2
		fo.NoiseMultiplier, fo.Delta, fo.CountNoise = plan.NoiseMultiplier, plan.Delta, plan.CountNoise
		fo.Server, fo.ServerLR, fo.Tau = r.Server, r.ServerLR, r.ServerTau
		fo.Anneal, fo.Average = false, 0 // the aggregator has neither
		local := make([]sim.Scores, len(b.data.Train))
		eps := make([]float64, len(b.data.Train))
		own := make([]sim.Scores, len(b.data.Train))
		for m := range b.data.Train {
			o := fo
			o.Merchants = []int{m}
			o.Seed = uint64(m + 1)
			res, err := b.data.Federate(ctx, o)
			if err != nil {
				b.fail(fmt.Errorf("local-only merchant %d: %w", m+1, err))
				return
			}
			local[m], eps[m] = res.Pooled, res.Epsilon[0]
			if own[m], err = b.data.Evaluate(res.Model, m); err != nil {
				b.fail(fmt.Errorf("local-only merchant %d: %w", m+1, err))
				return
			}
		}
		b.mu.Lock()
		b.local, b.localEps, b.localOwn = local, eps, own
		b.mu.Unlock()
		b.timing("local_only", t)
	}()
}

func (b *demoBaselines) wait(ctx context.Context) (*demoBaselines, error) {
	for _, ch := range []chan struct{}{b.ready, b.localDone} {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("comparison models: %w", ctx.Err())
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	if b.local == nil {
		return nil, errors.New("comparison models: local-only models missing")
	}
	return b, nil
}

// demoCustomers counts each merchant's customers (every customer in the file).
func demoCustomers(events []model.Event) []int {
	shares := make([]float64, len(demoShares))
	for i, s := range demoShares {
		shares[i] = s / 100
	}
	seen := map[string]bool{}
	out := make([]int, len(shares))
	for _, e := range events {
		if !seen[e.Customer] {
			seen[e.Customer] = true
			out[sim.Merchant(e.Customer, shares)]++
		}
	}
	return out
}

// demoBGNBD scores BG/NBD (fitted on the history before the test cutoff, all
// customers pooled) at the reference test cutoff.
func demoBGNBD(ctx context.Context, events []model.Event) (sim.Scores, error) {
	train, test := sim.ReferenceCutoffs()
	r, err := evaluate.Run(ctx, events, evaluate.Config{
		Dataset: "cdnow", TestCutoff: test, TrainCutoffs: train, Seed: 1, Methods: []string{evaluate.MethodBGNBD},
	})
	if err != nil {
		return sim.Scores{}, fmt.Errorf("bg/nbd: %w", err)
	}
	for _, m := range r.Methods {
		if m.Name == evaluate.MethodBGNBD {
			return sim.Scores{AUC30: m.AUC[30], AUC7: m.AUC[7], PRAUC30: m.PRAUC[30]}, nil
		}
	}
	return sim.Scores{}, errors.New("bg/nbd: no report")
}

// writeDemoTable prints the comparison for people.
func writeDemoTable(w io.Writer, r demoReport) error {
	total := 0
	for _, m := range r.Merchants {
		total += m.Customers
	}
	fmt.Fprintf(w, "Kairos demo: %d merchants federated over CDNOW (%d customers), %d rounds, DP-SGD z = %.2f, δ = %g — %.1f s\n\n",
		len(r.Merchants), total, r.Rounds, r.NoiseMultiplier, r.Delta, r.Seconds)
	fmt.Fprintf(w, "Test cutoff 1998-03-01, %d customers (every merchant's), purchase within 7 and 30 days:\n\n", r.TestCustomers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tAUC@7\tAUC@30\tPR-AUC@30\tε (δ=1e-6)\t")
	maxEps := 0.0
	for _, m := range r.Merchants {
		maxEps = max(maxEps, m.Epsilon)
	}
	fmt.Fprintf(tw, "federated DP (all %d merchants)\t%.4f\t%.4f\t%.4f\t≤ %.5f\t\n", len(r.Merchants), r.AUC7.Federated, r.AUC30.Federated, r.PRAUC30.Federated, maxEps)
	for _, m := range r.Merchants {
		fmt.Fprintf(tw, "local-only DP %s (%.0f%%)\t%.4f\t%.4f\t%.4f\t%.5f\t\n", m.ID, m.Share*100, m.LocalOnly.AUC7, m.LocalOnly.AUC30, m.LocalOnly.PRAUC30, m.LocalOnlyEpsilon)
	}
	fmt.Fprintf(tw, "local-only mean\t%.4f\t%.4f\t%.4f\t\t\n", r.AUC7.LocalOnlyMean, r.AUC30.LocalOnlyMean, r.PRAUC30.LocalOnlyMean)
	fmt.Fprintf(tw, "centralised hazard, non-private\t%.4f\t%.4f\t%.4f\t∞\t\n", r.AUC7.Centralized, r.AUC30.Centralized, r.PRAUC30.Centralized)
	fmt.Fprintf(tw, "BG/NBD, centralised\t%.4f\t%.4f\t%.4f\t∞\t\n", r.AUC7.BGNBD, r.AUC30.BGNBD, r.PRAUC30.BGNBD)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "merchant\tshare\tcustomers\trounds joined\treleases\tε spent\tε cap\town AUC@30 federated\town AUC@30 local-only\t")
	for _, m := range r.Merchants {
		fmt.Fprintf(tw, "%s\t%.0f%%\t%d\t%d\t%d\t%.5f\t%.4g\t%.4f\t%.4f\t\n", m.ID, m.Share*100, m.Customers, m.Rounds, m.Releases, m.Epsilon, m.EpsilonCap, m.OwnFederated.AUC30, m.OwnLocalOnly.AUC30)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if e := r.DPEvaluation; len(e) > 0 {
		fmt.Fprintf(w, "federated DP evaluation of the final model (the merchants' noisy histograms summed, σ %.3g per cell, paid from each budget):\n", e["noise_sigma"])
		fmt.Fprintf(w, "  AUC@7 %.4f ± %.4f, AUC@30 %.4f ± %.4f, PR-AUC@30 %.4f ± %.4f, %.0f customers, %.2f%% bought within 30 days\n",
			e["auc_7"], e["auc_7_se"], e["auc_30"], e["auc_30_se"], e["pr_auc_30"], e["pr_auc_30_se"], e["customers"], 100*e["positive_rate_30"])
		fmt.Fprintf(w, "  (the same %d score bins without noise give AUC@30 %.4f; exact %.4f)\n\n", len(fedeval.DefaultEdges())+1, r.BinnedAUC30, r.AUC30.Federated)
	}
	beats := r.AUC30.Federated > r.AUC30.LocalOnlyMax
	fmt.Fprintf(w, "federated AUC@30 %.4f: %s BG/NBD (%.4f), %s every local-only model (best %.4f)\n",
		r.AUC30.Federated, aboveBelow(r.AUC30.Federated > r.AUC30.BGNBD), r.AUC30.BGNBD, aboveBelow(beats), r.AUC30.LocalOnlyMax)
	if r.AuditVerified {
		fmt.Fprintf(w, "audit log verified: %d entries, hash chain and signed checkpoints intact\n", r.AuditEntries)
	} else {
		fmt.Fprintln(w, "audit log verification FAILED")
	}
	if len(r.Timings) > 0 {
		var parts []string
		for _, k := range []string{"federation", "prepare", "centralized", "bgnbd", "local_only", "audit_verify"} {
			if v, ok := r.Timings[k]; ok {
				parts = append(parts, strings.ReplaceAll(k, "_", " ")+" "+v)
			}
		}
		fmt.Fprintf(w, "timings: %s (the comparison models train in the demo process while the federation runs)\n", strings.Join(parts, ", "))
	}
	if r.WorkDir != "" {
		fmt.Fprintf(w, "run directory kept: %s\n", r.WorkDir)
	}
	return nil
}

func aboveBelow(above bool) string {
	if above {
		return "above"
	}
	return "NOT above"
}
