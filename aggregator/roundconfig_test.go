package aggregator

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model/fedeval"
)

// TestRoundConfigDefaults: the zero config takes the documented defaults
// (the doc comments of RoundConfig, written out here by hand), and ServerLR's
// default follows the server optimizer.
func TestRoundConfigDefaults(t *testing.T) {
	got, err := RoundConfig{}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := RoundConfig{Deadline: 10 * time.Minute, Quorum: 1, SampleFraction: 1, StepsPerRound: 10, PlannedRounds: 20,
		SamplingRate: 0.05, LearningRate: 0.5, CountNoise: 50, Server: ServerFedAdam, ServerLR: 0.01, ServerTau: 1e-3,
		TickInterval: time.Second, SecureStageTimeout: time.Minute,
		SecureDropoutLimit: 3, SecureDropoutWindow: 10, SecureExclusionRounds: 20, SecureExclusionMaxRounds: 320, SecureExclusionForgiveRounds: 50}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
	avg, err := RoundConfig{Server: ServerFedAvg}.WithDefaults()
	if err != nil || avg.ServerLR != 1 {
		t.Errorf("fedavg: server lr %v, %v; want 1", avg.ServerLR, err)
	}
	cut := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	in := RoundConfig{Quorum: 3, Cutoffs: []time.Time{cut}, Evaluation: &EvaluationConfig{Cutoff: cut.AddDate(0, 2, 0)}}
	out, err := in.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if out.Quorum != 3 || out.Evaluation.Sigma != 10 || !reflect.DeepEqual(out.Evaluation.Edges, fedeval.DefaultEdges()) {
		t.Errorf("evaluation defaults: got quorum %d %+v", out.Quorum, out.Evaluation)
	}
	if in.Evaluation.Sigma != 0 || in.Evaluation.Edges != nil {
		t.Errorf("WithDefaults changed its receiver's evaluation: %+v", in.Evaluation)
	}
	again, err := out.WithDefaults()
	if err != nil || !reflect.DeepEqual(again, out) {
		t.Errorf("defaults twice: got %+v, %v; want %+v", again, err, out)
	}
}

// TestRoundConfigErrors: each bad value is named by its config key; several
// bad values are reported together.
func TestRoundConfigErrors(t *testing.T) {
	cut := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		c    RoundConfig
		want []string
	}{
		{RoundConfig{Quorum: -1}, []string{"rounds.quorum: must be ≥ 1 (got -1"}},
		{RoundConfig{Deadline: -time.Second, TickInterval: -time.Second}, []string{"rounds.deadline: must be positive (got -1s", "rounds.tick_interval: must be positive"}},
		{RoundConfig{SampleFraction: 1.5, SamplingRate: math.NaN()}, []string{"rounds.sample_fraction: must be in (0, 1] (got 1.5", "rounds.sampling_rate: must be in (0, 1] (got NaN"}},
		{RoundConfig{LearningRate: math.Inf(1)}, []string{"rounds.learning_rate: must be a finite number > 0 (got +Inf"}},
		{RoundConfig{L2: -1, NormBound: -1, MaxRounds: -1}, []string{"rounds.l2:", "rounds.norm_bound:", "rounds.max_rounds:"}},
		{RoundConfig{Server: "sgd"}, []string{`rounds.server: "sgd": want fedadam or fedavg`}},
		{RoundConfig{ServerLR: -1, ServerTau: -1, CountNoise: -1}, []string{"rounds.server_lr:", "rounds.server_tau:", "rounds.count_noise:"}},
		{RoundConfig{StepsPerRound: -1, PlannedRounds: -2}, []string{"rounds.steps_per_round: must be in [1, 10000] (merchants' clients refuse more) (got -1", "rounds.planned_rounds: must be ≥ 1 (got -2"}},
		// A careless 1ns ran the round loop's transactions back to back (review round 5).
		{RoundConfig{TickInterval: time.Nanosecond}, []string{"rounds.tick_interval: must be at least 10ms (got 1ns"}},
		// Plans the clients would refuse (protocol.TrainingPlan.CheckSize).
		{RoundConfig{StepsPerRound: 10_001, Cutoffs: make([]time.Time, 53), Evaluation: &EvaluationConfig{Cutoff: cut, Edges: make([]float64, 256)}},
			[]string{"rounds.steps_per_round: must be in [1, 10000]", "rounds.cutoffs: 53 cutoffs, at most 52", "rounds.evaluation.edges: 256 edges, at most 255"}},
		// An exclusion's last round is its start plus its length: math.MaxInt
		// wrapped it negative, and the merchant was readmitted at once (round 8).
		{RoundConfig{SecureExclusionRounds: math.MaxInt}, []string{"rounds.secure_exclusion_rounds: must be at most 1000000"}},
		{RoundConfig{SecureExclusionMaxRounds: 1_000_001}, []string{"rounds.secure_exclusion_max_rounds: must be at most 1000000"}},
		{RoundConfig{SecureExclusionForgiveRounds: 1_000_001}, []string{"rounds.secure_exclusion_forgive_rounds: must be at most 1000000"}},
		{RoundConfig{SecureExclusionForgiveRounds: -1}, []string{"rounds.secure_exclusion_forgive_rounds: must be positive"}},
		{RoundConfig{SecureExclusionRounds: 30, SecureExclusionMaxRounds: 29}, []string{"rounds.secure_exclusion_max_rounds: must be at least secure_exclusion_rounds"}},
		{RoundConfig{Evaluation: &EvaluationConfig{}}, []string{"rounds.evaluation.cutoff: required"}},
		{RoundConfig{Evaluation: &EvaluationConfig{Cutoff: cut, Every: -1}}, []string{"rounds.evaluation.every: must be ≥ 0"}},
		{RoundConfig{Cutoffs: []time.Time{cut}, Evaluation: &EvaluationConfig{Cutoff: cut.AddDate(0, 0, 10)}}, []string{"rounds.evaluation.cutoff: 2020-01-11T00:00:00Z is less than 30 days after training cutoff 2020-01-01T00:00:00Z"}},
	} {
		_, err := tt.c.WithDefaults()
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: got %v, want an error containing %q", tt.c, err, w)
			}
		}
	}
}
