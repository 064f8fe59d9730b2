package compliance

import (
	"context"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// LoadModels returns the model registry in version order, without model
// files, the active version marked.
func LoadModels(ctx context.Context, st aggregator.Store) ([]protocol.ModelVersion, error) {
	var recs []aggregator.ModelRecord
	var active int
	err := st.InTx(ctx, func(tx aggregator.Tx) (err error) {
		if recs, err = tx.Models(ctx); err != nil || len(recs) == 0 {
			return err
		}
		active, err = tx.ActiveVersion(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load models: %w", err)
	}
	out := make([]protocol.ModelVersion, 0, len(recs))
	for _, r := range recs {
		m := r.ModelVersion
		m.Model = nil
		m.Active = m.Version == active
		out = append(out, m)
	}
	return out, nil
}

// PolicySeen is one policy hash in the registry: the versions published
// under it.
type PolicySeen struct {
	Hash         string    `json:"hash"`
	FirstVersion int       `json:"first_version"`
	LastVersion  int       `json:"last_version"`
	Versions     int       `json:"versions"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	// Current is true for the hash of the policy the reviewer handed in.
	Current bool `json:"current"`
}

// PolicyHistory lists the policy hashes of the registry in the order they
// first appear (by version); current is the hash of the policy in force, which
// is listed (with no versions) even when nothing was published under it.
func PolicyHistory(models []protocol.ModelVersion, current string) []PolicySeen {
	var out []PolicySeen
	idx := map[string]int{}
	for _, m := range models {
		i, ok := idx[m.PolicyHash]
		if !ok {
			i = len(out)
			idx[m.PolicyHash] = i
			out = append(out, PolicySeen{Hash: m.PolicyHash, FirstVersion: m.Version, FirstSeen: m.PublishedAt.UTC(),
				Current: m.PolicyHash == current})
		}
		p := &out[i]
		p.Versions++
		if m.Version < p.FirstVersion {
			p.FirstVersion = m.Version
		}
		if m.Version > p.LastVersion {
			p.LastVersion = m.Version
		}
		if m.PublishedAt.Before(p.FirstSeen) {
			p.FirstSeen = m.PublishedAt.UTC()
		}
		if m.PublishedAt.After(p.LastSeen) {
			p.LastSeen = m.PublishedAt.UTC()
		}
	}
	if _, ok := idx[current]; !ok && current != "" {
		out = append(out, PolicySeen{Hash: current, Current: true})
	}
	return out
}
