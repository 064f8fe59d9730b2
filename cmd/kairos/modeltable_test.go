package main

import (
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/protocol"
)

// TestModelTableRedacted: a version listed with its contributions redacted
// (the token's role may not see them) shows "-" for its merchants and max
// ε, not 0 merchants at ε 0; one listed in full shows both.
func TestModelTableRedacted(t *testing.T) {
	var b strings.Builder
	err := writeModelTable(&b, []protocol.ModelVersion{
		{Version: 2, Active: true, Parent: 1, Round: "round-000002", Merge: "fedavg", Contributions: []protocol.Contribution{{Merchant: "m1", Epsilon: 0.42}, {Merchant: "m2", Epsilon: 0.31}}},
		{Version: 3, Active: true, Parent: 2, Round: "round-000003", Merge: "fedavg", Contributions: []protocol.Contribution{}, ContributionsRedacted: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", b.String())
	}
	full, redacted := strings.Fields(lines[1]), strings.Fields(lines[2])
	if full[5] != "fedavg" || full[6] != "2" || full[7] != "0.42" {
		t.Errorf("full row %q, want 2 merchants, max ε 0.42", lines[1])
	}
	if redacted[6] != "-" || redacted[7] != "-" {
		t.Errorf("redacted row %q, want - for merchants and max ε", lines[2])
	}
}

// TestModelTableWithdrawn: a version a rollback withdrew says so, with the
// seq of the rollback's audit entry when it is known (privacy.md §16,
// round 8 row 12).
func TestModelTableWithdrawn(t *testing.T) {
	var b strings.Builder
	err := writeModelTable(&b, []protocol.ModelVersion{
		{Version: 2, Active: true, Parent: 1, Round: "round-000002", Merge: "fedavg"},
		{Version: 3, Parent: 2, Round: "round-000003", Merge: "fedavg", Withdrawn: true, WithdrawnSeq: 17},
		{Version: 4, Parent: 3, Round: "round-000004", Merge: "fedavg", Withdrawn: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, want := range []string{"*", "withdrawn@17", "withdrawn"} {
		if got := strings.Fields(lines[i+1])[1]; got != want {
			t.Errorf("row %q: status %q, want %q", lines[i+1], got, want)
		}
	}
}
