package sim

import (
	"context"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/dp"
)

func TestMerchantSplit(t *testing.T) {
	// The split is a pure function of the id: stable, and close to the shares on
	// many ids (binomial standard deviation ≤ 0.0016 for 100,000 ids).
	counts := make([]int, len(StandardShares))
	const n = 100000
	for i := range n {
		id := "customer-" + strconv.Itoa(i)
		m := Merchant(id, StandardShares)
		if again := Merchant(id, StandardShares); again != m {
			t.Fatalf("Merchant(%q): got %d then %d", id, m, again)
		}
		counts[m]++
	}
	for m, c := range counts {
		if got, want := float64(c)/n, StandardShares[m]; math.Abs(got-want) > 0.008 {
			t.Errorf("merchant %d share: got %.4f, want %.2f ± 0.008", m, got, want)
		}
	}
	if got := Merchant("x", []float64{0.5, 0.4}); got < 0 || got > 1 {
		t.Errorf("shares summing below 1: got merchant %d, want 0 or 1", got)
	}
}

func TestCalibrate(t *testing.T) {
	// The calibrated z spends at most ε and a 1% smaller z spends more.
	tests := []struct {
		eps, q     float64
		steps, rds int
	}{
		{1, 0.05, 10, 40},
		{1, 0.05, 10, 10},
		{4, 0.1, 5, 20},
	}
	for _, tt := range tests {
		z, err := Calibrate(tt.eps, 1e-6, tt.q, tt.steps, tt.rds, 50)
		if err != nil {
			t.Fatal(err)
		}
		spend := func(z float64) float64 {
			e, _, err := dp.Epsilon([]dp.Release{
				{Mechanism: dp.Gaussian, Q: tt.q, Z: z, Steps: tt.steps * tt.rds},
				{Mechanism: dp.Gaussian, Q: 1, Z: 50, Steps: 1}, // one count, sent again every round
			}, 1e-6, dp.AccountantOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		if e := spend(z); e > tt.eps {
			t.Errorf("%+v: z %v spends %v, want ≤ %v", tt, z, e, tt.eps)
		}
		if e := spend(z * 0.99); e <= tt.eps {
			t.Errorf("%+v: 0.99·z %v spends %v, want > %v (z not the smallest)", tt, 0.99*z, e, tt.eps)
		}
	}
}

// TestSimulateReference is the reference federation of the task (about a minute of
// CPU, so it runs only with KAIROS_LONG=1): CDNOW split 40/25/15/12/8%, every
// merchant at ε ≤ 1 (δ = 1e-6), federated AUC@30 ≥ 0.815 and above the mean of the
// local-only models.
func TestSimulateReference(t *testing.T) {
	if os.Getenv("KAIROS_LONG") == "" {
		t.Skip("set KAIROS_LONG=1 (about a minute)")
	}
	d := cdnowData(t)
	rep, err := d.Simulate(context.Background(), Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("federated %+v (z %.3f), centralized %+v", rep.Federated, rep.NoiseMultiplier, rep.Centralized)
	for _, m := range rep.Merchants {
		t.Logf("merchant %d (%.0f%%, %d customers): ε %.4f, local-only %+v, on own customers %+v",
			m.Index, 100*m.Share, m.Customers, m.Epsilon, m.LocalOnly, m.LocalOnlyOwn)
		if m.Epsilon > 1 {
			t.Errorf("merchant %d: ε %v, want ≤ 1", m.Index, m.Epsilon)
		}
	}
	if got := rep.Federated.AUC30; got < 0.815 {
		t.Errorf("federated AUC@30: got %.4f, want ≥ 0.815", got)
	}
	if got, want := rep.Federated.AUC30, rep.LocalOnlyMean().AUC30; got <= want {
		t.Errorf("federated AUC@30 %.4f, want above the local-only mean %.4f", got, want)
	}
}

func TestFedOptionsServerDefaults(t *testing.T) {
	// The aggregator's defaults (aggregator.RoundConfig): FedAdam at η = 0.01 and
	// τ = 1e-3, server SGD at η = 1.
	tests := []struct {
		server          string
		wantServer      string
		wantLR, wantTau float64
	}{
		{"", ServerFedAdam, 0.01, 1e-3},
		{ServerFedAvg, ServerFedAvg, 1, 1e-3},
	}
	for _, tt := range tests {
		o := FedOptions{Rounds: 1, Steps: 1, NoiseMultiplier: 1, Server: tt.server}
		if err := o.defaults(); err != nil {
			t.Fatal(err)
		}
		if o.Server != tt.wantServer || o.ServerLR != tt.wantLR || o.Tau != tt.wantTau {
			t.Errorf("server %q: got (%s, %v, %v), want (%s, %v, %v)", tt.server, o.Server, o.ServerLR, o.Tau, tt.wantServer, tt.wantLR, tt.wantTau)
		}
	}
	o := FedOptions{Rounds: 1, Steps: 1, NoiseMultiplier: 1, Server: "sgd"}
	if err := o.defaults(); err == nil || !strings.Contains(err.Error(), `server optimizer "sgd"`) {
		t.Errorf("server sgd: got %v, want an error naming it", err)
	}
}
