package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/client/train/sim"
)

// TestFederationSurvivesAggregatorKill runs three merchants to the end of their
// budget while the aggregator is killed with SIGKILL mid-federation and
// restarted on the same database.
func TestFederationSurvivesAggregatorKill(t *testing.T) {
	for _, store := range stores(t) {
		t.Run(store, func(t *testing.T) {
			const rounds = 5
			f := newFed(t, fedOptions{merchants: 3, rounds: rounds, store: store})
			for _, m := range f.merchants {
				f.run(m, nil)
			}
			f.waitPublished(2, 60*time.Second)
			if err := f.agg.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := f.agg.wait(t, 10*time.Second); !killed(err) {
				t.Fatalf("aggregator exit: got %v, want killed", err)
			}
			time.Sleep(300 * time.Millisecond) // the clients meet a dead server
			f.startAggregator()
			for _, m := range f.merchants {
				if err := m.proc.wait(t, 90*time.Second); err != nil {
					t.Fatalf("client %s: %v\n%s", m.id, err, tail(m.proc.Log, 20))
				}
			}
			f.waitPublished(rounds, 30*time.Second)
			retried := false
			for _, m := range f.merchants {
				b, _ := os.ReadFile(m.proc.Log)
				retried = retried || strings.Contains(string(b), "retrying")
			}
			if !retried {
				t.Error("no client logged a retry: the kill did not happen mid-federation")
			}
			f.checkLedgers()
			contrib := f.contributions()
			for _, m := range f.merchants {
				st := f.state(m)
				if got := st.Accepted(); got != rounds {
					t.Errorf("%s: %d rounds accepted, want %d", m.id, got, rounds)
				}
				if got := contrib[m.id]; got != rounds {
					t.Errorf("%s: contributed to %d versions, want %d", m.id, got, rounds)
				}
			}
			if got := f.published(); got != rounds {
				t.Errorf("published versions: got %d, want %d (each round once)", got, rounds)
			}
			f.verifyAudit()
		})
	}
}

// TestClientKilledAtUpload kills one client (SIGKILL, from a fault hook) right
// after the aggregator accepted its update but before it recorded the receipt,
// and another right after it saved its sealed update but before sending it.
// Restarted, each resumes its pending upload: the first gets a duplicate
// receipt, the second a fresh one, and nothing is debited twice. The first's
// envelope is then replayed to its round and to a later one.
func TestClientKilledAtUpload(t *testing.T) {
	for _, store := range stores(t) {
		t.Run(store, func(t *testing.T) {
			const rounds = 3
			f := newFed(t, fedOptions{merchants: 2, rounds: rounds, store: store})
			m1, m2 := f.merchants[0], f.merchants[1]
			f.run(m1, []string{"KAIROS_FAULT=" + client.HookSubmitted})
			f.run(m2, []string{"KAIROS_FAULT=" + client.HookSealed})
			for _, m := range f.merchants {
				if err := m.proc.wait(t, 60*time.Second); !killed(err) {
					t.Fatalf("%s: exit %v, want killed by its fault hook\n%s", m.id, err, tail(m.proc.Log, 20))
				}
			}
			st1, st2 := f.state(m1), f.state(m2)
			if st1.Pending == nil || st2.Pending == nil || len(st1.Rounds) != 0 || len(st2.Rounds) != 0 {
				t.Fatalf("after the kills: pending %v/%v rounds %d/%d; want both pending, no rounds",
					st1.Pending != nil, st2.Pending != nil, len(st1.Rounds), len(st2.Rounds))
			}
			replayed, replayRound := st1.Pending.Envelope, st1.Pending.Round
			bs := f.budgets()
			if bs[m1.id].Releases != 2 || bs[m2.id].Releases != 0 {
				t.Fatalf("aggregator releases before restart: m1 %d, m2 %d; want 2 and 0", bs[m1.id].Releases, bs[m2.id].Releases)
			}

			for _, m := range f.merchants {
				f.run(m, nil)
			}
			for _, m := range f.merchants {
				if err := m.proc.wait(t, 60*time.Second); err != nil {
					t.Fatalf("%s after restart: %v\n%s", m.id, err, tail(m.proc.Log, 20))
				}
			}
			f.waitPublished(rounds, 30*time.Second)
			f.checkLedgers()
			st1, st2 = f.state(m1), f.state(m2)
			if got := st1.Rounds[0].Outcome; got != client.OutcomeDuplicate {
				t.Errorf("m1 first round: outcome %s, want %s", got, client.OutcomeDuplicate)
			}
			if got := st2.Rounds[0].Outcome; got != client.OutcomeAccepted {
				t.Errorf("m2 first round: outcome %s, want %s", got, client.OutcomeAccepted)
			}
			for _, st := range []*client.State{st1, st2} {
				if st.Accepted() != rounds {
					t.Errorf("%s: %d rounds accepted, want %d", st.Merchant, st.Accepted(), rounds)
				}
			}

			// Replays: the same envelope again to its round, then to the round now open.
			before := f.budgets()
			api, err := apiclient.New(f.URL, m1.token)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			rc, err := api.SubmitUpdate(ctx, replayRound, replayed)
			var prob *apiclient.Problem
			switch {
			case err == nil && !rc.Duplicate:
				t.Errorf("replay to its round: accepted as new (%+v)", rc)
			case err != nil && (!errors.As(err, &prob) || prob.Status < 400 || prob.Status >= 500):
				t.Errorf("replay to its round: %v, want a duplicate receipt or a 4xx problem", err)
			}
			cur, err := api.CurrentRound(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cur.ID == replayRound {
				t.Fatalf("round %s still open after the federation", cur.ID)
			}
			if _, err := api.SubmitUpdate(ctx, cur.ID, replayed); !errors.As(err, &prob) || prob.Status < 400 || prob.Status >= 500 || prob.Status == http.StatusAccepted {
				t.Errorf("replay to round %s: got %v, want a 4xx problem", cur.ID, err)
			}
			after := f.budgets()
			for id, b := range before {
				if after[id].Releases != b.Releases || after[id].Epsilon != b.Epsilon {
					t.Errorf("%s: ledger changed by the replays: %+v → %+v", id, b, after[id])
				}
			}
			f.verifyAudit()
		})
	}
}

// TestClientClockSkew runs a client whose clock is three hours ahead: the
// aggregator refuses its envelope as stale, the client keeps it and exits
// with an error naming the clock. With the clock fixed, the same update is
// sealed again and accepted, debited once.
func TestClientClockSkew(t *testing.T) {
	for _, store := range stores(t) {
		t.Run(store, func(t *testing.T) {
			f := newFed(t, fedOptions{merchants: 1, rounds: 2, store: store})
			m := f.merchants[0]
			f.writeClientConfig(m, "clock_offset: 3h\n")
			err := f.run(m, nil, "--once").wait(t, 60*time.Second)
			if err == nil {
				t.Fatal("client with a skewed clock: exit 0, want an error")
			}
			log, _ := os.ReadFile(m.proc.Log)
			if !strings.Contains(string(log), "clock") {
				t.Errorf("client log does not mention the clock:\n%s", tail(m.proc.Log, 10))
			}
			st := f.state(m)
			if st.Pending == nil || len(st.Releases) != 2 {
				t.Fatalf("after the refusal: pending %v, %d local releases; want pending and 2", st.Pending != nil, len(st.Releases))
			}
			if b := f.budgets()[m.id]; b.Releases != 0 {
				t.Fatalf("aggregator debited a refused update: %d releases", b.Releases)
			}

			f.writeClientConfig(m, "")
			if err := f.run(m, nil, "--once").wait(t, 60*time.Second); err != nil {
				t.Fatalf("client with the clock fixed: %v\n%s", err, tail(m.proc.Log, 20))
			}
			st = f.state(m)
			if st.Accepted() != 1 || len(st.Releases) != 2 || st.Pending != nil {
				t.Errorf("after the fix: %d accepted, %d local releases, pending %v; want 1, 2, none", st.Accepted(), len(st.Releases), st.Pending != nil)
			}
			f.checkLedgers()
			f.waitPublished(1, 30*time.Second)
			f.verifyAudit()
		})
	}
}

// TestScoreAndStatus federates two merchants, then checks `kairos client
// status` against the aggregator's ledger and `kairos client score` against
// the merchant's own data: one row per customer of its shard with history
// before the cutoff, under the raw CDNOW ids, with coherent probabilities.
func TestScoreAndStatus(t *testing.T) {
	f := newFed(t, fedOptions{merchants: 2, rounds: 2, store: "sqlite"})
	for _, m := range f.merchants {
		f.run(m, nil)
	}
	for _, m := range f.merchants {
		if err := m.proc.wait(t, 60*time.Second); err != nil {
			t.Fatalf("%s: %v\n%s", m.id, err, tail(m.proc.Log, 20))
		}
	}
	f.waitPublished(2, 30*time.Second)
	m := f.merchants[0]

	out, err := exec.Command(kairosBin, "client", "status", "--config", m.Config, "--json").Output()
	if err != nil {
		t.Fatalf("client status: %v", err)
	}
	var status struct {
		Accepted   int      `json:"rounds_accepted"`
		Local      float64  `json:"local_epsilon"`
		LocalCap   float64  `json:"local_epsilon_cap"`
		Federation *float64 `json:"federation_epsilon"`
	}
	if err := json.Unmarshal(out, &status); err != nil {
		t.Fatalf("client status: %v\n%s", err, out)
	}
	b := f.budgets()[m.id]
	if status.Accepted != 2 || status.Federation == nil || *status.Federation != b.Epsilon || status.Local > status.LocalCap+1e-9 {
		t.Errorf("status %s; want 2 accepted, federation ε %v, local ε within the cap", out, b.Epsilon)
	}

	scores := filepath.Join(m.dir, "scores.csv")
	if out, err := exec.Command(kairosBin, "client", "score", "--config", m.Config, "--out", scores, "--cutoff", "1998-03-01").CombinedOutput(); err != nil {
		t.Fatalf("client score: %v\n%s", err, out)
	} else if strings.Contains(string(out), "warning:") {
		// CDNOW's largest customer holds 0.25% of the purchases: no placeholder warning.
		t.Errorf("client score warned on CDNOW:\n%s", out)
	}
	fh, err := os.Open(scores)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	recs, err := csv.NewReader(fh).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// Expected customers, from the file itself: shard 0 of two, a purchase before 1998-03-01.
	want := map[string]bool{}
	data, err := os.ReadFile(cdnowSlice(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		fs := strings.Fields(line)
		if len(fs) == 4 && fs[1] < "19980301" && sim.Merchant(fs[0], []float64{0.5, 0.5}) == 0 {
			want[fs[0]] = true
		}
	}
	if got := len(recs) - 1; got != len(want) || len(want) == 0 {
		t.Fatalf("scored %d customers, want %d", got, len(want))
	}
	cutoff := time.Date(1998, 3, 1, 0, 0, 0, 0, time.UTC)
	// Columns by name (client.ScoreHeader): p_1d … p_30d come first.
	expCol, dateCol := slices.Index(recs[0], "expected_days"), slices.Index(recs[0], "predicted_date")
	if expCol < 0 || dateCol < 0 || recs[0][1] != "p_1d" || recs[0][5] != "p_30d" {
		t.Fatalf("score header %q: want p_1d…p_30d, expected_days and predicted_date", recs[0])
	}
	for _, r := range recs[1:] {
		if !want[r[0]] {
			t.Fatalf("scored customer %q is not one of the merchant's raw ids", r[0])
		}
		prev := 0.0
		for i, s := range r[1:6] {
			p, err := strconv.ParseFloat(s, 64)
			if err != nil || p < prev || p > 1 {
				t.Fatalf("customer %s: P(within horizon %d) = %q, want in [%v, 1]", r[0], i, s, prev)
			}
			prev = p
		}
		if e, err := strconv.ParseFloat(r[expCol], 64); err != nil || e < 0 || e > 30 {
			t.Fatalf("customer %s: expected days %q, want in [0, 30]", r[0], r[expCol])
		}
		d, err := time.Parse(time.DateOnly, r[dateCol])
		if err != nil || d.Before(cutoff) || d.After(cutoff.Add(29*24*time.Hour)) {
			t.Fatalf("customer %s: predicted date %q, want within 30 days of the cutoff", r[0], r[dateCol])
		}
	}
}

// TestLocalCapStricterThanFederation gives a merchant a local ε cap of 0.8
// under a federation planned to spend 1: the client stops by itself before
// the round that would pass 0.8, and the aggregator's ledger agrees.
func TestLocalCapStricterThanFederation(t *testing.T) {
	const rounds = 10
	f := newFed(t, fedOptions{merchants: 1, rounds: rounds, store: "sqlite"})
	m := f.merchants[0]
	f.writeClientConfig(m, "epsilon_cap: 0.8\n")
	if err := f.run(m, nil).wait(t, 60*time.Second); err != nil {
		t.Fatalf("client: %v\n%s", err, tail(m.proc.Log, 20))
	}
	log, _ := os.ReadFile(m.proc.Log)
	if !strings.Contains(string(log), "local privacy cap reached") {
		t.Errorf("client did not stop at its local cap:\n%s", tail(m.proc.Log, 10))
	}
	st := f.state(m)
	if n := st.Accepted(); n < 1 || n >= rounds {
		t.Errorf("accepted rounds: got %d, want between 1 and %d", n, rounds-1)
	}
	b := f.budgets()[m.id]
	local, err := st.Epsilon(b.Delta)
	if err != nil {
		t.Fatal(err)
	}
	if b.Epsilon > 0.8 || local > 0.8 || b.Cap != 1 {
		t.Errorf("ε: aggregator %v, local %v (caps 1 and 0.8); want both ≤ 0.8", b.Epsilon, local)
	}
	f.checkLedgers()
}
