package api

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/kairos-fl/kairos/api/apiclient"
	"github.com/kairos-fl/kairos/dp"
)

// TestClientProblems runs apiclient against the server on a loopback
// listener over a fault-injecting service, and checks that every failure comes
// back as a *apiclient.Problem with the server's status and type.
func TestClientProblems(t *testing.T) {
	svc := &fakeService{}
	f := newFixture(t, svc, Options{})
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	ctx := t.Context()
	client := func(token string) *apiclient.Client {
		c, err := apiclient.New(ts.URL+"/", f.tokens[token], apiclient.WithHTTPClient(ts.Client()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	m1 := client("m1")

	// Problems come back as *apiclient.Problem.
	tests := []struct {
		name   string
		call   func() error
		status int
		typ    string
	}{
		{"no token", func() error { _, err := client("none").Models(ctx); return err }, 401, apiclient.TypeUnauthorized},
		{"wrong role", func() error { _, err := m1.Budgets(ctx); return err }, 403, apiclient.TypeForbidden},
		{"not found", func() error { _, err := m1.Model(ctx, 7); return err }, 404, apiclient.TypeNotFound},
		{"foreign envelope", func() error { _, err := m1.SubmitUpdate(ctx, "r1", f.envelope(t, "m2", "r1")); return err }, 403, apiclient.TypeForbidden},
		{"budget", func() error {
			svc.err = dp.ErrBudgetExhausted
			defer func() { svc.err = nil }()
			_, err := m1.SubmitUpdate(ctx, "r1", f.envelope(t, "m1", "r1"))
			return err
		}, 403, apiclient.TypeBudgetExhausted},
		{"internal", func() error {
			svc.err = errors.New("boom")
			defer func() { svc.err = nil }()
			_, err := m1.CurrentRound(ctx)
			return err
		}, 500, apiclient.TypeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			p, ok := errors.AsType[*apiclient.Problem](err)
			if !ok {
				t.Fatalf("got %T %v, want *apiclient.Problem", err, err)
			}
			if p.Status != tt.status || p.Type != tt.typ {
				t.Errorf("got %d %s, want %d %s", p.Status, p.Type, tt.status, tt.typ)
			}
			if !apiclient.IsProblem(err, tt.typ) {
				t.Errorf("IsProblem(err, %q) = false", tt.typ)
			}
			if p.Temporary() != (tt.status >= 500) {
				t.Errorf("Temporary() = %v for %d", p.Temporary(), tt.status)
			}
		})
	}
}
