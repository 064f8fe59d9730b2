package secureplan

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/secagg"
)

// TestDecodeRefusesHugeDegree: the plan's neighbour degree had no bound
// below the cohort, so a malicious aggregator could list 100,000 merchants
// (1.5 MB of plan) as a complete graph: each merchant then shares its two
// secrets with 99,999 neighbours at a threshold of 50,000 (some 10^10 field
// operations), runs a key agreement and seals a box per neighbour, for
// hours, in a round it cannot leave. The aggregator's own plans stay far
// below the bound (ChooseDegree: 366 neighbours for a million merchants),
// so a plan above secagg.MaxDegree is refused; a complete graph of
// MaxDegree+1 merchants is still accepted.
func TestDecodeRefusesHugeDegree(t *testing.T) {
	withCohort := func(n, degree, threshold int) error {
		p := testPlan(t)
		p.Merchants = make([]string, n)
		for i := range p.Merchants {
			p.Merchants[i] = fmt.Sprintf("m%d", i)
		}
		p.Degree, p.Threshold, p.MinSurvivors = degree, threshold, threshold
		_, err := Decode(p)
		return err
	}
	if err := withCohort(secagg.MaxDegree+1, secagg.MaxDegree, secagg.MaxDegree/2+1); err != nil {
		t.Errorf("complete graph of %d merchants: %v", secagg.MaxDegree+1, err)
	}
	for _, tt := range []struct{ n, degree, threshold int }{
		{100_000, 99_999, 50_000},
		{secagg.MaxDegree + 2, secagg.MaxDegree + 1, secagg.MaxDegree/2 + 1},
		{5000, 2 * secagg.MaxDegree, secagg.MaxDegree + 1},
	} {
		err := withCohort(tt.n, tt.degree, tt.threshold)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "degree") {
			t.Errorf("%d merchants, degree %d: %v; want ErrInvalid naming the degree", tt.n, tt.degree, err)
		}
	}
}
