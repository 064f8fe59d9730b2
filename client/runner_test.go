package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/seal"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// fakeAgg is an in-process aggregator: it opens envelopes with crypto/seal
// exactly as the real one must, recognises a re-sent envelope, and opens a new
// round after each accepted update.
type fakeAgg struct {
	t        testing.TB
	keys     *keys.Aggregator
	merchant ed25519.PublicKey
	model    json.RawMessage
	plan     protocol.TrainingPlan
	now      func() time.Time

	mu        sync.Mutex
	seq       int64
	attempts  int
	transient int    // fail this many submissions with a transport error
	lostReply bool   // accept the next submission but fail to answer
	refuse    string // answer every submission with this problem type
	accepted  map[[32]byte]protocol.Receipt
	nonces    map[[seal.NonceSize]byte]bool
	updates   []protocol.Update
	payloads  [][]byte // the opened payloads of the updates, as sent
}

func newFakeAgg(t testing.TB, m *keys.Merchant) *fakeAgg {
	t.Helper()
	a, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := feature.NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := hazard.Initial(schema, 0)
	if err != nil {
		t.Fatal(err)
	}
	mj, err := base.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return &fakeAgg{
		t: t, keys: a, merchant: m.Signing.Public().(ed25519.PublicKey), model: mj,
		plan: protocol.TrainingPlan{
			Cutoffs: []time.Time{date(1997, 7, 1), date(1997, 9, 1)},
			Steps:   3, SamplingRate: 0.2, NoiseMultiplier: 1.2, ClipNorm: 1, LearningRate: 0.1,
			Delta: 1e-6, CountNoise: 50,
		},
		now: time.Now, accepted: map[[32]byte]protocol.Receipt{}, nonces: map[[seal.NonceSize]byte]bool{},
	}
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func (f *fakeAgg) roundID() string { return fmt.Sprintf("r%d", f.seq) }

func (f *fakeAgg) CurrentRound(context.Context) (protocol.Round, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return protocol.Round{
		ID: f.roundID(), Seq: f.seq, State: protocol.RoundOpen, Selected: true, BaseVersion: int(f.seq),
		Model: f.model, Plan: f.plan, Recipient: f.keys.Recipient,
	}, nil
}

func (f *fakeAgg) SubmitUpdate(_ context.Context, round string, env []byte) (protocol.Receipt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.transient > 0 {
		f.transient--
		return protocol.Receipt{}, errors.New("dial tcp 127.0.0.1:1: connection refused")
	}
	if f.refuse != "" {
		return protocol.Receipt{}, &apiclient.Problem{Status: http.StatusConflict, Type: f.refuse}
	}
	sum := sha256.Sum256(env)
	if rc, ok := f.accepted[sum]; ok {
		rc.Duplicate = true
		return rc, nil
	}
	_, payload, err := seal.Open(env, seal.OpenOptions{
		Identity: f.keys.Identity,
		Signers:  func(string) (ed25519.PublicKey, error) { return f.merchant, nil },
		Round:    f.roundID(), Now: f.now(), MaxSkew: 5 * time.Minute,
		SeenNonce: func(_ string, n [seal.NonceSize]byte) bool {
			seen := f.nonces[n]
			f.nonces[n] = true
			return seen
		},
	})
	switch {
	case errors.Is(err, seal.ErrStale):
		return protocol.Receipt{}, &apiclient.Problem{Status: 400, Type: apiclient.TypeStaleEnvelope}
	case errors.Is(err, seal.ErrRoundMismatch):
		return protocol.Receipt{}, &apiclient.Problem{Status: 409, Type: apiclient.TypeRoundMismatch}
	case err != nil:
		f.t.Errorf("fake aggregator: open envelope: %v", err)
		return protocol.Receipt{}, &apiclient.Problem{Status: 400, Type: apiclient.TypeInvalidEnvelope}
	}
	var u protocol.Update
	if err := json.Unmarshal(payload, &u); err != nil {
		f.t.Errorf("fake aggregator: decode update: %v", err)
	}
	if err := u.Validate(hazard.NumParams(hazard.KindLinear, len(mustSchema(f.t).Names), 0, model.Horizon), f.plan); err != nil {
		f.t.Errorf("fake aggregator: %v", err)
	}
	f.updates = append(f.updates, u)
	f.payloads = append(f.payloads, payload)
	rc := protocol.Receipt{UpdateID: fmt.Sprint(len(f.updates)), Round: round, Merchant: u.Merchant, Epsilon: 0.1, EpsilonCap: 1}
	f.accepted[sum] = rc
	f.seq++
	if f.lostReply {
		f.lostReply = false
		return protocol.Receipt{}, errors.New("read tcp: connection reset by peer")
	}
	return rc, nil
}

func mustSchema(t testing.TB) feature.Schema {
	t.Helper()
	s, err := feature.NewSchema(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testEvents are 300 customers buying every 20–80 days through 1997.
func testEvents() []model.Event {
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	var out []model.Event
	for c := range 300 {
		at := date(1997, 1, 1).Add(time.Duration(rng.IntN(60)) * model.Day)
		for at.Before(date(1998, 1, 1)) {
			out = append(out, model.Event{Customer: fmt.Sprintf("p%03d", c), Time: at, Kind: model.Purchase, Amount: 10, HasAmount: true})
			at = at.Add(time.Duration(20+rng.IntN(60)) * model.Day)
		}
	}
	slices.SortStableFunc(out, func(a, b model.Event) int { return a.Time.Compare(b.Time) })
	return out
}

type runnerEnv struct {
	merchant *keys.Merchant
	dir      string
	agg      *fakeAgg
}

func newRunnerEnv(t *testing.T) *runnerEnv {
	t.Helper()
	m, err := keys.GenerateMerchant(rand.Reader, "shop-1")
	if err != nil {
		t.Fatal(err)
	}
	return &runnerEnv{merchant: m, dir: t.TempDir(), agg: newFakeAgg(t, m)}
}

// runner opens the state directory and returns a runner over it; close the
// store with the returned function.
func (e *runnerEnv) runner(t *testing.T, cap float64, now func() time.Time) (*Runner, *State, func()) {
	t.Helper()
	store, st, err := OpenState(e.dir, e.merchant.ID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(Options{
		API: e.agg, Merchant: e.merchant, Events: testEvents(), Store: store, State: st, EpsilonCap: cap,
		Now: now, PollInterval: time.Millisecond, Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, st, func() { store.Close() }
}

// roundEpsilon is ε after k rounds of plan, from the accountant directly: k
// rounds of DP-SGD steps and one customer count (released in the first round,
// sent again after).
func roundEpsilon(t *testing.T, plan protocol.TrainingPlan, k int) float64 {
	t.Helper()
	eps, _, err := dp.Epsilon([]dp.Release{
		{Mechanism: dp.Gaussian, Q: plan.SamplingRate, Z: plan.NoiseMultiplier, Steps: plan.Steps * k},
		{Mechanism: dp.Gaussian, Q: 1, Z: plan.CountNoise, Steps: 1},
	}, plan.Delta, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return eps
}

func TestRunnerJoinsRounds(t *testing.T) {
	e := newRunnerEnv(t)
	r, _, done := e.runner(t, 100, nil)
	defer done()
	n, err := r.Run(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("joined: got %d, want 2", n)
	}
	if got := len(e.agg.updates); got != 2 {
		t.Fatalf("updates at the aggregator: got %d, want 2", got)
	}
	for i, u := range e.agg.updates {
		if u.Round != fmt.Sprintf("r%d", i) || u.Merchant != "shop-1" || u.BaseVersion != i {
			t.Errorf("update %d: got round %q merchant %q base %d, want r%d shop-1 %d", i, u.Round, u.Merchant, u.BaseVersion, i, i)
		}
		if u.Release.Steps != 3 || u.Release.ClipNorm != 1 || u.Release.NoiseMultiplier < 1.2 {
			t.Errorf("update %d: release %+v, want 3 steps, clip 1, z ≥ 1.2", i, u.Release)
		}
		// 300 customers plus Gaussian noise of σ 50: far outside ±300 would be a bug.
		if math.Abs(u.Customers.Value-300) > 300 {
			t.Errorf("update %d: customer count %v, want about 300", i, u.Customers.Value)
		}
	}
	st, err := ReadState(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != nil || st.Accepted() != 2 || len(st.Releases) != 3 {
		t.Errorf("state: pending %v, accepted %d, releases %d; want none, 2, 3 (steps, count, steps)", st.Pending != nil, st.Accepted(), len(st.Releases))
	}
	// The second round sends the first round's count again, naming it.
	u0, u1 := e.agg.updates[0].Customers, e.agg.updates[1].Customers
	if u0.ReleasedIn != "" || u1.Value != u0.Value || u1.Sigma != u0.Sigma || u1.ReleasedIn != "r0" {
		t.Errorf("counts: first %+v, second %+v; want the second to be the first released in r0", u0, u1)
	}
	got, err := st.Epsilon(1e-6)
	if err != nil {
		t.Fatal(err)
	}
	// The noise actually added may exceed the plan by up to 0.1%, so ε is at most the planned one.
	if want := roundEpsilon(t, e.agg.plan, 2); got > want+1e-9 || got < 0.98*want {
		t.Errorf("local ε after 2 rounds: got %v, want ≈ %v (planned)", got, want)
	}
}

// TestRunnerEvaluates: a round whose plan asks for an evaluation gets one with
// the update, and an evaluation-only round gets nothing else. The histogram's
// class totals are checked against outcomes computed here from the raw events
// (first purchase on or after the cutoff: within 7 days, on days 8–30, or
// none), within five standard deviations of the noise summed over the bins.
func TestRunnerEvaluates(t *testing.T) {
	e := newRunnerEnv(t)
	cut := date(1997, 11, 1)
	e.agg.plan.Evaluation = &protocol.EvaluationPlan{Cutoff: cut, Edges: []float64{0.1, 0.5}, Sigma: 1}
	r, _, done := e.runner(t, 100, nil)
	defer done()
	if _, err := r.Run(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	e.agg.mu.Lock()
	e.agg.plan.Steps = 0 // the evaluation-only round
	e.agg.mu.Unlock()
	if _, err := r.Run(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if len(e.agg.updates) != 2 {
		t.Fatalf("%d updates, want 2", len(e.agg.updates))
	}
	// Outcomes from the raw events.
	first := map[string]time.Time{}
	for _, ev := range testEvents() {
		if !ev.Time.Before(cut) {
			if f, ok := first[ev.Customer]; !ok || ev.Time.Before(f) {
				first[ev.Customer] = ev.Time
			}
		}
	}
	var want [protocol.EvalClasses]float64
	for c := range 300 {
		f, ok := first[fmt.Sprintf("p%03d", c)]
		day := int(f.Sub(cut)/model.Day) + 1
		switch {
		case ok && day <= 7:
			want[protocol.EvalWithin7]++
		case ok && day <= 30:
			want[protocol.EvalWithin30]++
		default:
			want[protocol.EvalNone]++
		}
	}
	for i, u := range e.agg.updates {
		ev := u.Evaluation
		if ev == nil || len(ev.Counts) != 3*protocol.EvalClasses || !ev.Cutoff.Equal(cut) || ev.Sigma < 1 {
			t.Fatalf("update %d: evaluation %+v", i, ev)
		}
		var got [protocol.EvalClasses]float64
		for j, v := range ev.Counts {
			got[j%protocol.EvalClasses] += v
		}
		for c := range got {
			if math.Abs(got[c]-want[c]) > 5*math.Sqrt(3) {
				t.Errorf("update %d: class %d holds %.1f customers, want %v ± noise", i, c, got[c], want[c])
			}
		}
	}
	if u := e.agg.updates[0]; len(u.Delta) == 0 || u.Release.Steps != 3 {
		t.Errorf("training round with evaluation: delta of %d, release %+v", len(u.Delta), u.Release)
	}
	if u := e.agg.updates[1]; len(u.Delta) != 0 || u.Release != (protocol.Release{}) || u.Customers != (protocol.NoisyCount{}) {
		t.Errorf("evaluation-only round: delta of %d, release %+v, count %+v", len(u.Delta), u.Release, u.Customers)
	}
	st, err := ReadState(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Releases) != 4 {
		t.Fatalf("local ledger holds %d releases, want 4 (steps, count, evaluation, evaluation)", len(st.Releases))
	}
	got, err := st.Epsilon(1e-6)
	if err != nil {
		t.Fatal(err)
	}
	plan := e.agg.plan
	want1, _, err := dp.Epsilon([]dp.Release{
		{Mechanism: dp.Gaussian, Q: plan.SamplingRate, Z: plan.NoiseMultiplier, Steps: 3},
		{Mechanism: dp.Gaussian, Q: 1, Z: plan.CountNoise, Steps: 1},
		{Mechanism: dp.Gaussian, Q: 1, Z: 1, Steps: 2},
	}, 1e-6, dp.AccountantOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got > want1+1e-9 || got < 0.98*want1 {
		t.Errorf("local ε: got %v, want ≈ %v", got, want1)
	}
}

func TestRunnerRunCountsPerCall(t *testing.T) {
	e := newRunnerEnv(t)
	r, st, done := e.runner(t, 100, nil)
	defer done()
	for i := range 2 {
		n, err := r.Run(context.Background(), 1)
		if err != nil || n != 1 {
			t.Fatalf("run %d: got %d, %v; want 1 round", i, n, err)
		}
	}
	if len(e.agg.updates) != 2 || st.Accepted() != 2 {
		t.Errorf("after two runs of one round: %d updates, %d accepted; want 2 and 2", len(e.agg.updates), st.Accepted())
	}
}

func TestRunnerRefusesPastLocalCap(t *testing.T) {
	e := newRunnerEnv(t)
	one, two := roundEpsilon(t, e.agg.plan, 1), roundEpsilon(t, e.agg.plan, 2)
	r, st, done := e.runner(t, (one+two)/2, nil)
	defer done()
	n, err := r.Run(context.Background(), 0)
	if !errors.Is(err, ErrLocalBudget) || !errors.Is(err, dp.ErrBudgetExhausted) {
		t.Fatalf("run: got %v, want ErrLocalBudget", err)
	}
	if n != 1 || len(e.agg.updates) != 1 || len(st.Releases) != 2 {
		t.Errorf("got %d rounds, %d updates, %d releases; want 1, 1, 2", n, len(e.agg.updates), len(st.Releases))
	}
	if st.Count == nil || st.Count.Round != "r0" {
		t.Errorf("state count %+v, want the one released in r0", st.Count)
	}
}

func TestRunnerRetriesTransientFailures(t *testing.T) {
	e := newRunnerEnv(t)
	e.agg.transient = 3
	r, _, done := e.runner(t, 100, nil)
	defer done()
	if _, err := r.Run(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if e.agg.attempts != 4 || len(e.agg.updates) != 1 {
		t.Errorf("attempts %d, updates %d; want 4 and 1", e.agg.attempts, len(e.agg.updates))
	}
}

func TestRunnerResumesAfterLostReply(t *testing.T) {
	e := newRunnerEnv(t)
	e.agg.lostReply = true
	r, st, done := e.runner(t, 100, nil)
	r.opt.Backoff.MaxAttempts = 1 // the "crash": give up after the lost reply
	if _, err := r.Run(context.Background(), 1); err == nil {
		t.Fatal("run: got nil error, want the lost reply")
	}
	if st.Pending == nil {
		t.Fatal("no pending update after the failed upload")
	}
	done()

	r, st, done = e.runner(t, 100, nil)
	defer done()
	n, err := r.Run(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("joined: got %d, want 1 (the resumed round)", n)
	}
	if len(e.agg.updates) != 1 {
		t.Errorf("updates at the aggregator: got %d, want 1", len(e.agg.updates))
	}
	if len(st.Releases) != 2 || len(st.Rounds) != 1 || st.Rounds[0].Outcome != OutcomeDuplicate {
		t.Errorf("state: %d releases, rounds %+v; want 2 releases and one duplicate round", len(st.Releases), st.Rounds)
	}
	if e.agg.attempts != 2 {
		t.Errorf("attempts: got %d, want 2", e.agg.attempts)
	}
}

func TestRunnerClockSkew(t *testing.T) {
	e := newRunnerEnv(t)
	skewed := func() time.Time { return time.Now().Add(3 * time.Hour) }
	r, st, done := e.runner(t, 100, skewed)
	_, err := r.Run(context.Background(), 1)
	if !errors.Is(err, ErrClockSkew) {
		t.Fatalf("run with a skewed clock: got %v, want ErrClockSkew", err)
	}
	if st.Pending == nil || len(st.Releases) != 2 || len(e.agg.updates) != 0 {
		t.Fatalf("after skew: pending %v, releases %d, updates %d; want pending, 2, 0", st.Pending != nil, len(st.Releases), len(e.agg.updates))
	}
	var want protocol.Update
	if err := json.Unmarshal(st.Pending.Payload, &want); err != nil {
		t.Fatal(err)
	}
	done()

	r, st, done = e.runner(t, 100, nil) // clock fixed
	defer done()
	if _, err := r.Run(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if len(e.agg.updates) != 1 || len(st.Releases) != 2 {
		t.Fatalf("after fixing the clock: updates %d, releases %d; want 1 and 2 (no second debit)", len(e.agg.updates), len(st.Releases))
	}
	if got := e.agg.updates[0]; !slices.Equal(got.Delta, want.Delta) || got.Release != want.Release {
		t.Errorf("the resealed update differs from the one trained before the restart")
	}
}

func TestRunnerRefusals(t *testing.T) {
	for _, tc := range []struct {
		problem string
		wantErr error
	}{
		{apiclient.TypeRoundClosed, nil},
		{apiclient.TypeReplay, nil},
		{apiclient.TypeConflict, nil}, // e.g. an update of this merchant already holds the round
		{apiclient.TypeBudgetExhausted, ErrFederationBudget},
	} {
		t.Run(tc.problem, func(t *testing.T) {
			e := newRunnerEnv(t)
			e.agg.refuse = tc.problem
			r, st, done := e.runner(t, 100, nil)
			defer done()
			_, err := r.Run(context.Background(), 1)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("run: got %v, want %v", err, tc.wantErr)
			}
			if st.Pending != nil || len(st.Rounds) != 1 || st.Rounds[0].Outcome != OutcomeRefused {
				t.Errorf("state: pending %v, rounds %+v; want one refused round", st.Pending != nil, st.Rounds)
			}
			if len(st.Releases) != 2 {
				t.Errorf("local releases: got %d, want 2 (a refused update keeps its debit)", len(st.Releases))
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	rng := mathrand.New(mathrand.NewPCG(3, 4))
	for _, tc := range []struct {
		n        int
		lo, high time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{4, 500 * time.Millisecond, time.Second},
		{60, 500 * time.Millisecond, time.Second},
	} {
		for range 50 {
			if got := b.wait(tc.n, rng); got < tc.lo || got > tc.high {
				t.Fatalf("wait(%d): got %v, want in [%v, %v]", tc.n, got, tc.lo, tc.high)
			}
		}
	}
}

// TestRunnerNoCustomersSendsNoise: a merchant with no customer before the
// round's cutoffs used to stop with ErrNoCustomers, so whether it submitted
// told the aggregator it had none. It now sends an update of the same form as
// a merchant with customers (the same JSON fields, a Delta of every parameter,
// the same release) and is debited the same releases.
func TestRunnerNoCustomersSendsNoise(t *testing.T) {
	join := func(events []model.Event) (protocol.Update, map[string]any, []dp.Release) {
		t.Helper()
		e := newRunnerEnv(t)
		store, st, err := OpenState(e.dir, e.merchant.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		r, err := NewRunner(Options{
			API: e.agg, Merchant: e.merchant, Events: events, Store: store, State: st, EpsilonCap: 100,
			PollInterval: time.Millisecond, Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Run(context.Background(), 1); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if len(e.agg.updates) != 1 {
			t.Fatalf("updates at the aggregator: %d, want 1", len(e.agg.updates))
		}
		var fields map[string]any
		if err := json.Unmarshal(e.agg.payloads[0], &fields); err != nil {
			t.Fatal(err)
		}
		return e.agg.updates[0], fields, st.Releases
	}
	// Every event after the cutoffs (1997-07-01, 1997-09-01): no customer has a row.
	late := testEvents()
	for i := range late {
		late[i].Time = late[i].Time.AddDate(2, 0, 0)
	}
	none, noneFields, noneDebit := join(late)
	some, someFields, someDebit := join(testEvents())
	if a, b := fieldNames(noneFields, ""), fieldNames(someFields, ""); !slices.Equal(a, b) {
		t.Errorf("fields without customers %v, with %v; want the same", a, b)
	}
	if len(none.Delta) != len(some.Delta) || dp.CheckFinite(none.Delta) != nil || none.Release != some.Release {
		t.Errorf("no customers: %d-value delta, release %+v; with customers %d values, %+v", len(none.Delta), none.Release, len(some.Delta), some.Release)
	}
	if !slices.Equal(noneDebit, someDebit) || len(noneDebit) != 2 {
		t.Errorf("debit without customers %+v, with %+v; want the same two releases", noneDebit, someDebit)
	}
	if c := none.Customers; math.Abs(c.Value) > 6*c.Sigma || c.Sigma != some.Customers.Sigma {
		t.Errorf("count without customers %+v, want 0 ± 6σ, σ %v", c, some.Customers.Sigma)
	}
}

// fieldNames lists the JSON object keys of v, nested ones as parent.key, sorted.
func fieldNames(v map[string]any, prefix string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		out = append(out, prefix+k)
		if sub, ok := v[k].(map[string]any); ok {
			out = append(out, fieldNames(sub, prefix+k+".")...)
		}
	}
	return out
}

// TestRunnerRefusesPlanAboveMerchantDelta: the merchant's cap used to be checked
// at the δ of the round's plan, which the aggregator chooses. The fake
// aggregator's round (3 steps at q = 0.2, z = 1.2 and a count at σ = 50) is
// ε = 3.32 at δ = 1e-6 but 0 at δ = 0.5 (kairos dp epsilon --release
// q=0.2,z=1.2,steps=3 --release q=1,z=50,steps=1 --delta 0.5), so a merchant
// capped at 0.8 joined it. Now the round is refused before anything is
// trained, sent or debited; a δ that is not a number is refused too.
func TestRunnerRefusesPlanAboveMerchantDelta(t *testing.T) {
	for _, delta := range []float64{0.5, 1.01e-6, math.NaN(), 0} {
		e := newRunnerEnv(t)
		e.agg.plan.Delta = delta
		r, st, done := e.runner(t, 0.8, nil)
		_, err := r.Run(context.Background(), 1)
		done()
		if !errors.Is(err, ErrPlanDelta) {
			t.Errorf("plan δ %v: Run = %v, want ErrPlanDelta", delta, err)
		}
		if len(e.agg.updates) != 0 || len(st.Releases) != 0 {
			t.Errorf("plan δ %v: %d updates sent, %d releases debited; want none", delta, len(e.agg.updates), len(st.Releases))
		}
	}
}

// TestRunnerLedgerAtMerchantDelta: a plan at a smaller δ than the merchant's is
// accepted, and the local ε is measured at the merchant's δ (1e-6 by default),
// not the plan's 1e-9; the merchant's own δ can be set (1e-5 here) and its
// rounds' ε are then measured at it.
func TestRunnerLedgerAtMerchantDelta(t *testing.T) {
	for _, merchant := range []float64{0, 1e-5} {
		e := newRunnerEnv(t)
		e.agg.plan.Delta = 1e-9
		store, st, err := OpenState(e.dir, e.merchant.ID)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewRunner(Options{
			API: e.agg, Merchant: e.merchant, Events: testEvents(), Store: store, State: st, EpsilonCap: 100, Delta: merchant,
			PollInterval: time.Millisecond, Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Run(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		store.Close()
		want := max(merchant, DefaultDelta)
		plan := e.agg.plan
		plan.Delta = want
		eps := roundEpsilon(t, plan, 1)
		got := st.Rounds[0].LocalEpsilon
		// The noise actually added is up to 0.1% above the plan's, so ε is a little below.
		if got > eps || got < 0.99*eps || st.Delta != want {
			t.Errorf("merchant δ %v: local ε %v at δ %v, want ≤ %v (the plan at δ %v) and within 1%%", merchant, got, st.Delta, eps, want)
		}
	}
}

// TestRunnerHugeAmountsDoNotAbort: one customer with two purchases of 1e308
// made a spend feature +Inf and the gradient NaN, and every round that sampled
// it aborted (80 of 200 in the demo). At q = 1 it is sampled every
// step; the round completes and the update is finite.
func TestRunnerHugeAmountsDoNotAbort(t *testing.T) {
	e := newRunnerEnv(t)
	e.agg.plan.SamplingRate = 1
	events := testEvents()
	for _, d := range []time.Time{date(1997, 3, 1), date(1997, 4, 1)} {
		events = append(events, model.Event{Customer: "whale", Time: d, Kind: model.Purchase, Amount: 1e308, HasAmount: true})
	}
	store, st, err := OpenState(e.dir, e.merchant.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r, err := NewRunner(Options{
		API: e.agg, Merchant: e.merchant, Events: events, Store: store, State: st, EpsilonCap: 100,
		PollInterval: time.Millisecond, Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), 1); err != nil {
		t.Fatalf("Run with a customer spending 1e308 twice: %v, want a round", err)
	}
	if len(e.agg.updates) != 1 || dp.CheckFinite(e.agg.updates[0].Delta) != nil {
		t.Errorf("updates %d, want 1 with a finite delta", len(e.agg.updates))
	}
}
