package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"math"
	mrand "math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/api"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/fedeval"
	"github.com/kairos-fl/kairos/model/hazard"
	"github.com/kairos-fl/kairos/model/metrics"
	"github.com/kairos-fl/kairos/model/synth"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

// fakeClock is the federation's clock: the aggregator, its audit log and the
// clients' envelopes read it; the test moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// The shifted population: until shiftAt each merchant's customers follow
// model/synth's renewal processes (heterogeneous rates, dropout, browsing),
// where a recent purchase announces the next; from shiftAt every customer
// buys exactly every 60 days at its own phase, so a recent purchase means
// none for a month and a month-old one the next within 30 days — the
// relation the deployed model relies on is inverted.
var (
	shiftAt        = time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)
	campaignCuts   = []time.Time{time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	campaignAnchor = time.Date(2025, 7, 15, 0, 0, 0, 0, time.UTC)
	campaignStart  = time.Date(2025, 8, 20, 12, 0, 0, 0, time.UTC)
	campaignLater  = time.Date(2025, 12, 1, 12, 0, 0, 0, time.UTC) // scheduled cutoff 2025-11-01
	// evalEdges bin P(30 d) coarsely, so that the DP noise of the evaluation
	// histograms (σ 10 per cell per merchant) stays small against 2000 customers.
	evalEdges = []float64{0.15, 0.3, 0.5}
)

func shiftedEvents(t *testing.T, seed uint64, merchant string, customers int) []model.Event {
	t.Helper()
	g, err := synth.New(synth.Config{Seed: seed, Start: time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC), Days: 365, Customers: customers,
		Merchants: []synth.Merchant{{Name: merchant, Zone: time.UTC, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	r := mrand.New(mrand.NewPCG(seed, 60))
	var out []model.Event
	for i := range customers {
		c := g.Customer(i)
		for _, e := range c.Events {
			if e.Time.Before(shiftAt) {
				out = append(out, e)
			}
		}
		phase := time.Duration(r.Float64() * 60 * 24 * float64(time.Hour))
		for at := shiftAt.Add(phase); at.Before(campaignLater.Add(60 * 24 * time.Hour)); at = at.Add(60 * 24 * time.Hour) {
			out = append(out, model.Event{Customer: c.ID, Time: at, Kind: model.Purchase, Amount: 30, HasAmount: true})
		}
	}
	slices.SortStableFunc(out, func(a, b model.Event) int { return a.Time.Compare(b.Time) })
	return out
}

// exactAUC is the non-private AUC@30 of m over every merchant's customers at
// cutoff tau: the batch builder's features, the model's P(30 d), the labels.
// With edges, P(30 d) is first replaced by its bin, as a federated evaluation
// sees it.
func exactAUC(t *testing.T, m *hazard.Model, data map[string][]model.Event, tau time.Time, edges []float64) float64 {
	t.Helper()
	var probs []float64
	var labels []bool
	h30 := slices.Index(hazard.Horizons[:], 30)
	for _, evs := range data {
		rows, err := client.BuildRows(evs, []time.Time{tau}, time.UTC, m.Schema)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			p, err := m.Predict(r.X)
			if err != nil {
				t.Fatal(err)
			}
			if edges != nil {
				probs = append(probs, float64(fedeval.Bin(edges, p.Within[h30])))
			} else {
				probs = append(probs, p.Within[h30])
			}
			labels = append(labels, r.Label > 0)
		}
	}
	auc, err := metrics.AUC(probs, labels)
	if err != nil {
		t.Fatal(err)
	}
	return auc
}

// TestDriftTriggeredRetraining demonstrates the retraining loop end to end
// with a fake clock: the real aggregator service over a real store serves
// the real API on loopback; two merchants' clients (client.Runner over
// apiclient, real DP-SGD, sealed and signed updates, local ledgers) take part
// in whatever it opens. Campaign 1 trains two rounds from a prior model and
// evaluates the result (the baseline); then the population shifts; three
// months later the scheduled DP evaluation finds AUC@30 far below the
// baseline; campaign 2 opens at cutoffs moved into the new period, publishes
// two new versions and evaluates the last, which ranks the shifted customers
// far better than the version it replaced. The DP evaluations are checked
// against the exact (binned) AUC of the same model on the same customers,
// within four of their reported standard errors, and the audit log holds the
// decision with its inputs. (The clients hold their whole synthetic log, but
// a plan's cutoffs and label windows end before the clock's now.)
func TestDriftTriggeredRetraining(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	for _, sn := range stores(t) {
		t.Run(sn, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			url := "sqlite:" + filepath.Join(t.TempDir(), "kairos.db")
			if sn == "postgres" {
				url = freshPostgres(t)
			}
			st, err := store.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			clock := &fakeClock{t: campaignStart}
			aggKeys, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
			if err != nil {
				t.Fatal(err)
			}
			alog, err := audit.New(ctx, audit.Options{Store: st, HMACKey: aggKeys.AuditHMAC, SigningKey: aggKeys.Checkpoint, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			defer alog.Close()
			pol, err := policies.Parse("campaign.yaml", []byte(`version: 1
federation: drift
defaults:
  epsilon_cap: 10
  delta: 1e-6
  min_noise_multiplier: 0.3
  clip_norm: 1.0
  min_customers_per_update: 100
  allowed_features: [all]
  retention_days: 730
merchants:
  m1: {}
  m2: {}
retraining:
  evaluate_every: 30d
  auc_drop: 0.02
  campaign_rounds: 2
  planned_evaluations: 2
`))
			if err != nil {
				t.Fatal(err)
			}
			// The prior: a model that reads a recent purchase as a sign of the next.
			schema, err := feature.NewSchema(nil)
			if err != nil {
				t.Fatal(err)
			}
			prior, err := hazard.Initial(schema, 0.01)
			if err != nil {
				t.Fatal(err)
			}
			prior.Params[prior.Horizon+slices.Index(schema.Names, "recency_days")] = -1.5
			svc, err := aggregator.New(ctx, aggregator.Options{
				Store: st.(aggregator.Store), Policy: pol, Keys: aggKeys, Audit: alog, Now: clock.Now, InitialModel: prior,
				Rounds: aggregator.RoundConfig{
					Deadline: 10 * time.Minute, Quorum: 2, PlannedRounds: 4, StepsPerRound: 20, SamplingRate: 0.1,
					Server: aggregator.ServerFedAvg, ServerLR: 1,
					Cutoffs: campaignCuts, Evaluation: &aggregator.EvaluationConfig{Cutoff: campaignAnchor, Sigma: 10, Edges: evalEdges},
				},
			})
			if err != nil {
				t.Fatal(err)
			}

			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tokKey := auth.SigningKey{ID: keys.KeyID(pub), Private: priv}
			iss, err := auth.NewIssuer(auth.IssuerOptions{Key: tokKey})
			if err != nil {
				t.Fatal(err)
			}
			jwks := []auth.PublicKey{{ID: tokKey.ID, Key: pub}}
			ver, err := auth.NewVerifier(auth.VerifierOptions{Keys: jwks, Issuer: auth.DefaultIssuer, Audience: auth.DefaultAudience,
				Revocations: auth.NewMemoryRevocations(nil)})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := api.NewServer(api.Options{Service: svc, Verifier: ver, Issuer: iss, JWKS: jwks})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv)
			defer hs.Close()

			data := map[string][]model.Event{}
			runners := make(chan error, 2)
			rctx, stopRunners := context.WithCancel(ctx)
			defer stopRunners()
			for i, id := range []string{"m1", "m2"} {
				data[id] = shiftedEvents(t, uint64(100+i), id, 1000)
				mk, err := keys.GenerateMerchant(rand.Reader, id)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := svc.Enrol(ctx, "admin:test", aggregator.Merchant{ID: id, TimeZone: "UTC", PublicKey: mk.Signing.Public().(ed25519.PublicKey)}); err != nil {
					t.Fatal(err)
				}
				tok, _, err := iss.Issue(auth.Grant{Subject: id, Role: auth.RoleMerchant, Merchants: []string{id}, TTL: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				ac, err := apiclient.New(hs.URL, tok, apiclient.WithHTTPClient(hs.Client()))
				if err != nil {
					t.Fatal(err)
				}
				ss, state, err := client.OpenState(t.TempDir(), id)
				if err != nil {
					t.Fatal(err)
				}
				defer ss.Close()
				run, err := client.NewRunner(client.Options{API: ac, Merchant: mk, Events: data[id], Location: time.UTC,
					Store: ss, State: state, EpsilonCap: 10, Now: clock.Now, PollInterval: 20 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				go func() { _, err := run.Run(rctx, 0); runners <- err }()
			}

			// until ticks the aggregator until done holds for its campaign state.
			until := func(what string, done func(aggregator.CampaignState) bool) aggregator.CampaignState {
				t.Helper()
				for {
					if err := svc.Tick(ctx); err != nil {
						t.Fatalf("tick: %v", err)
					}
					cs, err := svc.Campaign(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if done(cs) {
						return cs
					}
					select {
					case err := <-runners:
						t.Fatalf("a client stopped while waiting for %s: %v", what, err)
					case <-ctx.Done():
						t.Fatalf("%s: %v (state %+v)", what, ctx.Err(), cs)
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
			start := time.Now()
			first := until("campaign 1", func(cs aggregator.CampaignState) bool { return cs.Campaign == 1 && cs.Phase == aggregator.CampaignIdle })
			t.Logf("campaign 1 done in %v: version %d, baseline AUC@30 %.4f (the lowest with any one merchant left out)", time.Since(start).Round(time.Millisecond), first.BaselineVersion, first.BaselineAUC)
			if first.BaselineVersion != 3 || first.BaselineAt.IsZero() {
				t.Fatalf("campaign 1: %+v, want version 3 evaluated at publication", first)
			}
			v3 := activeModel(t, svc, 3)
			exactBase := exactAUC(t, v3, data, campaignAnchor, evalEdges)
			published, baseSE := auditPublished(t, st, "campaign.complete", 1)
			if math.Abs(published-exactBase) > 4*baseSE {
				t.Errorf("at publication: DP AUC@30 %.4f ± %.4f, exact (binned) %.4f on the same customers", published, baseSE, exactBase)
			}

			// Three months on, the population has shifted.
			clock.Set(campaignLater)
			if sn == "sqlite" {
				// The merchant sees it locally first: its stream's drift watch.
				before, after := shiftedStream(t, data["m1"], v3)
				t.Logf("m1's stream: largest PSI %.3f (%s) on %s, %.3f (%s) on %s", before.MaxPSI, before.Features[0].Name,
					campaignStart.Format(time.DateOnly), after.MaxPSI, after.Features[0].Name, campaignLater.Format(time.DateOnly))
				if !(after.MaxPSI > 0.25 && after.MaxPSI > 2*before.MaxPSI) || after.Outcomes == nil || after.Outcomes.AUC30 == nil {
					t.Errorf("m1's drift watch: largest PSI %.3f before the shift, %.3f after; outcomes %+v: want a shift flagged (> 0.25) and realised outcomes",
						before.MaxPSI, after.MaxPSI, after.Outcomes)
				} else {
					t.Logf("m1's stream: realised AUC@30 of version 3's predictions of %s: %.4f over %d customers",
						campaignStart.Format(time.DateOnly), *after.Outcomes.AUC30, after.Outcomes.Evaluated)
				}
			}
			second := until("campaign 2", func(cs aggregator.CampaignState) bool { return cs.Campaign == 2 && cs.Phase == aggregator.CampaignIdle })
			stopRunners()
			t.Logf("campaign 2 done after %v: version %d, AUC@30 %.4f at publication (%s)", time.Since(start).Round(time.Millisecond), second.BaselineVersion, second.BaselineAUC, second.Reason)
			scheduled := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
			exactDrifted := exactAUC(t, v3, data, scheduled, evalEdges)
			if exactBase-exactDrifted <= 0.02 {
				t.Fatalf("test data: exact AUC@30 of version 3 %.4f at %s and %.4f after the shift: no drop to detect", exactBase, campaignAnchor.Format(time.DateOnly), exactDrifted)
			}

			var decision *audit.Entry
			es, err := st.AuditEntries(ctx, 1, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if e.Action == "campaign.decide" {
					decision = &e
				}
			}
			if decision == nil {
				t.Fatal("no campaign.decide entry in the audit log")
			}
			d := decision.Details
			evaluated, err1 := strconv.ParseFloat(d["evaluated_auc"], 64)
			baseline, err2 := strconv.ParseFloat(d["baseline_auc"], 64)
			if err1 != nil || err2 != nil || d["decision"] != "retrain" || d["model_version"] != "3" || d["evaluated"] != "true" ||
				d["affordable"] != "2" || !strings.Contains(d["budgets"], "m1 ε") || !strings.HasPrefix(decision.Reason, "campaign 2 opens: AUC@30") {
				t.Fatalf("decision %q %v, want retrain of version 3 with its inputs", decision.Reason, d)
			}
			se, err := strconv.ParseFloat(d["evaluated_auc_se"], 64)
			if err != nil || math.Abs(evaluated-exactDrifted) > 4*se || math.Abs(baseline-first.BaselineAUC) > 1e-4 {
				t.Errorf("decision inputs: evaluated %.4f ± %v (exact, binned %.4f), baseline %.4f (stored %.4f)", evaluated, d["evaluated_auc_se"], exactDrifted, baseline, first.BaselineAUC)
			}
			t.Logf("decision: %s (details %v)", decision.Reason, d)

			// Campaign 2 published versions 4 and 5 from rounds at cutoffs
			// moved 109 days (2025-07-15 → 2025-11-01), and evaluated 5.
			if second.BaselineVersion != 5 || second.Shift != 109*24*time.Hour {
				t.Errorf("campaign 2: %+v, want version 5 and a 109-day shift", second)
			}
			models, err := svc.Models(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(models) != 5 || !models[4].Active || len(models[4].Contributions) != 2 {
				t.Fatalf("models %+v, want 5 versions, the 5th active from both merchants", models)
			}
			var rounds []aggregator.RoundRecord
			err = st.(aggregator.Store).InTx(ctx, func(tx aggregator.Tx) (err error) {
				rounds, err = tx.RecentRounds(ctx, 100)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			r4 := rounds[slices.IndexFunc(rounds, func(r aggregator.RoundRecord) bool { return r.ID == models[4].Round })]
			shift := 109 * 24 * time.Hour
			if !r4.Plan.Cutoffs[0].Equal(campaignCuts[0].Add(shift)) || !r4.Plan.Cutoffs[1].Equal(campaignCuts[1].Add(shift)) {
				t.Errorf("%s cutoffs %v, want the configured ones + 109 days", r4.ID, r4.Plan.Cutoffs)
			}
			v5 := activeModel(t, svc, 5)
			pub5, se5 := auditPublished(t, st, "campaign.complete", 2)
			if exact := exactAUC(t, v5, data, scheduled, evalEdges); math.Abs(pub5-exact) > 4*se5 {
				t.Errorf("campaign 2 at publication: DP AUC@30 %.4f ± %.4f, exact (binned) %.4f", pub5, se5, exact)
			}
			// Retraining at the moved cutoffs learned the new relation.
			old, fresh := exactAUC(t, v3, data, scheduled, nil), exactAUC(t, v5, data, scheduled, nil)
			t.Logf("exact AUC@30 at %s: version 3 %.4f, version 5 %.4f", scheduled.Format(time.DateOnly), old, fresh)
			if fresh < old+0.2 {
				t.Errorf("exact AUC@30 at %s: version 5 %.4f, version 3 %.4f; want the retrained one well above", scheduled.Format(time.DateOnly), fresh, old)
			}
			budgets, err := svc.Budgets(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range budgets {
				if !(b.Epsilon > 0 && b.Epsilon <= b.Cap*(1+1e-9)) {
					t.Errorf("%s spent ε %v of %v", b.Merchant, b.Epsilon, b.Cap)
				}
			}
			if _, err := audit.Verify(ctx, st, aggKeys.Checkpoint.Public().(ed25519.PublicKey)); err != nil {
				t.Fatalf("audit verify: %v", err)
			}
			for range 2 {
				if err := <-runners; err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("client: %v", err)
				}
			}
		})
	}
}

// auditPublished returns the AUC@30 published with the nth action entry
// (campaign.complete) and its standard error.
func auditPublished(t *testing.T, st store.Store, action string, n int) (auc, se float64) {
	t.Helper()
	es, err := st.AuditEntries(context.Background(), 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Action != action {
			continue
		}
		if n--; n == 0 {
			se, err := strconv.ParseFloat(e.Details["baseline_auc_se"], 64)
			if err != nil || !(se > 0) {
				t.Fatalf("%s entry %v: no standard error", action, e.Details)
			}
			auc, err := strconv.ParseFloat(e.Details["published_auc"], 64)
			if err != nil {
				t.Fatalf("%s entry %v: no published AUC@30", action, e.Details)
			}
			return auc, se
		}
	}
	t.Fatalf("fewer %s entries than asked", action)
	return 0, 0
}

func activeModel(t *testing.T, svc *aggregator.Service, version int) *hazard.Model {
	t.Helper()
	mv, err := svc.Model(context.Background(), version)
	if err != nil {
		t.Fatal(err)
	}
	m, err := hazard.Unmarshal(mv.Model, mv.SchemaHash)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
