package stream

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
)

// TestScoreFailureLogsNoCustomerID: when the model cannot score a customer's
// state (here a model of one feature against the live engine's full
// vector), the processor logs the fault without the customer's raw id, which
// the merchant's log shipping would otherwise carry off its machine (round 6,
// found not fixed).
func TestScoreFailureLogsNoCustomerID(t *testing.T) {
	f := newScoringFixture(t)
	const id = "anna.example@shop.test"
	f.cust[id] = f.cust["c1"]
	small, err := feature.NewSchema([]string{"recency_days"})
	must(t, err)
	p := f.processor(recencyModel(t, small))
	var buf bytes.Buffer
	p.cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	if _, changed := p.rescore(id); changed {
		t.Fatal("a failed score reported a threshold crossing")
	}
	if !strings.Contains(buf.String(), "cannot score") {
		t.Fatalf("no log of the failure: %q", buf.String())
	}
	if strings.Contains(buf.String(), id) {
		t.Errorf("the log names the customer: %q", buf.String())
	}
}
