package postgres

import (
	"context"
	"fmt"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/store/internal/auditsql"
)

var _ compliance.AuditQuerier = (*Store)(nil)

// QueryAuditEntries filters audit entries in the database (see
// compliance.AuditQuerier). The identifier filter matches any value of the
// identifiers jsonb object.
func (s *Store) QueryAuditEntries(ctx context.Context, f compliance.AuditFilter, upTo uint64) ([]audit.Entry, uint64, error) {
	out, last, err := auditsql.Query(ctx, pgQuerier{s.pool}, auditDialect, f, upTo)
	if err != nil {
		return nil, 0, fmt.Errorf("query audit entries: %w", err)
	}
	return out, last, nil
}
