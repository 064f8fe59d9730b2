package aggregator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/audit"
)

// RecordTokenIssued records in the audit log that actor issued an API token:
// its id and subject as audit identifiers (stored as their HMACs), its role,
// merchant scope and expiry in the clear. The caller hands the token out only
// after this returns nil (fail closed: no record, no token).
func (s *Service) RecordTokenIssued(ctx context.Context, actor, jti, subject, role string, merchants []string, expiresAt time.Time) error {
	if jti == "" || subject == "" {
		return fmt.Errorf("record token issue: %w: empty token id or subject", ErrPolicy)
	}
	rec := audit.Record{
		Actor: actor, Action: "token.issue", Object: "token", Outcome: audit.OutcomeOK,
		Identifiers: map[string]string{"token": jti, "subject": subject},
		Details: map[string]string{
			"role": role, "merchants": strings.Join(merchants, ","),
			"expires_at": expiresAt.UTC().Format(time.RFC3339),
		},
	}
	if err := s.appendAudit(ctx, rec); err != nil {
		return fmt.Errorf("record token issue: %w", err)
	}
	return nil
}
