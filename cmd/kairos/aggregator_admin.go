package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client/train/sim"
	"github.com/kairos-fl/kairos/policies"
)

// The key files' passphrase from the environment (the config file's keys
// are overridden as aggregator/config's Env* variables say).
const (
	envPassphrase     = "KAIROS_PASSPHRASE"      // the key files' passphrase (prefer KAIROS_PASSPHRASE_FILE)
	envPassphraseFile = "KAIROS_PASSPHRASE_FILE" // a file whose first line is the passphrase
)

// defaultInitCutoffs are the training cutoffs init writes: the CDNOW
// reference protocol's, which every CDNOW shard has data around.
func defaultInitCutoffs() []time.Time {
	train, _ := sim.ReferenceCutoffs()
	return train
}

// parseDates parses comma-separated YYYY-MM-DD dates, increasing.
func parseDates(v string) ([]time.Time, error) {
	var out []time.Time
	for f := range strings.SplitSeq(v, ",") {
		d, err := parseDate(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		if len(out) > 0 && !d.After(out[len(out)-1]) {
			return nil, fmt.Errorf("dates must increase: %s after %s", f, out[len(out)-1].Format(time.DateOnly))
		}
		out = append(out, d)
	}
	return out, nil
}

// reloadOnSIGHUP reloads on every SIGHUP until ctx ends or stop is called.
func reloadOnSIGHUP(ctx context.Context, log *slog.Logger, reload func(context.Context, string) (protocol.Reload, error)) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-ch:
				if _, err := reload(ctx, "operator:sighup"); err != nil {
					log.Error("reload on SIGHUP failed; the previous configuration stays", "err", err)
				}
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}

func newAggReloadCmd() *cobra.Command {
	var cf aggClientFlags
	cmd := &cobra.Command{
		Use:   "reload --dir DIR",
		Short: "Make the running aggregator re-read its config and policy (no restart; audited)",
		Long: `Reload asks the running aggregator (admin token) to re-read kairos.yaml and the
policy file. The policy and the rounds section apply from the next round on; the open
round keeps its plan (kairos aggregator cancel-round ends it now). listen, db, keys,
tls, limits, tokens and audit need a restart. Sending SIGHUP to serve does the same.
The audit log records config.reload with the new policy hash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return fmt.Errorf("aggregator reload: %w", err)
			}
			out, err := c.Reload(cmd.Context())
			if err != nil {
				return fmt.Errorf("aggregator reload: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "policy %s in force (was %s): %d merchants, %d partners\n%s\n",
				out.PolicyHash, out.PreviousPolicyHash, out.Merchants, out.Partners, out.Note)
			return err
		},
	}
	cf.register(cmd)
	return cmd
}

func newAggCancelRoundCmd() *cobra.Command {
	var (
		cf            aggClientFlags
		round, reason string
	)
	cmd := &cobra.Command{
		Use:   "cancel-round --dir DIR [--round ID] [--reason TEXT]",
		Short: "Fail the open round now and open the next with the configuration in force (audited)",
		Long: `Cancel-round fails the open round (or --round) and opens the next one at once,
with the configuration and policy in force. Updates already accepted in the cancelled
round stay debited from their merchants' budgets and are not merged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return fmt.Errorf("aggregator cancel-round: %w", err)
			}
			if _, err := c.CancelRound(cmd.Context(), round, reason); err != nil {
				return fmt.Errorf("aggregator cancel-round: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "cancelled round %s; the next round is open\n", orDefault(round, "(latest)"))
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&round, "round", "", "round id such as round-000007 (default: the latest round)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

// errNoModels is rollback's answer when the registry holds nothing to roll
// back to.
var errNoModels = errors.New("no model version to roll back to")

// starterAggPolicy is policies/examples/starter.yaml (a test keeps the two
// equal), written by init when no --policy is given.
const starterAggPolicy = `# A new federation, as ` + "`kairos aggregator init`" + ` writes it. Merchants are
# added by ` + "`kairos aggregator enrol --add-to-policy`" + ` (or by editing this file
# and running ` + "`kairos aggregator reload`" + `); the aggregator reloads it without
# a restart and records its hash in the audit log.
version: 1
federation: my-federation

defaults:
  epsilon_cap: 1.0        # lifetime ε of each merchant at δ below
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100   # δ must stay below 1/100
  allowed_features: [all]
  retention_days: 365

aggregation:
  merge: fedavg

regions:
  eu:
    retention_days: 365
  us: {}

merchants: {}
`

// enrolAddToPolicy adds e to the policy file of the config (kept if it is
// already there with the same region) and has the running server reload it.
func enrolAddToPolicy(cmd *cobra.Command, cf *aggClientFlags, c *apiclient.Client, e policies.MerchantEntry) error {
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	path := cfg.Path(cfg.Policy)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("add to policy: %w", err)
	}
	next, err := policies.AddMerchant(path, data, e)
	if err != nil {
		return err
	}
	if string(next) != string(data) {
		if err := replaceFile(path, next); err != nil {
			return fmt.Errorf("add to policy: %w", err)
		}
	}
	out, err := c.Reload(cmd.Context())
	if err != nil {
		return fmt.Errorf("add to policy: %s written, but the server did not reload it: %w", path, err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "policy %s: %s added; in force as %s\n", path, e.ID, out.PolicyHash)
	return nil
}

// replaceFile writes data to path through a temporary file in the same
// directory and a rename, keeping path's permissions.
func replaceFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func newAggWaitCmd() *cobra.Command {
	var (
		af      aggFlags
		url     string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "wait --dir DIR [--timeout 30s]",
		Short: "Wait until the aggregator answers /readyz (scripts, container health checks)",
		Long: `Wait polls GET /readyz of the aggregator the config names (or --url) until it
answers 200, and fails after --timeout. It needs no token; as a container health check
it is one call with a short timeout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			base := url
			if base == "" {
				cfg, err := af.load()
				if err != nil {
					return fmt.Errorf("aggregator wait: %w", err)
				}
				base = cfg.BaseURL()
			}
			if err := pollReadyz(cmd.Context(), base, timeout); err != nil {
				return fmt.Errorf("aggregator wait: %w", err)
			}
			return nil
		},
	}
	af.register(cmd)
	cmd.Flags().StringVar(&url, "url", "", "server base URL instead of the one derived from the config")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up after this long")
	return cmd
}

// pollReadyz polls base/readyz until it answers 200 or timeout passes.
func pollReadyz(ctx context.Context, base string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s/readyz: %s", base, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", base, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// exampleAggPolicy is policies/examples/cdnow-demo.yaml (a test keeps the two
// equal), written by kairos demo for its federation.
const exampleAggPolicy = `# The CDNOW demo federation: the CDNOW customer base split across five
# merchants, each with a lifetime budget of ε = 1 at δ = 1e-6.
version: 1
federation: cdnow-demo

defaults:
  epsilon_cap: 1.0
  delta: 1e-6
  min_noise_multiplier: 0.5
  clip_norm: 1.0
  min_customers_per_update: 100   # δ must stay below 1/100
  allowed_features: [all]
  retention_days: 365

aggregation:
  merge: fedavg

merchants:
  cdnow-1: {}
  cdnow-2: {}
  cdnow-3: {}
  cdnow-4: {}
  cdnow-5: {}

partners:
  crm-demo:
    merchants: [cdnow-1, cdnow-2, cdnow-3, cdnow-4, cdnow-5]
    rate_per_second: 50
    burst: 100
`
