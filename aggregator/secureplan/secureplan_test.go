package secureplan

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp/distributed"
)

// testPlan is a valid plan of 4 merchants over 7 parameters (8 with the count).
func testPlan(t testing.TB) *protocol.SecurePlan {
	t.Helper()
	var seed distributed.Seed
	seed[0] = 7
	p, err := distributed.MakePlan(distributed.PlanOptions{
		Dim: 8, Clip: 1, MinCohort: 3, MaxCohort: 4, MaxCustomers: 500, SamplingRate: 0.2, Steps: 5, Epsilon: 1, Delta: 1e-6, Seed: seed,
	})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := p.Params.Release(3, 0.2, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := json.Marshal(p.Params)
	rj, _ := json.Marshal(rel)
	return &protocol.SecurePlan{
		Seed: hex.EncodeToString(seed[:]), Merchants: []string{"a", "b", "c", "d"}, Degree: 3, Threshold: 2, MinSurvivors: 3,
		Encoding: enc, Release: rj, CountScale: 0.5,
	}
}

// TestDecode: a valid plan decodes to the config both sides run; each field
// that would let the two sides disagree, or weaken the guarantee, is refused.
func TestDecode(t *testing.T) {
	p := testPlan(t)
	r, err := Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Config; len(got.Clients) != 4 || got.Clients[3] != 4 || got.Bits != r.Params.Bits || got.Length != 8 || got.MinSurvivors != 3 {
		t.Errorf("config %+v", got)
	}
	if !r.Config.Consistency {
		t.Error("decoded config without the consistency check: a live round must always run it")
	}
	if ID(p, "c") != 3 || ID(p, "zz") != 0 {
		t.Errorf("ids: c %d, zz %d; want 3, 0", ID(p, "c"), ID(p, "zz"))
	}
	mutate := []struct {
		name string
		f    func(p *protocol.SecurePlan)
	}{
		{"seed", func(p *protocol.SecurePlan) { p.Seed = p.Seed[:10] }},
		{"rotation seed", func(p *protocol.SecurePlan) { p.Seed = strings.Repeat("0", 64) }},
		{"min survivors below the cohort", func(p *protocol.SecurePlan) { p.MinSurvivors = 2 }},
		{"release", func(p *protocol.SecurePlan) { p.Release = []byte(`{"mechanism":"ddgauss","q":0.2,"steps":1}`) }},
		{"count scale", func(p *protocol.SecurePlan) { p.CountScale = 1 }},
		{"threshold", func(p *protocol.SecurePlan) { p.Threshold = 1 }},
		{"unknown field", func(p *protocol.SecurePlan) {
			p.Encoding = append(p.Encoding[:len(p.Encoding)-1], []byte(`,"x":1}`)...)
		}},
	}
	for _, m := range mutate {
		q := testPlan(t)
		m.f(q)
		if _, err := Decode(q); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", m.name, err)
		}
	}
}

// TestContribution: the layout keeps the norm within the clip and puts the
// count scale last, whatever the gradient's norm.
func TestContribution(t *testing.T) {
	r, err := Decode(testPlan(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, scale := range []float64{0, 0.1, 10} {
		g := []float64{3, 4, 0, 0, 0, 0, 0} // norm 5
		for i := range g {
			g[i] *= scale
		}
		c, err := r.Contribution(g)
		if err != nil {
			t.Fatal(err)
		}
		var n2 float64
		for _, x := range c {
			n2 += x * x
		}
		want := math.Min(5*scale, math.Sqrt(0.75)) // √(C² − s²) with s = 0.5
		if math.Abs(math.Sqrt(n2-0.25)-want) > 1e-12 || c[7] != 0.5 {
			t.Errorf("scale %v: gradient norm %v, count %v; want %v, 0.5", scale, math.Sqrt(n2-0.25), c[7], want)
		}
	}
	if _, err := r.Contribution(make([]float64, 8)); err == nil {
		t.Error("a gradient of the wrong length accepted")
	}
}

// FuzzDecode: any plan JSON decodes or is refused without panicking, and a
// decoded one yields a valid SecAgg+ config.
func FuzzDecode(f *testing.F) {
	b, _ := json.Marshal(testPlan(f))
	f.Add(b)
	f.Add([]byte(`{"seed":"00","merchants":["a"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p protocol.SecurePlan
		if json.Unmarshal(data, &p) != nil {
			return
		}
		r, err := Decode(&p)
		if err != nil {
			return
		}
		if err := r.Config.Validate(); err != nil {
			t.Fatalf("decoded an invalid config: %v", err)
		}
	})
}
