package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEvalCSVZoneCalendar: a date-only export of a Berlin shop
// (01.01.2024 .. 30.06.2024, read with zone: Europe/Berlin) is split on the
// shop's days. The span is 2024-01-01 .. 2024-06-30 as the file says, so the
// default test cutoff is 2024-07-01 − 30 days = 2024-06-01 and the training
// cutoffs 02-02, 03-03, 04-02, 05-02 (the hand-worked dates of
// TestEvalCSVDefaultProtocol). Before, days were counted in UTC: Berlin
// midnights are 22:00 or 23:00 UTC the day before, and eval printed the span
// 2023-12-31 .. 2024-06-29 and cut on 2024-05-31.
func TestEvalCSVZoneCalendar(t *testing.T) {
	if _, err := time.LoadLocation("Europe/Berlin"); err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("Kunde;Datum;Betrag\n")
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)
	b.WriteString("K0;01.01.2024;1,00\nK0;30.06.2024;1,00\n")
	for c := 1; c <= 120; c++ {
		for d := start.AddDate(0, 0, c%30); !d.After(end); d = d.AddDate(0, 0, 4+c%37) {
			fmt.Fprintf(&b, "K%d;%s;%d,50\n", c, d.Format("02.01.2006"), c)
		}
	}
	data := filepath.Join(dir, "de.csv")
	mapping := filepath.Join(dir, "de.yaml")
	if err := os.WriteFile(data, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	m := "header: true\ndelimiter: \";\"\ndecimal: \",\"\ncustomer: Kunde\n" +
		"time: {column: Datum, layout: \"02.01.2006\", zone: Europe/Berlin}\nkind: {constant: purchase}\namount: Betrag\n"
	if err := os.WriteFile(mapping, []byte(m), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runEval(t, "--dataset", "csv", "--data", data, "--mapping", mapping, "--json")
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, stderr)
	}
	want := "protocol: test cutoff 2024-06-01, training cutoffs 2024-02-02, 2024-03-03, 2024-04-02, 2024-05-02 " +
		"(test cutoff and training cutoffs by the default rule from the events' span 2024-01-01 .. 2024-06-30"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr:\n%s\nwant %q", stderr, want)
	}
	var got struct {
		TestCutoff string `json:"test_cutoff"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.TestCutoff != "2024-06-01" {
		t.Errorf("test_cutoff %q, want 2024-06-01", got.TestCutoff)
	}
}
