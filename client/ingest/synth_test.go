package ingest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/synth"
)

// TestReadSynthetic reads a generated log back through the mapping the
// generator publishes: every row must come back as an event, kinds and
// customers matching the generator's own counts.
func TestReadSynthetic(t *testing.T) {
	g, err := synth.New(synth.Config{Seed: 42, Events: 30000})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := g.WriteCSV(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(buf.String(), "\n"); got != 30001 {
		t.Fatalf("got %d lines, want 30001", got)
	}
	m, err := ParseMapping(strings.NewReader(synth.MappingYAML), "synth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ta tally
	rep, err := Read(context.Background(), &buf, "synth.csv", Options{Format: CSV, Mapping: m}, ta.add)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 30000 || rep.Events != 30000 {
		t.Errorf("got rows %d, events %d, want 30000", rep.Rows, rep.Events)
	}
	for k := model.View; k <= model.Purchase; k++ {
		if ta.kinds[k] != st.Kinds[k] {
			t.Errorf("got %d %v events, generator wrote %d", ta.kinds[k], k, st.Kinds[k])
		}
	}
	if len(ta.customers) != st.Customers {
		t.Errorf("got %d customers, generator wrote %d", len(ta.customers), st.Customers)
	}
	// The first customer read back equals the generator's customer 0.
	c0 := g.Customer(0)
	buf.Reset()
	if _, err := g.WriteCSV(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	i := 0
	_, err = Read(context.Background(), &buf, "synth.csv", Options{Format: CSV, Mapping: m}, func(ev model.Event) error {
		if i < len(c0.Events) {
			want := c0.Events[i]
			want.Time = want.Time.Truncate(1e9)
			if ev != want {
				t.Errorf("event %d: got %+v, want %+v", i, ev, want)
			}
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkReadSynthetic(b *testing.B) {
	g, err := synth.New(synth.Config{Seed: 1, Events: 200000})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteCSV(context.Background(), &buf); err != nil {
		b.Fatal(err)
	}
	m, err := ParseMapping(strings.NewReader(synth.MappingYAML), "synth.yaml")
	if err != nil {
		b.Fatal(err)
	}
	benchRead(b, buf.Bytes(), Options{Format: CSV, Mapping: m})
}
