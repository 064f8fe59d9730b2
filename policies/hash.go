package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// hashDomain separates policy hashes from every other SHA-256 in Kairos.
const hashDomain = "kairos/policy-hash/v1\n"

// canonicalPolicy is the hashed form: effective values only, every list
// sorted, maps replaced by sorted lists. encoding/json writes struct fields
// in declaration order and floats in their shortest round-trip form, so
// equal values give equal bytes.
type canonicalPolicy struct {
	Version     int              `json:"version"`
	Federation  string           `json:"federation"`
	Aggregation Aggregation      `json:"aggregation"`
	Merchants   []MerchantPolicy `json:"merchants"`
	Partners    []PartnerPolicy  `json:"partners"`
	// TokenTTL is absent from a policy without tokens.max_ttl, so that its
	// hash is what it was before the key existed.
	TokenTTL map[string]time.Duration `json:"token_max_ttl,omitempty"`
	// Retraining is absent from a policy without the block, likewise.
	Retraining *Retraining `json:"retraining,omitempty"`
}

func (p *Policy) canonical() []byte {
	c := canonicalPolicy{
		Version:     p.version,
		Federation:  p.federation,
		Aggregation: p.aggregation,
		Merchants:   make([]MerchantPolicy, 0, len(p.merchants)),
		Partners:    make([]PartnerPolicy, 0, len(p.partners)),
		TokenTTL:    p.tokenTTL,
		Retraining:  p.retraining,
	}
	for _, id := range p.Merchants() {
		m := p.merchants[id]
		if m.Features == nil {
			m.Features = []string{}
		}
		c.Merchants = append(c.Merchants, m)
	}
	for _, id := range p.Partners() {
		c.Partners = append(c.Partners, p.partners[id])
	}
	b, err := json.Marshal(c)
	if err != nil {
		// Only finite floats, strings and ints reach here.
		panic("policies: canonical encoding: " + err.Error())
	}
	return b
}

func (p *Policy) computeHash() string {
	h := sha256.New()
	h.Write([]byte(hashDomain))
	h.Write(p.canonical())
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Format writes the policy back as YAML with every merchant's effective
// rules spelled out: the file Parse reads to a policy with the same Hash.
// Use it to show what a policy really grants.
func (p *Policy) Format() []byte {
	var b strings.Builder
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	// Ids and feature names match patterns without quotes or backslashes, so
	// a plain double-quoted form is exact; quoting keeps 1001 or null strings.
	q := func(s string) string { return `"` + s + `"` }
	qs := func(l []string) string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = q(s)
		}
		return strings.Join(out, ", ")
	}
	rules := func(indent string, m MerchantPolicy) {
		fmt.Fprintf(&b, "%sepsilon_cap: %s\n", indent, num(m.EpsilonCap))
		fmt.Fprintf(&b, "%sdelta: %s\n", indent, num(m.Delta))
		fmt.Fprintf(&b, "%smin_noise_multiplier: %s\n", indent, num(m.MinNoiseMultiplier))
		fmt.Fprintf(&b, "%sclip_norm: %s\n", indent, num(m.ClipNorm))
		fmt.Fprintf(&b, "%smin_customers_per_update: %d\n", indent, m.MinCustomersPerUpdate)
		if m.AllFeatures {
			fmt.Fprintf(&b, "%sallowed_features: [%s]\n", indent, AllFeatures)
		} else {
			fmt.Fprintf(&b, "%sallowed_features: [%s]\n", indent, qs(m.Features))
		}
		fmt.Fprintf(&b, "%sretention_days: %d\n", indent, m.RetentionDays)
		if m.MaxCustomers > 0 {
			fmt.Fprintf(&b, "%smax_customers: %d\n", indent, m.MaxCustomers)
		}
	}
	fmt.Fprintf(&b, "version: %d\nfederation: %s\n", p.version, q(p.federation))
	fmt.Fprintf(&b, "aggregation:\n  merge: %s\n", p.aggregation.Merge)
	if p.aggregation.Merge == MergeTrimmedMean {
		fmt.Fprintf(&b, "  trim_fraction: %s\n", num(p.aggregation.TrimFraction))
	}
	if p.aggregation.NormBound > 0 {
		fmt.Fprintf(&b, "  norm_bound: %s\n", num(p.aggregation.NormBound))
	}
	if p.aggregation.MaxWeightShare > 0 {
		fmt.Fprintf(&b, "  max_weight_share: %s\n", num(p.aggregation.MaxWeightShare))
	}
	if p.aggregation.MinCohort > 0 {
		fmt.Fprintf(&b, "  min_cohort: %d\n", p.aggregation.MinCohort)
	}
	b.WriteString("defaults:\n")
	rules("  ", p.defaults)
	if len(p.regions) > 0 {
		b.WriteString("regions:\n")
		for _, r := range p.regions {
			fmt.Fprintf(&b, "  %s: {}\n", q(r))
		}
	}
	if len(p.merchants) > 0 {
		b.WriteString("merchants:\n")
		for _, id := range p.Merchants() {
			m := p.merchants[id]
			fmt.Fprintf(&b, "  %s:\n", q(id))
			if m.Region != "" {
				fmt.Fprintf(&b, "    region: %s\n", q(m.Region))
			}
			rules("    ", m)
		}
	}
	if len(p.partners) > 0 {
		b.WriteString("partners:\n")
		for _, id := range p.Partners() {
			g := p.partners[id]
			fmt.Fprintf(&b, "  %s:\n    merchants: [%s]\n    rate_per_second: %s\n    burst: %d\n",
				q(id), qs(g.Merchants), num(g.RatePerSecond), g.Burst)
		}
	}
	if len(p.tokenTTL) > 0 {
		b.WriteString("tokens:\n  max_ttl:\n")
		for _, role := range sortedKeys(p.tokenTTL) {
			fmt.Fprintf(&b, "    %s: %s\n", role, q(p.tokenTTL[role].String()))
		}
	}
	if r := p.retraining; r != nil {
		fmt.Fprintf(&b, "retraining:\n  evaluate_every: %s\n  auc_drop: %s\n", q(r.EvaluateEvery.String()), num(r.AUCDrop))
		if r.MaxModelAge > 0 {
			fmt.Fprintf(&b, "  max_model_age: %s\n", q(r.MaxModelAge.String()))
		}
		fmt.Fprintf(&b, "  campaign_rounds: %d\n  planned_evaluations: %d\n", r.CampaignRounds, r.PlannedEvaluations)
		if r.MinMerchants > 0 {
			fmt.Fprintf(&b, "  min_merchants: %d\n", r.MinMerchants)
		}
	}
	return []byte(b.String())
}
