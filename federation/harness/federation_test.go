package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/client"
)

// TestWriteClientConfig: what the harness writes is what the client loads.
func TestWriteClientConfig(t *testing.T) {
	dir := t.TempDir()
	f := &Federation{URL: "http://127.0.0.1:9"}
	m := &Merchant{ID: "m2", Config: filepath.Join(dir, "client.yaml")}
	err := f.WriteClientConfig(m, ClientConfig{
		Data: "/data/orders.txt", Shard: "{of: [1, 1, 1], index: 1, key: customer-hash}", TimeZone: "Asia/Tokyo",
		EpsilonCap: 0.8, PollInterval: 250 * time.Millisecond, Extra: "clock_offset: 3h\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.LoadConfig(m.Config)
	if err != nil {
		t.Fatal(err)
	}
	if c.Aggregator != f.URL || c.TimeZone != "Asia/Tokyo" || c.EpsilonCap != 0.8 || c.Data.Path != "/data/orders.txt" || c.Data.Format != "cdnow" {
		t.Errorf("config %+v", c)
	}
	if time.Duration(c.PollInterval) != 250*time.Millisecond || time.Duration(c.ClockOffset) != 3*time.Hour {
		t.Errorf("poll %v, clock offset %v; want 250ms and 3h", c.PollInterval, c.ClockOffset)
	}
	if c.Data.Shard == nil || c.Data.Shard.Index != 1 || len(c.Data.Shard.Shares()) != 3 {
		t.Errorf("shard %+v, want part 1 of 3", c.Data.Shard)
	}
	// A configuration the client refuses is an error naming the merchant.
	err = f.WriteClientConfig(m, ClientConfig{Data: "/data/orders.txt", Shard: "{of: [1], index: 4, key: customer-hash}"})
	if err == nil || !strings.Contains(err.Error(), "m2") || !strings.Contains(err.Error(), "shard.index") {
		t.Errorf("bad shard: got %v, want an error naming m2 and shard.index", err)
	}
}

// TestWriteRounds: the rounds section replaces the old one through the
// aggregator's config loader and leaves the rest of the configuration alone;
// durations are written as a person writes them.
func TestWriteRounds(t *testing.T) {
	dir := t.TempDir()
	f := &Federation{AggDir: dir}
	path := filepath.Join(dir, configFile)
	cfg := config.Default("127.0.0.1:1", "sqlite:kairos.db")
	cfg.Rounds.Quorum = 9
	b, err := config.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.SetRounds(aggregator.RoundConfig{Quorum: 2, Deadline: 90 * time.Second, PlannedRounds: 3}); err != nil {
		t.Fatal(err)
	}
	if b, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, want := range []string{"listen: 127.0.0.1:1", "quorum: 2", "deadline: 1m30s", "planned_rounds: 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "quorum: 9") || strings.Contains(out, "evaluation") {
		t.Errorf("old or empty keys kept:\n%s", out)
	}
	if err := f.SetRounds(aggregator.RoundConfig{Quorum: -1}); err == nil || !strings.Contains(err.Error(), "rounds.quorum") {
		t.Errorf("negative quorum: got %v, want an error naming rounds.quorum", err)
	}
	if err := (&Federation{AggDir: filepath.Join(dir, "none")}).SetRounds(aggregator.RoundConfig{}); err == nil {
		t.Error("missing config file: no error")
	}
}
