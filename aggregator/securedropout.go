package aggregator

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kairos-fl/kairos/aggregator/secagg"
)

// Secure-round dropouts (privacy.md §16, round 7). A merchant that drops out
// of a secure round before masking released nothing and is not debited, but
// it costs the round a survivor: at a cohort of exactly min_cohort, the
// round. So the aggregator records, per merchant, the secure rounds it
// dropped out of before masking (Merchant.SecureDropouts: round seqs within
// the last SecureDropoutWindow rounds), and a round in which it masks clears
// the record: only dropouts with no masked input between them count. At
// SecureDropoutLimit of them the merchant is left out of secure cohorts for
// the next SecureExclusionRounds rounds (openRound), then readmitted with a
// clean record of dropouts. Its count of exclusions survives the readmission
// (round 8): each later exclusion lasts twice the one before, up to
// SecureExclusionMaxRounds, so a repeat offender cannot fail
// SecureDropoutLimit rounds in every SecureExclusionRounds for ever. The
// count decays (round 8 row 13): after SecureExclusionForgiveRounds secure
// rounds the merchant masked in with no dropout before masking between
// them, it halves (3 → 1, 1 → 0), so an honest merchant's rare outages stop
// compounding; an offender that keeps dropping out never gets there. Each
// exclusion, readmission and halving is one audit entry.

// secureDropouts updates the cohort's dropout records at the close of secure
// round r's last stage before masking (or its failure before then): senders
// are the secagg ids of the merchants that sent that stage's message (at the
// mask stage, the maskers), every other merchant of the plan dropped out
// before masking. It returns the audit transitions of the exclusions.
func (s *Service) secureDropouts(ctx context.Context, tx Tx, r RoundRecord, cfg secagg.Config, senders []uint32, masked bool) ([]transition, error) {
	var out []transition
	for _, id := range cfg.Clients {
		merchant := r.Plan.Secure.Merchants[id-1]
		m, err := tx.Merchant(ctx, merchant)
		if err != nil {
			return nil, fmt.Errorf("secure round %s: dropouts: %w", r.ID, err)
		}
		sent := slices.Contains(senders, id)
		if sent && masked {
			if len(m.SecureDropouts) == 0 && m.SecureExclusions == 0 {
				continue
			}
			// It masked: earlier dropouts were not a pattern, and a long
			// enough run of such rounds forgives half its exclusions.
			exclusions, clean := m.SecureExclusions, 0
			if exclusions > 0 {
				clean = m.SecureCleanRounds + 1
				if n := s.rc().SecureExclusionForgiveRounds; clean >= n {
					exclusions, clean = exclusions/2, 0
					out = append(out, transition{round: r, action: "merchant.secure.forgive", merchant: merchant,
						reason: fmt.Sprintf("%s masked in %d secure rounds in a row since its last dropout before masking: exclusions %d → %d",
							merchant, n, m.SecureExclusions, exclusions)})
				}
			}
			if err := tx.SetMerchantSecureDropouts(ctx, merchant, nil, m.SecureExcludedUntil, exclusions, clean); err != nil {
				return nil, fmt.Errorf("secure round %s: %w", r.ID, err)
			}
			continue
		}
		if sent {
			continue // the round failed before its stage needed this merchant again
		}
		window := int64(s.rc().SecureDropoutWindow)
		recent := slices.DeleteFunc(slices.Clone(m.SecureDropouts), func(seq int64) bool {
			return seq <= r.Seq-window || seq >= r.Seq
		})
		recent = append(recent, r.Seq)
		until, exclusions := m.SecureExcludedUntil, m.SecureExclusions
		if len(recent) >= s.rc().SecureDropoutLimit {
			n := exclusionRounds(s.rc().SecureExclusionRounds, s.rc().SecureExclusionMaxRounds, exclusions)
			until, exclusions = r.Seq+int64(n), exclusions+1
			out = append(out, transition{round: r, action: "merchant.secure.exclude", merchant: merchant,
				reason: fmt.Sprintf("%s dropped out before masking in secure rounds %s (%d within the last %d rounds, none masked between): exclusion %d, left out of secure cohorts for %d rounds, through round seq %d",
					merchant, joinSeqs(recent), len(recent), window, exclusions, n, until)})
			recent = nil
		}
		// A dropout restarts the clean stretch that forgives.
		if err := tx.SetMerchantSecureDropouts(ctx, merchant, recent, until, exclusions, 0); err != nil {
			return nil, fmt.Errorf("secure round %s: %w", r.ID, err)
		}
	}
	return out, nil
}

// secureReadmit readmits to secure cohorts every merchant whose exclusion
// ended with round r, so that the next round may sample it, and returns the
// audit transitions of the readmissions.
func (s *Service) secureReadmit(ctx context.Context, tx Tx, r RoundRecord) ([]transition, error) {
	ms, err := tx.Merchants(ctx)
	if err != nil {
		return nil, fmt.Errorf("secure round %s: readmit: %w", r.ID, err)
	}
	var out []transition
	for _, m := range ms {
		if m.SecureExcludedUntil == 0 || m.SecureExcludedUntil > r.Seq {
			continue
		}
		if err := tx.SetMerchantSecureDropouts(ctx, m.ID, nil, 0, m.SecureExclusions, m.SecureCleanRounds); err != nil {
			return nil, fmt.Errorf("secure round %s: readmit: %w", r.ID, err)
		}
		out = append(out, transition{round: r, action: "merchant.secure.readmit", merchant: m.ID,
			reason: fmt.Sprintf("%s readmitted to secure cohorts: its exclusion through round seq %d ended", m.ID, m.SecureExcludedUntil)})
	}
	return out, nil
}

// exclusionRounds is the length of a merchant's exclusion after prior
// ones: base doubled per prior exclusion, at most limit.
func exclusionRounds(base, limit, prior int) int {
	n := base
	for range prior {
		if n > limit/2 {
			return limit
		}
		n *= 2
	}
	return min(n, limit)
}

// secureExcluded reports whether m is left out of the secure cohort of
// round seq.
func secureExcluded(m Merchant, seq int64) bool {
	return m.SecureExcludedUntil != 0 && seq <= m.SecureExcludedUntil
}

func joinSeqs(seqs []int64) string {
	fs := make([]string, len(seqs))
	for i, seq := range seqs {
		fs[i] = strconv.FormatInt(seq, 10)
	}
	return strings.Join(fs, ", ")
}
