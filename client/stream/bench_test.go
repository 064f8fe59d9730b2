package stream

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// scoringFixture is a processor's in-memory population: 1,000 customers with
// a year of events each, and the models they are scored with: linear, linear
// with the rhythm term, and an MLP.
type scoringFixture struct {
	eng    *feature.LiveEngine
	now    time.Time
	cust   map[string]*entry
	names  []string
	models map[string]*hazard.Model
}

func newScoringFixture(tb testing.TB) scoringFixture {
	eng, err := feature.NewLiveEngine(feature.LiveConfig{})
	must(tb, err)
	f := scoringFixture{eng: eng, now: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC), cust: map[string]*entry{}}
	r := rand.New(rand.NewPCG(3, 4))
	kinds := []model.Kind{model.View, model.View, model.Cart, model.Purchase}
	for i := range 1000 {
		c := "c" + strconv.Itoa(i)
		e := &entry{}
		for range 40 {
			ev := model.Event{Customer: c, Time: f.now.Add(-time.Duration(r.IntN(365*24)) * time.Hour), Kind: kinds[r.IntN(len(kinds))]}
			if ev.Kind == model.Purchase {
				ev.Amount, ev.HasAmount = 20, true
			}
			must(tb, eng.Apply(&e.st, ev))
		}
		f.cust[c] = e
		f.names = append(f.names, c)
	}
	linear := recencyModel(tb, eng.Schema())
	rhythm := recencyModel(tb, eng.Schema())
	must(tb, rhythm.EnableRhythm())
	rhythm.Params[len(rhythm.Params)-2] = -0.5
	mlp, err := hazard.New(hazard.KindMLP, eng.Schema(), hazard.FixedStandardization(eng.Schema()), 8, 0.01)
	must(tb, err)
	for j := mlp.Horizon; j < len(mlp.Params); j++ {
		mlp.Params[j] = r.NormFloat64() * 0.3
	}
	f.models = map[string]*hazard.Model{"linear": linear, "rhythm": rhythm, "mlp8": mlp}
	return f
}

func (f scoringFixture) processor(m *hazard.Model) *Processor {
	return &Processor{cfg: Config{Engine: f.eng, Model: m, Now: func() time.Time { return f.now }}, h7: slices.Index(hazard.Horizons[:], 7), cust: f.cust}
}

// TestRescoreIsPredict: the P(buy within 7 days) the processor keeps for
// each customer (and compares with the threshold) is, bit for bit, Predict's
// Within[7 days] on the customer's features, which Score serves, for every
// kind of model.
func TestRescoreIsPredict(t *testing.T) {
	f := newScoringFixture(t)
	for name, m := range f.models {
		p := f.processor(m)
		for _, c := range f.names {
			p.rescore(c)
			x, err := f.eng.Features(&f.cust[c].st, p.scoreTime(&f.cust[c].st), nil)
			must(t, err)
			pr, err := m.Predict(x)
			must(t, err)
			if got, want := f.cust[c].p7, pr.Within[p.h7]; math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("%s: customer %s: kept P7 %v, Predict's %v", name, c, got, want)
			}
		}
	}
}

// cpuTime is the process's user+system CPU time, which unlike wall time does
// not grow with the other jobs on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRescore is the processor's per-customer work when it seals a
// batch: a customer's features now and their P(buy within 7 days). cpu-ns/op
// is the process's CPU time per customer.
func BenchmarkRescore(b *testing.B) {
	f := newScoringFixture(b)
	for _, name := range []string{"linear", "rhythm", "mlp8"} {
		b.Run(name, func(b *testing.B) {
			p := f.processor(f.models[name])
			b.ReportAllocs()
			i, cpu := 0, cpuTime()
			for b.Loop() {
				p.rescore(f.names[i%len(f.names)])
				i++
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
