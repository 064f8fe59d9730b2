package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDeLongHandWorked(t *testing.T) {
	// One stratum, buyers b1 b2, non-buyers n1 n2 n3; candidate A scores them
	// 0.9 0.4 | 0.5 0.3 0.1, candidate B 0.6 0.7 | 0.8 0.2 0.6 (b1 ties n3).
	// Placements by hand: A: V10 = 1, 2/3; V01 = 1/2, 1, 1 (AUC 5/6).
	// B: V10 = 1.5/3, 2/3; V01 = 0, 1, 1.5/2 (AUC 7/12). Differences: D10 =
	// 1/2, 0 (mean 1/4, sample variance 1/8); D01 = 1/2, 0, 1/4 (mean 1/4,
	// sample variance 1/16). DeLong: Var(A − B) = (1/8)/2 + (1/16)/3 = 1/12.
	a := []float64{0.9, 0.4, 0.5, 0.3, 0.1}
	b := []float64{0.6, 0.7, 0.8, 0.2, 0.6}
	bought := []bool{true, true, false, false, false}
	one := []int{0, 0, 0, 0, 0}
	each := []int{0, 1, 2, 3, 4}
	aucA, phiA := newStrataOrder(a, one, 1).influence(bought)
	aucB, phiB := newStrataOrder(b, one, 1).influence(bought)
	if math.Abs(aucA-5.0/6) > 1e-15 || math.Abs(aucB-7.0/12) > 1e-15 {
		t.Errorf("AUCs %v and %v, want 5/6 and 7/12", aucA, aucB)
	}
	if got, want := pairedSE(phiA, phiB, each, 5), math.Sqrt(1.0/12); math.Abs(got-want) > 1e-15 {
		t.Errorf("paired SE %v, want √(1/12) = %v", got, want)
	}
	// A's own variance: V10 sample variance 1/18, V01 sample variance 1/12:
	// (1/18)/2 + (1/12)/3 = 1/18. pairedSE against zero influence is that SE.
	if got, want := pairedSE(phiA, make([]float64, 5), each, 5), math.Sqrt(1.0/18); math.Abs(got-want) > 1e-15 {
		t.Errorf("A's SE %v, want √(1/18) = %v", got, want)
	}

	// The same five customers again at a second cutoff, scored the same: the
	// stratified AUCs are unchanged and each stratum weighs ½. Counted as ten
	// independent rows the variance halves (2 · (½)² · 1/12 = 1/24); counted as
	// five customers, whose two rows move together, it stays 1/12.
	a2, b2 := append(a, a...), append(b, b...)
	bought2 := append(bought, bought...)
	strata := []int{0, 0, 0, 0, 0, 1, 1, 1, 1, 1}
	aucA, phiA = newStrataOrder(a2, strata, 2).influence(bought2)
	_, phiB = newStrataOrder(b2, strata, 2).influence(bought2)
	if math.Abs(aucA-5.0/6) > 1e-15 {
		t.Errorf("two cutoffs: AUC %v, want 5/6", aucA)
	}
	rows := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	if got, want := pairedSE(phiA, phiB, rows, 10), math.Sqrt(1.0/24); math.Abs(got-want) > 1e-15 {
		t.Errorf("ten independent rows: SE %v, want √(1/24) = %v", got, want)
	}
	if got, want := pairedSE(phiA, phiB, append(each, each...), 5), math.Sqrt(1.0/12); math.Abs(got-want) > 1e-15 {
		t.Errorf("five customers at two cutoffs: SE %v, want √(1/12) = %v", got, want)
	}

	// No pair: NaN, no influence.
	if auc, phi := newStrataOrder([]float64{1, 2}, []int{0, 0}, 1).influence([]bool{true, true}); !math.IsNaN(auc) || phi[0] != 0 || phi[1] != 0 {
		t.Errorf("no non-buyer: got %v %v, want NaN and zeros", auc, phi)
	}
}

func TestDeLongAgainstBootstrap(t *testing.T) {
	// The second method: a customer bootstrap (resample customers with
	// replacement, each drawn customer bringing all its rows, 4,000 times) of
	// the stratified AUC difference of two correlated candidates, on 300
	// customers at 3 cutoffs in 2 folds whose scores share a customer effect
	// across cutoffs (and, for candidate A alone, a second one). DeLong's SE
	// must agree with the bootstrap's within 10%.
	rng := rand.New(rand.NewPCG(12, 34))
	const customers, cutoffs = 300, 3
	var a, b []float64
	var stratum, cluster []int
	var bought []bool
	for c := range customers {
		u := rng.NormFloat64() // the customer's own propensity
		v := rng.NormFloat64() // what candidate A alone makes of the customer
		fold := c % 2
		for k := range cutoffs {
			y := u+0.3*rng.NormFloat64() > 0.8
			sig := 0.0
			if y {
				sig = 1
			}
			shared := u + rng.NormFloat64()
			a = append(a, 0.6*sig+shared+0.6*v+0.3*rng.NormFloat64())
			b = append(b, 0.3*sig+shared+0.5*rng.NormFloat64())
			stratum = append(stratum, 2*k+fold)
			cluster = append(cluster, c)
			bought = append(bought, y)
		}
	}
	_, phiA := newStrataOrder(a, stratum, 6).influence(bought)
	_, phiB := newStrataOrder(b, stratum, 6).influence(bought)
	got := pairedSE(phiA, phiB, cluster, customers)

	const reps = 4000
	var sum, sum2 float64
	for range reps {
		var ra, rb []float64
		var rs []int
		var ry []bool
		for range customers {
			c := rng.IntN(customers)
			for k := c * cutoffs; k < (c+1)*cutoffs; k++ {
				ra, rb = append(ra, a[k]), append(rb, b[k])
				rs, ry = append(rs, stratum[k]), append(ry, bought[k])
			}
		}
		d := newStrataOrder(ra, rs, 6).auc(ry) - newStrataOrder(rb, rs, 6).auc(ry)
		sum += d
		sum2 += d * d
	}
	boot := math.Sqrt((sum2 - sum*sum/reps) / (reps - 1))
	t.Logf("paired SE: DeLong %.5f, customer bootstrap %.5f", got, boot)
	if math.Abs(got/boot-1) > 0.1 {
		t.Errorf("DeLong paired SE %.5f, bootstrap %.5f: differ by more than 10%%", got, boot)
	}
	// Counting every row as independent understates it: A's customer effect
	// moves a customer's rows together.
	rows := make([]int, len(a))
	for k := range rows {
		rows[k] = k
	}
	naive := pairedSE(phiA, phiB, rows, len(rows))
	t.Logf("rows as independent: %.5f", naive)
	if naive > 0.9*boot {

		t.Errorf("rows as independent: SE %.5f, want below the customer bootstrap's %.5f by 10%% or more", naive, boot)
	}
}

func TestChoiceRule(t *testing.T) {
	// Five candidates on 200 customers of one stratum, the last the merchant's
	// own (AUC about 0.75). Candidates 0 and 2 rank perfectly (AUC 1, far more
	// than 1.645 SEs above it), 1 is the own model's scores again (difference
	// 0, SE 0: no evidence), 3 ranks at random. The rule keeps the own model
	// unless a more global one is significantly better, and of those picks
	// the most local: candidate 2. With a margin no difference can pass, the
	// own model.
	rng := rand.New(rand.NewPCG(5, 6))
	cv := &crossFitted{score: make([][]float64, 5), customers: map[string]int{}}
	for k := range 200 {
		y := k%4 == 0
		v := 0.0
		if y {
			v = 1
		}
		own := v + 1.5*rng.NormFloat64()
		cv.stratum, cv.customer, cv.bought = append(cv.stratum, 0), append(cv.customer, k), append(cv.bought, y)
		cv.customers[string(rune(k))] = k
		for i, s := range []float64{v, own, v, rng.Float64(), own} {
			cv.score[i] = append(cv.score[i], s)
		}
	}
	if got := cv.measure(1, DefaultZ); got != 2 {
		t.Errorf("chosen %d (AUCs %v, SEs %v), want 2", got, cv.auc, cv.se)
	}
	if cv.auc[0] != 1 || cv.auc[2] != 1 || cv.se[1] != 0 || cv.se[4] != 0 || cv.auc[1] != cv.auc[4] {
		t.Errorf("AUCs %v, SEs %v: want 1 for candidates 0 and 2 and no difference for 1", cv.auc, cv.se)
	}
	if got := cv.measure(1, 1e9); got != 4 {
		t.Errorf("margin 1e9: chosen %d, want the own model, 4", got)
	}
}
