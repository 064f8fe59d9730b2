package report

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/policies"
)

// ActionCount is how often one action occurs in the audit log, by outcome.
type ActionCount struct {
	Action string `json:"action"`
	OK     int    `json:"ok"`
	Denied int    `json:"denied"`
	Error  int    `json:"error"`
}

// Total is the number of entries of the action.
func (a ActionCount) Total() int { return a.OK + a.Denied + a.Error }

// Event is one administrative entry of the audit log: what people and
// merchants did to the federation (enrolments, revocations, rollbacks,
// reloads, cancelled rounds, stops), as opposed to the round machinery and
// predictions, which the action counts cover.
type Event struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Object  string            `json:"object"`
	Outcome string            `json:"outcome"`
	Reason  string            `json:"reason,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// DetailLine is the event's details as "k=v, …" in key order.
func (e Event) DetailLine() string {
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + e.Details[k]
	}
	return strings.Join(parts, ", ")
}

// MaxEvents bounds the administrative events a report lists (the latest).
const MaxEvents = 500

// routine reports whether an action is the round machinery or a prediction
// (counted, not listed one by one).
func routine(action string) bool {
	return strings.HasPrefix(action, "round.") || strings.HasPrefix(action, "predict")
}

// localCap is a merchant's own cap as its merchant.stop entry states it.
type localCap struct{ eps, delta float64 }

// activity reads the whole audit log: the count of every action by outcome
// (sorted by action), the latest MaxEvents administrative events (oldest
// first) with how many were left out, and each merchant's local cap from
// its latest merchant.stop entry that states one.
func activity(ctx context.Context, src audit.Source) ([]ActionCount, []Event, int, map[string]localCap, error) {
	counts := map[string]*ActionCount{}
	var events []Event
	dropped := 0
	caps := map[string]localCap{}
	const page = 1000
	for from := uint64(1); ; {
		es, err := src.AuditEntries(ctx, from, page)
		if err != nil {
			return nil, nil, 0, nil, fmt.Errorf("read audit log: %w", err)
		}
		for _, e := range es {
			c := counts[e.Action]
			if c == nil {
				c = &ActionCount{Action: e.Action}
				counts[e.Action] = c
			}
			switch e.Outcome {
			case audit.OutcomeOK:
				c.OK++
			case audit.OutcomeDenied:
				c.Denied++
			default:
				c.Error++
			}
			if e.Action == "merchant.stop" && e.Outcome == audit.OutcomeOK {
				if id, ok := strings.CutPrefix(e.Actor, "merchant:"); ok {
					if v, err := strconv.ParseFloat(e.Details["local_epsilon_cap"], 64); err == nil && v > 0 {
						d, _ := strconv.ParseFloat(e.Details["local_delta"], 64)
						caps[id] = localCap{eps: v, delta: d}
					}
				}
			}
			if routine(e.Action) {
				continue
			}
			events = append(events, Event{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Object: e.Object,
				Outcome: string(e.Outcome), Reason: e.Reason, Details: e.Details})
			if len(events) > MaxEvents {
				events = events[1:]
				dropped++
			}
		}
		if len(es) < page {
			break
		}
		from = es[len(es)-1].Seq + 1
	}
	out := make([]ActionCount, 0, len(counts))
	for _, c := range counts {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ActionCount) int { return strings.Compare(a.Action, b.Action) })
	return out, events, dropped, caps, nil
}

// AddLocalCaps sets the LocalCap and LocalDelta of every budget in bs whose
// merchant stated its own cap in a merchant.stop entry of the log (the
// latest one), as Gather does: the standalone charts draw what the report
// draws.
func AddLocalCaps(ctx context.Context, src audit.Source, bs []compliance.Budget) error {
	_, _, _, caps, err := activity(ctx, src)
	if err != nil {
		return err
	}
	applyLocalCaps(bs, caps)
	return nil
}

func applyLocalCaps(bs []compliance.Budget, caps map[string]localCap) {
	for i, b := range bs {
		if c, ok := caps[b.Merchant]; ok {
			bs[i].LocalCap, bs[i].LocalDelta = c.eps, c.delta
		}
	}
}

// PolicyView is the policy in force as the report shows it: every
// merchant's effective terms and every partner's grant, besides the hash.
type PolicyView struct {
	Federation   string                    `json:"federation"`
	Hash         string                    `json:"hash"`
	Merge        string                    `json:"merge"`
	MaxShare     float64                   `json:"max_weight_share"`
	NormBound    float64                   `json:"norm_bound,omitempty"`
	TrimFraction float64                   `json:"trim_fraction,omitempty"`
	Merchants    []policies.MerchantPolicy `json:"merchants"`
	Partners     []policies.PartnerPolicy  `json:"partners"`
}

func policyView(p *policies.Policy) (PolicyView, error) {
	agg := p.Aggregation()
	v := PolicyView{Federation: p.Federation(), Hash: p.Hash(), Merge: string(agg.Merge), MaxShare: agg.WeightShareCap(),
		NormBound: agg.NormBound, TrimFraction: agg.TrimFraction}
	for _, id := range p.Merchants() {
		m, err := p.Merchant(id)
		if err != nil {
			return v, err
		}
		v.Merchants = append(v.Merchants, m)
	}
	for _, id := range p.Partners() {
		q, err := p.Partner(id)
		if err != nil {
			return v, err
		}
		v.Partners = append(v.Partners, q)
	}
	return v, nil
}
