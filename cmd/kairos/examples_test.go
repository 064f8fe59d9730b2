package main

import (
	"bufio"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/model"
)

// TestExamples: examples/shop.yaml is a valid client configuration reading
// examples/orders.csv through examples/orders.mapping.yaml, and the mapping
// turns exactly the paid orders into purchases (counted here from the text),
// at Berlin local time.
func TestExamples(t *testing.T) {
	cfg, err := client.LoadConfig("../../examples/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data.Format != string(ingest.CSV) || cfg.EpsilonCap != 0.8 {
		t.Errorf("shop.yaml: format %q cap %v, want csv 0.8", cfg.Data.Format, cfg.EpsilonCap)
	}
	m, err := ingest.LoadMapping(cfg.Path(cfg.Data.Mapping))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cfg.Path(cfg.Data.Path))
	if err != nil {
		t.Fatal(err)
	}
	paid, rows, first := 0, 0, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rows++
		if strings.Contains(sc.Text(), ",paid,") {
			paid++
			if first == "" {
				first = strings.Split(sc.Text(), ",")[2]
			}
		}
	}
	f.Close()
	var events []model.Event
	rep, err := ingest.ReadFile(context.Background(), cfg.Path(cfg.Data.Path), ingest.Options{Format: ingest.CSV, Mapping: m},
		func(e model.Event) error { events = append(events, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != paid || rep.Rows != rows-1 || len(events) != paid {
		t.Errorf("read %d events of %d rows, want the %d paid orders of %d rows", rep.Events, rep.Rows, paid, rows-1)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	want, err := time.ParseInLocation(time.DateTime, first, berlin)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 || !events[0].Time.Equal(want) || events[0].Kind != model.Purchase {
		t.Errorf("first event %+v, want a purchase at %v", events[0], want)
	}
}
