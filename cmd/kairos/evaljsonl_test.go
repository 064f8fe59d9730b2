package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalJSONLinesAsCSV: the shop log written as JSON Lines (the customer
// and the time as JSON numbers, the amount a string, a blank line) is the
// same data as the CSV file, so `kairos eval --dataset csv` must give it the
// same test customers, buyers and metrics to the last digit, and say it read
// JSON Lines.
func TestEvalJSONLinesAsCSV(t *testing.T) {
	l := newShopLog(false)
	data, mapping := l.write(t, shopMapping)
	var b strings.Builder
	for i, row := range l.rows {
		f := strings.Split(row, ",")
		b.WriteString(`{"user":"` + f[0] + `","ts":` + f[1] + `,"event":"` + f[2] + `","amount":"` + f[3] + `","note":{"gift":true}}` + "\n")
		if i == 3 {
			b.WriteString("\n")
		}
	}
	jsonl := filepath.Join(filepath.Dir(data), "shop.jsonl")
	if err := os.WriteFile(jsonl, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--dataset", "csv", "--mapping", mapping, "--test-cutoff", "2020-05-01", "--train-cutoffs", "2020-03-01,2020-04-01", "--json"}
	csvOut, _, err := runEval(t, append([]string{"--data", data}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	jsonOut, stderr, err := runEval(t, append([]string{"--data", jsonl}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "read as JSON Lines") {
		t.Errorf("stderr %q does not say the file was read as JSON Lines", stderr)
	}
	var c, j map[string]any
	if err := json.Unmarshal([]byte(csvOut), &c); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(jsonOut), &j); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"customers", "positives", "methods"} {
		cs, _ := json.Marshal(c[k])
		js, _ := json.Marshal(j[k])
		if string(cs) != string(js) {
			t.Errorf("%s: JSON Lines gives %s, CSV %s", k, js, cs)
		}
	}
	if got, want := c["customers"], float64(60); got != want {
		t.Errorf("got %v test customers, want %v (every customer of the log buys before the cutoff)", got, want)
	}
}
