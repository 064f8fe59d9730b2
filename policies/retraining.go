package policies

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Retraining is the federation's drift policy: how often the aggregator runs
// a federated DP evaluation of the active model, and when it opens a
// retraining campaign (a sequence of training rounds publishing a new model
// version). Written as
//
//	retraining:
//	  evaluate_every: 30d        # scheduled evaluation period (d or Go units: 720h)
//	  auc_drop: 0.02             # retrain when AUC@30 falls more than this below the baseline, in (0, 1)
//	  max_model_age: 90d         # optional: retrain a model older than this whatever its AUC
//	  campaign_rounds: 10        # training rounds per campaign (the first training is one), ≥ 1
//	  planned_evaluations: 12    # optional: scheduled evaluations the budget plan reserves (default 12)
//	  min_merchants: 2           # optional: merchants that must afford a campaign (default: the quorum)
//
// A policy without the block has no scheduled evaluations and no campaigns.
type Retraining struct {
	EvaluateEvery time.Duration `json:"evaluate_every"`
	AUCDrop       float64       `json:"auc_drop"`
	// MaxModelAge is 0 when the policy sets none.
	MaxModelAge        time.Duration `json:"max_model_age,omitempty"`
	CampaignRounds     int           `json:"campaign_rounds"`
	PlannedEvaluations int           `json:"planned_evaluations"`
	// MinMerchants is 0 when the policy sets none (the aggregator's quorum applies).
	MinMerchants int `json:"min_merchants,omitempty"`
}

// DefaultPlannedEvaluations is planned_evaluations when the policy omits it:
// a year of monthly evaluations.
const DefaultPlannedEvaluations = 12

// Retraining returns the retraining policy and false when the policy has none.
func (p *Policy) Retraining() (Retraining, bool) {
	if p.retraining == nil {
		return Retraining{}, false
	}
	return *p.retraining, true
}

// ParseDays reads a duration written as whole days ("30d") or in Go's units
// ("720h", "90m").
func ParseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 100*366 {
			return 0, fmt.Errorf("%q is not a number of days such as 30d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 30d or 720h", s)
	}
	return v, nil
}

// retrainingBlock reads the retraining mapping.
func (p *parser) retrainingBlock(n *yaml.Node) *Retraining {
	r := &Retraining{PlannedEvaluations: DefaultPlannedEvaluations}
	have := map[string]bool{}
	dur := func(v *yaml.Node, name string) time.Duration {
		s, ok := p.str(v, "retraining."+name)
		if !ok {
			return 0
		}
		d, err := ParseDays(s)
		if err != nil {
			p.errorf(v, "retraining.%s: %v", name, err)
			return 0
		}
		if d < time.Hour {
			p.errorf(v, "retraining.%s: must be at least 1h, got %s", name, s)
			return 0
		}
		return d
	}
	for _, kv := range p.mapping(n, "retraining") {
		k, v := kv.key.Value, kv.value
		have[k] = true
		switch k {
		case "evaluate_every":
			r.EvaluateEvery = dur(v, k)
		case "max_model_age":
			r.MaxModelAge = dur(v, k)
		case "auc_drop":
			if f, ok := p.float(v, "retraining.auc_drop"); ok {
				if !(f > 0 && f < 1) {
					p.errorf(v, "retraining.auc_drop: must be in (0, 1), got %s", v.Value)
				}
				r.AUCDrop = f
			}
		case "campaign_rounds", "planned_evaluations", "min_merchants":
			i, ok := p.int(v, "retraining."+k)
			if !ok {
				continue
			}
			lo := 1
			if k == "planned_evaluations" {
				lo = 0
			}
			if i < lo {
				p.errorf(v, "retraining.%s: must be at least %d, got %s", k, lo, v.Value)
				continue
			}
			switch k {
			case "campaign_rounds":
				r.CampaignRounds = i
			case "planned_evaluations":
				r.PlannedEvaluations = i
			default:
				r.MinMerchants = i
			}
		default:
			p.unknown(kv.key)
		}
	}
	if n.Kind == yaml.MappingNode {
		for _, req := range []string{"evaluate_every", "auc_drop", "campaign_rounds"} {
			if !have[req] {
				p.errorf(n, "retraining: missing %q", req)
			}
		}
	}
	return r
}
