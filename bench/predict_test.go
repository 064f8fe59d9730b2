package bench

import (
	"testing"

	"github.com/kairos-fl/kairos/api"
)

func TestCheckBatchAnswer(t *testing.T) {
	ids := []string{"c1", "c2"}
	ok := func() *api.BatchPrediction {
		return &api.BatchPrediction{Results: []api.BatchItem{
			{Customer: "c1", Within: &api.Within{D30: 0.4}},
			{Customer: "c2", Within: &api.Within{D30: 1}},
		}}
	}
	if err := checkBatchAnswer(ok(), ids); err != nil {
		t.Fatalf("valid answer: %v", err)
	}
	for name, mutate := range map[string]func(*api.BatchPrediction){
		"missing result": func(bp *api.BatchPrediction) { bp.Results = bp.Results[:1] },
		"swapped order":  func(bp *api.BatchPrediction) { bp.Results[0], bp.Results[1] = bp.Results[1], bp.Results[0] },
		"error": func(bp *api.BatchPrediction) {
			bp.Results[1].Error = "no event before as_of"
			bp.Results[1].Within = nil
		},
		"no prediction": func(bp *api.BatchPrediction) { bp.Results[0].Within = nil },
		"probability 0": func(bp *api.BatchPrediction) { bp.Results[0].Within.D30 = 0 },
	} {
		bp := ok()
		mutate(bp)
		if err := checkBatchAnswer(bp, ids); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
