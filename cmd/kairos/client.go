package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/client/train"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/model/hazard"
)

func newClientCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Run a merchant's side of the federation: train rounds, score customers, show the budget",
		Long: `The merchant client reads the shop's events (files or a PostgreSQL query), replaces
customer ids by keyed pseudonyms as it reads them, and takes part in the aggregator's
rounds with differentially private updates, never passing its own ε cap. Scores are
computed locally, under the shop's own customer ids.

  kairos client run --config shop.yaml            # rounds until the budget is spent
  kairos client run --config shop.yaml --once     # one round
  kairos client score --config shop.yaml --out scores.csv
  kairos client status --config shop.yaml`,
	}
	cmd.AddCommand(newClientRunCmd(), newClientScoreCmd(), newClientStatusCmd())
	cmd.AddCommand(newClientStreamCmd())
	return cmd
}

// clientLogger logs to stderr: text, or JSON lines with --log-json.
func clientLogger(w io.Writer, asJSON bool, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// stderrIsTerminal reports whether progress bars should be drawn.
func stderrIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// clientSetup is what run and score share: config, keys, API client, events.
type clientSetup struct {
	cfg      *client.Config
	merchant *keys.Merchant
	api      *apiclient.Client
	loc      *time.Location
}

// Environment variables of the client commands (12-factor); a file's key
// is overridden by its variable.
const (
	envClientConfig = "KAIROS_CLIENT_CONFIG" // --config, when not given
	envAggregator   = "KAIROS_AGGREGATOR"    // aggregator (the aggregator's base URL)
	envTokenFile    = "KAIROS_TOKEN_FILE"    // token_file
	// envInsecureHTTP ("true") allows http:// to an aggregator that is not
	// on loopback, for every command that sends a token (insecure_http).
	envInsecureHTTP = "KAIROS_INSECURE_HTTP"
)

// insecureHTTPEnv reads $KAIROS_INSECURE_HTTP: true, false or unset.
func insecureHTTPEnv() (bool, error) {
	v := os.Getenv(envInsecureHTTP)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("$%s: %q is not true or false", envInsecureHTTP, v)
	}
	return b, nil
}

func loadClientSetup(stderr io.Writer, path string) (*clientSetup, error) {
	if path == "" {
		path = os.Getenv(envClientConfig)
	}
	if path == "" {
		return nil, errors.New("--config (or $" + envClientConfig + ") is required")
	}
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if v := os.Getenv(envAggregator); v != "" {
		cfg.Aggregator = v
	}
	if v := os.Getenv(envTokenFile); v != "" {
		if cfg.TokenFile, err = filepath.Abs(v); err != nil {
			return nil, fmt.Errorf("$%s: %w", envTokenFile, err)
		}
	}
	pass, mode, err := cfg.Passphrase()
	if err != nil {
		return nil, err
	}
	warnReadableSecret(stderr, cfg.Path(cfg.PassphraseFile), mode)
	m, err := keys.LoadMerchant(cfg.Path(cfg.KeysDir), pass)
	if err != nil {
		return nil, err
	}
	tok, err := cfg.Token()
	if err != nil {
		return nil, err
	}
	opts := []apiclient.Option{apiclient.WithUserAgent("kairos-client/" + m.ID)}
	insecure, err := insecureHTTPEnv()
	if err != nil {
		return nil, err
	}
	if insecure || cfg.InsecureHTTP {
		opts = append(opts, apiclient.WithInsecureHTTP())
	}
	api, err := apiclient.New(cfg.Aggregator, tok, opts...)
	if err != nil {
		return nil, err
	}
	loc, err := cfg.Location()
	if err != nil {
		return nil, err
	}
	return &clientSetup{cfg: cfg, merchant: m, api: api, loc: loc}, nil
}

// loadEvents reads the merchant's events, with a byte progress bar on a terminal.
func (s *clientSetup) loadEvents(ctx context.Context, stderr io.Writer, keepIDs bool) (*client.Dataset, error) {
	opt := client.SourceOptions{Pseudonym: s.merchant.Pseudonym, KeepIDs: keepIDs}
	if stderrIsTerminal(stderr) {
		opt.WrapReader = func(r io.Reader, size int64) io.Reader {
			bar := progressbar.NewOptions64(size,
				progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("reading events"),
				progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish(),
				progressbar.OptionThrottle(100*time.Millisecond))
			return io.TeeReader(r, bar)
		}
	}
	return client.LoadEvents(ctx, s.cfg, opt)
}

func newClientRunCmd() *cobra.Command {
	var (
		config  string
		once    bool
		rounds  int
		logJSON bool
		level   slog.Level
	)
	cmd := &cobra.Command{
		Use:   "run --config FILE [--once] [--rounds N]",
		Short: "Take part in federated rounds until the privacy budget is spent (or N rounds)",
		Long: `Run polls the aggregator for the current round, builds features from the local events
at the round's cutoffs, trains with DP-SGD from the global model, refuses locally if the
local ledger would pass epsilon_cap at the config's delta (default 1e-6) or if the round
is planned at a larger δ than that, seals the update to the aggregator and uploads it
with retries. The sealed update and the local debit are saved in state_dir before the
first attempt, so a restarted client re-sends it instead of training again.

It exits 0 when the rounds asked for are done or a privacy budget (local or the
federation's) is reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if once {
				if rounds != 0 {
					return errors.New("client run: --once and --rounds exclude each other")
				}
				rounds = 1
			}
			if rounds < 0 {
				return fmt.Errorf("client run: --rounds %d < 0", rounds)
			}
			stderr := cmd.ErrOrStderr()
			log := clientLogger(stderr, logJSON, level)
			s, err := loadClientSetup(stderr, config)
			if err != nil {
				return fmt.Errorf("client run: %w", err)
			}
			store, state, err := client.OpenState(s.cfg.Path(s.cfg.StateDir), s.merchant.ID)
			if err != nil {
				return fmt.Errorf("client run: %w", err)
			}
			defer store.Close()
			ds, err := s.loadEvents(cmd.Context(), stderr, false)
			if err != nil {
				return fmt.Errorf("client run: %w", err)
			}
			log.Info("events loaded", "merchant", s.merchant.ID, "events", len(ds.Events), "other_shards", ds.Dropped)
			warnConcentration(ds, func(msg string) { log.Warn(msg) })
			offset := time.Duration(s.cfg.ClockOffset)
			if offset != 0 {
				log.Warn("clock offset in effect", "offset", offset)
			}
			peers, err := s.cfg.PeerKeys()
			if err != nil {
				return fmt.Errorf("client run: %w", err)
			}
			if peers != nil {
				log.Info("secure rounds check neighbours' keys with pinned peer keys", "file", s.cfg.Path(s.cfg.Secure.PeerKeys), "merchants", len(peers))
			}
			opts := client.Options{
				API: s.api, Merchant: s.merchant, Events: ds.Events, Location: s.loc, PeerKeys: peers,
				Store: store, State: state, EpsilonCap: s.cfg.EpsilonCap, Delta: s.cfg.MerchantDelta(), Optimizer: s.cfg.Optimizer,
				Now:          func() time.Time { return time.Now().Add(offset) },
				PollInterval: time.Duration(s.cfg.PollInterval), Logger: log,
				SecureRoundTimeout: time.Duration(s.cfg.Secure.RoundTimeout),
			}
			if stderrIsTerminal(stderr) {
				opts.Progress = roundBar(stderr, rounds)
			}
			if point := os.Getenv("KAIROS_FAULT"); point != "" {
				// Fault injection for the end-to-end tests: die like kill -9 at a crash point.
				log.Warn("fault injection armed", "point", point)
				opts.Hook = func(p string) {
					if p == point {
						_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
						select {}
					}
				}
			}
			r, err := client.NewRunner(opts)
			if err != nil {
				return fmt.Errorf("client run: %w", err)
			}
			n, err := r.Run(cmd.Context(), rounds)
			delta := s.cfg.MerchantDelta()
			eps, _ := state.Epsilon(delta)
			switch {
			case errors.Is(err, client.ErrLocalBudget), errors.Is(err, client.ErrFederationBudget):
				log.Info("privacy budget reached; stopping", "reason", err)
				// Tell the aggregator, so that rounds stop waiting for this merchant.
				stop := protocol.MerchantStop{Reason: "federation privacy budget reached"}
				if errors.Is(err, client.ErrLocalBudget) {
					stop = protocol.MerchantStop{Reason: fmt.Sprintf("local privacy cap reached (ε cap %g at δ %g)", s.cfg.EpsilonCap, s.cfg.MerchantDelta()),
						LocalEpsilonCap: s.cfg.EpsilonCap, LocalDelta: s.cfg.MerchantDelta()}
				}
				if serr := s.api.StopMerchant(context.WithoutCancel(cmd.Context()), stop); serr != nil {
					log.Warn("could not tell the aggregator this merchant stopped; its rounds wait for their deadline", "err", serr)
				}
			case err != nil:
				return fmt.Errorf("client run: %w", err)
			}
			_, werr := fmt.Fprintf(cmd.OutOrStdout(), "%s: joined %d rounds in this run (%d accepted in all); local ε %.5f of cap %.4g at δ %g\n",
				s.merchant.ID, n, state.Accepted(), eps, s.cfg.EpsilonCap, delta)
			return werr
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "client configuration file (YAML)")
	f.BoolVar(&once, "once", false, "join one round and exit")
	f.IntVar(&rounds, "rounds", 0, "join at most N rounds (0: until the budget is spent)")
	f.BoolVar(&logJSON, "log-json", false, "log JSON lines instead of text")
	f.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	return cmd
}

// roundBar draws the rounds joined (a spinner when the count is open-ended)
// with the current stage as its description.
func roundBar(w io.Writer, rounds int) func(client.Progress) {
	max := int64(rounds)
	if max == 0 {
		max = -1
	}
	bar := progressbar.NewOptions64(max, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("waiting for a round"),
		progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(), progressbar.OptionSpinnerType(14),
		progressbar.OptionThrottle(100*time.Millisecond))
	return func(p client.Progress) {
		desc := map[string]string{
			client.StageWait: "waiting for a round", client.StageFeatures: "building features",
			client.StageTrain: "training (DP-SGD)", client.StageUpload: "uploading", client.StageDone: "done",
		}[p.Stage]
		if p.Round != "" {
			desc += " · round " + p.Round
		}
		bar.Describe(desc)
		_ = bar.Set(p.Joined)
		if p.Stage == client.StageDone {
			_ = bar.Finish()
		}
	}
}

func newClientScoreCmd() *cobra.Command {
	var (
		config, out, cutoff, modelFile string
		version                        int
		personalize                    bool
	)
	cmd := &cobra.Command{
		Use:   "score --config FILE --out scores.csv [--cutoff YYYY-MM-DD] [--model-version N]",
		Short: "Write every customer's purchase-timing scores, under the shop's own ids",
		Long: `Score fetches a published model (the active one by default) and writes, for every
customer with an event before the cutoff: P(purchase within 1, 3, 7, 14 and 30 days),
the expected days to the next purchase (counting no purchase within 30 days as 30) and
the most likely purchase date in the merchant's time zone. Pseudonyms are mapped back
to the shop's customer ids locally; nothing is sent anywhere.

The cutoff defaults to the local midnight after the last event.

By default the shop scores with a personalised model, fitted on the shop's own
customers at four earlier cutoffs whose 30-day windows end before the scoring cutoff,
without DP because it never leaves the shop: the shop's own model, unless the
recalibrated global model or a blend of the two ranks its customers significantly
better by cross-fitting (by more than one standard error of DeLong's paired
difference); the global model
when the shop has no buyer there. --personalize=false scores with the global model
as published. The personalised model's predicted day is weighed by each customer's own
rhythm where the shop's own buyers at those cutoffs show it pays (a renewal shop: yes).
The output says which model scored.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := loadClientSetup(cmd.ErrOrStderr(), config)
			if err != nil {
				return fmt.Errorf("client score: %w", err)
			}
			var m *hazard.Model
			source := "model file " + modelFile
			if modelFile != "" {
				b, err := os.ReadFile(modelFile)
				if err != nil {
					return fmt.Errorf("client score: %w", err)
				}
				if m, err = hazard.Unmarshal(b, ""); err != nil {
					return fmt.Errorf("client score: %s: %w", modelFile, err)
				}
			} else {
				mv, err := s.api.Model(cmd.Context(), version)
				if err != nil {
					return fmt.Errorf("client score: %w", err)
				}
				if m, err = hazard.Unmarshal(mv.Model, mv.SchemaHash); err != nil {
					return fmt.Errorf("client score: model version %d: %w", mv.Version, err)
				}
				source = fmt.Sprintf("model version %d", mv.Version)
			}
			var at time.Time
			if cutoff != "" {
				if at, err = time.ParseInLocation(time.DateOnly, cutoff, s.loc); err != nil {
					return fmt.Errorf("client score: --cutoff: %w", err)
				}
				at = at.UTC()
			}
			ds, err := s.loadEvents(cmd.Context(), cmd.ErrOrStderr(), true)
			if err != nil {
				return fmt.Errorf("client score: %w", err)
			}
			warnConcentration(ds, func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), "warning:", msg) })
			if at.IsZero() {
				if at, err = client.DefaultCutoff(ds.Events, s.loc); err != nil {
					return fmt.Errorf("client score: %w", err)
				}
			}
			scoredBy := "global model"
			if personalize {
				p, err := client.Personalize(cmd.Context(), ds.Events, m, at, s.loc, train.PersonalizeOptions{})
				if err != nil {
					return fmt.Errorf("client score: %w", err)
				}
				m, scoredBy = p.Model, p.Describe()
			}
			n, err := writeScores(cmd.Context(), out, ds, client.ScoreOptions{Model: m, Cutoff: at, Location: s.loc, IDs: ds.IDs})
			if err != nil {
				return fmt.Errorf("client score: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %d customers to %s (%s, cutoff %s; scored by the %s)\n",
				n, out, source, at.In(s.loc).Format(time.DateOnly), scoredBy)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "client configuration file (YAML)")
	f.StringVar(&out, "out", "", "output CSV file")
	f.StringVar(&cutoff, "cutoff", "", "score as of this local date (default: the day after the last event)")
	f.IntVar(&version, "model-version", 0, "model version to fetch (0: the active one)")
	f.StringVar(&modelFile, "model-file", "", "score with this model file instead of fetching one")
	f.BoolVar(&personalize, "personalize", true, "fine-tune the global model on the shop's own customers before scoring (false: the global model)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// warnConcentration hands warn what the dataset's spread of purchases says
// is likely a mapping mistake (a guest placeholder as one customer, or no
// customer buying twice); a run or a score goes on either way.
func warnConcentration(ds *client.Dataset, warn func(string)) {
	c, err := ds.Concentration()
	if err != nil {
		warn(err.Error())
		return
	}
	for _, msg := range []string{c.Warning(), c.NoRepeatHint()} {
		if msg != "" {
			warn(msg)
		}
	}
}

// writeScores writes the scores to a temporary file renamed to path when done.
func writeScores(ctx context.Context, path string, ds *client.Dataset, opt client.ScoreOptions) (n int, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if n, err = client.Score(ctx, ds.Events, opt, tmp); err != nil {
		return 0, err
	}
	if err = tmp.Close(); err != nil {
		return 0, err
	}
	return n, os.Rename(tmp.Name(), path)
}

func newClientStatusCmd() *cobra.Command {
	var (
		config string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status --config FILE [--json]",
		Short: "Show the rounds joined and the ε spent against the local and federation caps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := client.LoadConfig(config)
			if err != nil {
				return fmt.Errorf("client status: %w", err)
			}
			st, err := client.ReadState(cfg.Path(cfg.StateDir))
			if errors.Is(err, fs.ErrNotExist) {
				st = &client.State{}
			} else if err != nil {
				return fmt.Errorf("client status: %w", err)
			}
			rep, err := clientStatus(cfg, st)
			if err != nil {
				return fmt.Errorf("client status: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			return writeClientStatus(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "client configuration file (YAML)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// clientStatusReport is what `kairos client status` shows.
type clientStatusReport struct {
	Merchant          string               `json:"merchant"`
	RoundsJoined      int                  `json:"rounds_joined"`
	RoundsAccepted    int                  `json:"rounds_accepted"`
	Pending           string               `json:"pending_round,omitempty"`
	Delta             float64              `json:"delta"`
	LocalEpsilon      float64              `json:"local_epsilon"`
	LocalCap          float64              `json:"local_epsilon_cap"`
	FederationEpsilon *float64             `json:"federation_epsilon,omitempty"`
	FederationCap     *float64             `json:"federation_epsilon_cap,omitempty"`
	Rounds            []client.RoundRecord `json:"rounds"`
}

func clientStatus(cfg *client.Config, st *client.State) (clientStatusReport, error) {
	d := cfg.MerchantDelta()
	eps, err := st.Epsilon(d)
	if err != nil {
		return clientStatusReport{}, err
	}
	rep := clientStatusReport{
		Merchant: st.Merchant, RoundsJoined: st.RoundsJoined(), RoundsAccepted: st.Accepted(),
		Delta: d, LocalEpsilon: eps, LocalCap: cfg.EpsilonCap, Rounds: st.Rounds,
	}
	if st.Pending != nil {
		rep.Pending = st.Pending.Round
	}
	if rc, ok := st.LastReceipt(); ok {
		rep.FederationEpsilon, rep.FederationCap = &rc.Epsilon, &rc.EpsilonCap
	}
	return rep, nil
}

func writeClientStatus(w io.Writer, r clientStatusReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "merchant\t%s\n", orDefault(r.Merchant, "(no rounds yet)"))
	fmt.Fprintf(tw, "rounds joined\t%d (%d accepted)\n", r.RoundsJoined, r.RoundsAccepted)
	if r.Pending != "" {
		fmt.Fprintf(tw, "pending upload\tround %s\n", r.Pending)
	}
	fmt.Fprintf(tw, "local ε\t%.5f of cap %.4g at δ %g\n", r.LocalEpsilon, r.LocalCap, r.Delta)
	if r.FederationEpsilon != nil {
		fmt.Fprintf(tw, "federation ε\t%.5f of cap %.4g (last receipt)\n", *r.FederationEpsilon, *r.FederationCap)
	}
	return tw.Flush()
}
