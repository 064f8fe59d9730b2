package policies

import (
	"strings"
	"testing"
	"time"
)

func TestRetrainingParsed(t *testing.T) {
	src := okHead + "retraining:\n  evaluate_every: 30d\n  auc_drop: 0.02\n  max_model_age: 2160h\n  campaign_rounds: 10\n  min_merchants: 2\n"
	p, err := Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := p.Retraining()
	want := Retraining{EvaluateEvery: 30 * 24 * time.Hour, AUCDrop: 0.02, MaxModelAge: 90 * 24 * time.Hour,
		CampaignRounds: 10, PlannedEvaluations: DefaultPlannedEvaluations, MinMerchants: 2}
	if !ok || got != want {
		t.Fatalf("Retraining() = %+v, %v; want %+v, true", got, ok, want)
	}
	// Format writes it back: same hash; and the block changes the hash.
	back, err := Parse("formatted.yaml", p.Format())
	if err != nil {
		t.Fatalf("parse Format output: %v\n%s", err, p.Format())
	}
	if back.Hash() != p.Hash() {
		t.Errorf("hash after Format: got %s, want %s", back.Hash(), p.Hash())
	}
	plain, err := Parse("policy.yaml", []byte(okHead))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Hash() == p.Hash() {
		t.Error("the retraining block does not change the policy hash")
	}
	if _, ok := plain.Retraining(); ok {
		t.Error("a policy without the block reports a retraining policy")
	}
}

func TestRetrainingErrors(t *testing.T) {
	block := func(lines ...string) string { return okHead + "retraining:\n  " + strings.Join(lines, "\n  ") + "\n" }
	ok := []string{"evaluate_every: 30d", "auc_drop: 0.02", "campaign_rounds: 5"}
	with := func(i int, line string) string {
		l := append([]string(nil), ok...)
		l[i] = line
		return block(l...)
	}
	tests := []struct{ name, src, want string }{
		{"bad period", with(0, "evaluate_every: monthly"), `policy.yaml:12:19: retraining.evaluate_every: "monthly" is not a duration such as 30d or 720h`},
		{"period in days not a number", with(0, "evaluate_every: xd"), `policy.yaml:12:19: retraining.evaluate_every: "xd" is not a number of days such as 30d`},
		{"period too short", with(0, "evaluate_every: 10m"), `policy.yaml:12:19: retraining.evaluate_every: must be at least 1h, got 10m`},
		{"drop of one", with(1, "auc_drop: 1"), `policy.yaml:13:13: retraining.auc_drop: must be in (0, 1), got 1`},
		{"drop as text", with(1, "auc_drop: two"), `policy.yaml:13:13: retraining.auc_drop: want a number, got "two"`},
		{"no rounds", with(2, "campaign_rounds: 0"), `policy.yaml:14:20: retraining.campaign_rounds: must be at least 1, got 0`},
		{"missing drop", block("evaluate_every: 30d", "campaign_rounds: 5"), `policy.yaml:12:3: retraining: missing "auc_drop"`},
		{"unknown key", block(append(ok, "auc_threshold: 0.1")...), `policy.yaml:15:3: unknown key "auc_threshold"`},
		{"negative age", block(append(ok, "max_model_age: -5d")...), `policy.yaml:15:18: retraining.max_model_age: "-5d" is not a number of days such as 30d`},
		{"negative planned evaluations", block(append(ok, "planned_evaluations: -1")...), `policy.yaml:15:24: retraining.planned_evaluations: must be at least 0, got -1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("policy.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded, want %s", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}
