package ingest

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/model"
)

// readCounts reads path whole through m as kairos eval does (bad rows
// skipped up to 1%) and counts purchases and the customers who made them.
func readCounts(t *testing.T, path string, m *Mapping) (purchases, customers int, err error) {
	t.Helper()
	purchases, customers, _, err = readTotals(t, path, m)
	return purchases, customers, err
}

// readTotals is readCounts with the sum of the purchases' amounts.
func readTotals(t *testing.T, path string, m *Mapping) (purchases, customers int, amount float64, err error) {
	t.Helper()
	seen := map[string]bool{}
	_, err = ReadFile(context.Background(), path, Options{Format: CSV, Mapping: m, OnError: Skip, MaxInvalidShare: 0.01}, func(ev model.Event) error {
		if ev.Kind == model.Purchase {
			purchases++
			seen[ev.Customer] = true
			amount += ev.Amount
		}
		return nil
	})
	return purchases, len(seen), amount, err
}

// answerKeyShape is one export of scripts/heldout_*.py with the mapping its
// script wrote by hand.
type answerKeyShape struct {
	name, data, mapping string
}

// answerKeyShapes lists the exports of the suite files under dir, and
// instacart.csv, which no suite holds (Kairos refuses it).
func answerKeyShapes(t *testing.T, dir string) []answerKeyShape {
	t.Helper()
	var out []answerKeyShape
	suites, _ := filepath.Glob(filepath.Join(dir, "*", "*.yaml"))
	for _, f := range suites {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var suite struct {
			Datasets []struct{ Name, Path, Mapping string }
		}
		if err := yaml.Unmarshal(b, &suite); err != nil || len(suite.Datasets) == 0 {
			continue
		}
		at := func(p string) string {
			if filepath.IsAbs(p) {
				return p
			}
			return filepath.Join(filepath.Dir(f), p)
		}
		for _, d := range suite.Datasets {
			out = append(out, answerKeyShape{d.Name, at(d.Path), at(d.Mapping)})
		}
	}
	if ic, err := filepath.Glob(filepath.Join(dir, "*", "instacart.csv")); err == nil && len(ic) == 1 {
		out = append(out, answerKeyShape{"instacart-relative-days", ic[0], strings.TrimSuffix(ic[0], ".csv") + ".yaml"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// TestSuggestAnswerKey runs the suggester on every export that
// scripts/heldout_logs.py, heldout_exports.py and heldout_exports3.py write
// (KAIROS_SUGGEST_KEY names the folder holding their output folders) and
// compares the purchases and customers read through the suggested mapping
// with those read through the script's hand-written mapping. It prints the
// table of docs/benchmarks.md and fails on a silently wrong suggestion: one
// without a CHECK that reads other counts.
func TestSuggestAnswerKey(t *testing.T) {
	dir := os.Getenv("KAIROS_SUGGEST_KEY")
	if dir == "" {
		t.Skip("KAIROS_SUGGEST_KEY is not set (see docs/benchmarks.md)")
	}
	shapes := answerKeyShapes(t, dir)
	if len(shapes) == 0 {
		t.Fatalf("no suite files under %s", dir)
	}
	var correct, checked, checkedRight, wrong int
	fmt.Println("| export | hand-written mapping: purchases / customers | suggested: purchases / customers | amount sum | CHECKs | verdict |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, sh := range shapes {
		hand := "refused"
		hp, hc, ha := -1, -1, 0.0
		if m, err := LoadMapping(sh.mapping); err == nil {
			var rerr error
			if hp, hc, ha, rerr = readTotals(t, sh.data, m); rerr != nil {
				hand = "error: " + rerr.Error()
			} else {
				hand = fmt.Sprintf("%d / %d", hp, hc)
			}
		}
		f, err := os.Open(sh.data)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		sg, err := Suggest(context.Background(), f, sh.data, SuggestOptions{Size: st.Size()})
		f.Close()
		got, sp, sc, sa := "", -1, -2, 0.0
		nchecks := 0
		switch {
		case err != nil:
			got = "no mapping: " + err.Error()
			nchecks = 1 // refused with a reason: nothing silent
		default:
			nchecks = len(sg.Checks)
			var rerr error
			if sp, sc, sa, rerr = readTotals(t, sh.data, sg.Mapping); rerr != nil {
				got = "refused by the reader"
				sp, sc = -1, -1
			} else {
				got = fmt.Sprintf("%d / %d", sp, sc)
			}
		}
		same := sp == hp && sc == hc
		verdict := ""
		switch {
		case nchecks > 0 && same:
			checked++
			checkedRight++
			verdict = "CHECK (counts right)"
		case nchecks > 0:
			checked++
			verdict = "CHECK (counts differ)"
		case same:
			correct++
			verdict = "correct"
		default:
			wrong++
			verdict = "**silently wrong**"
			t.Errorf("%s: suggested mapping reads %s, the hand-written one %s, and nothing is marked CHECK:\n%s", sh.name, got, hand, sg.YAML)
		}
		amounts := "same"
		if math.Abs(sa-ha) > 1e-6*math.Max(1, math.Abs(ha)) {
			amounts = fmt.Sprintf("%.0f, hand %.0f", sa, ha)
		}
		checks := "—"
		if err == nil && len(sg.Checks) > 0 {
			checks = strings.Join(sg.Checks, "; ")
			if len(checks) > 160 {
				checks = checks[:157] + "..."
			}
		} else if err != nil {
			checks = err.Error()
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", sh.name, hand, got, amounts, strings.ReplaceAll(checks, "|", "/"), verdict)
		if os.Getenv("KAIROS_SUGGEST_SHOW") != "" && sg != nil {
			fmt.Printf("%s\n", sg.YAML)
		}
	}
	fmt.Printf("\n%d exports: %d suggested correctly, %d flagged CHECK (%d of them with the right guess), %d silently wrong\n",
		len(shapes), correct, checked, checkedRight, wrong)
}
