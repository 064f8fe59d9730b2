package suite

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// resolvedBuiltin is Builtin resolved to a data directory, as cmd/kairos does.
func resolvedBuiltin(dir string) []Dataset {
	var out []Dataset
	for _, d := range Builtin() {
		out = append(out, d.Resolve(dir))
	}
	return out
}

func dates(ts []time.Time) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Format(time.DateOnly))
	}
	return out
}

// TestBuiltinProtocols: the built-in suite is the data README's suite table,
// and every protocol passes Validate.
func TestBuiltinProtocols(t *testing.T) {
	want := []struct {
		name, path, format, test string
		train                    []string
	}{
		{"cdnow", "cdnow/CDNOW_master.txt", FormatCDNOW, "1998-03-01", []string{"1997-07-01", "1997-09-01", "1997-11-01", "1998-01-01"}},
		{"online-retail-full", "online_retail_full/online_retail.csv.gz", FormatOnlineRetail, "2011-11-09",
			[]string{"2011-05-01", "2011-06-01", "2011-07-01", "2011-08-01", "2011-09-01", "2011-10-01"}},
		{"grocery", "grocery_btydplus/groceryElog.csv", FormatGrocery, "2007-12-01",
			[]string{"2007-03-01", "2007-05-01", "2007-07-01", "2007-09-01", "2007-10-01"}},
	}
	got := Builtin()
	if len(got) != len(want) {
		t.Fatalf("got %d built-in data sets, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Path != w.path || g.Format != w.format || g.TestCutoff.Format(time.DateOnly) != w.test ||
			!slices.Equal(dates(g.TrainCutoffs), w.train) {
			t.Errorf("data set %d: got %s %s %s %s %v, want %s %s %s %s %v", i, g.Name, g.Path, g.Format,
				g.TestCutoff.Format(time.DateOnly), dates(g.TrainCutoffs), w.name, w.path, w.format, w.test, w.train)
		}
		if err := g.Validate(); err != nil {
			t.Errorf("%s: %v", g.Name, err)
		}
	}
}

// TestParseSuiteFile: a file adds a data set (paths relative to the file),
// replaces a built-in one keeping what it leaves out, and can drop the
// built-ins.
func TestParseSuiteFile(t *testing.T) {
	builtin := resolvedBuiltin("/data")
	src := `datasets:
  - name: shop
    path: exports/orders.csv.gz
    format: csv
    mapping: orders.yaml
    test_cutoff: 2024-06-01
    train_cutoffs: [2024-01-01, 2024-03-01]
  - name: cdnow
    test_cutoff: 1998-04-01
    train_cutoffs: [1998-01-01]
`
	got, err := Parse(strings.NewReader(src), "/suites/mine.yaml", builtin)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, d := range got {
		names = append(names, d.Name)
	}
	if want := []string{"cdnow", "online-retail-full", "grocery", "shop"}; !slices.Equal(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	cd := got[0]
	if cd.Path != "/data/cdnow/CDNOW_master.txt" || cd.Format != FormatCDNOW || cd.TestCutoff.Format(time.DateOnly) != "1998-04-01" ||
		!slices.Equal(dates(cd.TrainCutoffs), []string{"1998-01-01"}) {
		t.Errorf("replaced cdnow: got %+v, want the built-in file with the new cutoffs", cd)
	}
	shop := got[3]
	if shop.Path != "/suites/exports/orders.csv.gz" || shop.Mapping != "/suites/orders.yaml" || shop.Format != FormatCSV ||
		!slices.Equal(dates(shop.TrainCutoffs), []string{"2024-01-01", "2024-03-01"}) {
		t.Errorf("added shop: got %+v", shop)
	}

	got, err = Parse(strings.NewReader("builtin: false\n"+src), "mine.yaml", builtin)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "shop" || got[1].Name != "cdnow" {
		t.Errorf("builtin: false: got %d data sets, want shop and cdnow", len(got))
	}
}

// TestParseSuiteFileErrors: every mistake is refused with the key, the value
// and the line.
func TestParseSuiteFileErrors(t *testing.T) {
	builtin := resolvedBuiltin("/data")
	full := func(extra string) string {
		return "datasets:\n  - name: shop\n    path: a.csv\n    format: grocery\n    test_cutoff: 2024-06-01\n    train_cutoffs: [2024-01-01]\n" + extra
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"empty", "", []string{"empty document"}},
		{"not a map", "- a\n", []string{"line 1", "not a list"}},
		{"unknown top key", "datasets: []\nextra: 1\n", []string{"line 2", `unknown key "extra"`}},
		{"no datasets", "builtin: true\n", []string{"datasets is required"}},
		{"datasets not a list", "datasets: {a: 1}\n", []string{"line 1", "datasets must be a list"}},
		{"builtin not a bool", "builtin: yes\ndatasets: []\n", []string{"line 1", `builtin must be true or false, not "yes"`}},
		{"nothing left", "builtin: false\ndatasets: []\n", []string{"holds no data set"}},
		{"unknown dataset key", full("    cutoff: 2024-01-01\n"), []string{"line 7", `unknown key "cutoff" in datasets[0]`}},
		{"repeated key", full("    format: csv\n"), []string{"line 7", `key "format" in datasets[0] is given twice (first on line 4)`}},
		{"missing name", "datasets:\n  - path: a.csv\n", []string{"line 2", "datasets[0]: name is required"}},
		{"missing path of a new data set", "datasets:\n  - name: shop\n    format: grocery\n    test_cutoff: 2024-06-01\n    train_cutoffs: [2024-01-01]\n",
			[]string{"line 2", "datasets[0] (shop): path is required"}},
		{"unknown format", strings.Replace(full(""), "format: grocery", "format: parquet", 1),
			[]string{"line 4", `datasets[0] (shop): unknown format "parquet"`}},
		{"csv without mapping", strings.Replace(full(""), "format: grocery", "format: csv", 1),
			[]string{"line 2", "mapping is required for format csv"}},
		{"bad test cutoff", strings.Replace(full(""), "2024-06-01", "2024-13-01", 1),
			[]string{"line 5", `test_cutoff "2024-13-01" is not a date YYYY-MM-DD`}},
		{"bad train cutoff", strings.Replace(full(""), "[2024-01-01]", "[2024-01-01, 1 May]", 1),
			[]string{"line 6", `train_cutoffs[1] "1 May" is not a date`}},
		{"train cutoffs not a list", strings.Replace(full(""), "[2024-01-01]", "2024-01-01", 1),
			[]string{"line 6", "train_cutoffs must be a non-empty list"}},
		{"label window past the test cutoff", strings.Replace(full(""), "[2024-01-01]", "[2024-05-15]", 1),
			[]string{"line 2", "training cutoff 2024-05-15", "ends 2024-06-14, after the test cutoff 2024-06-01"}},
		{"duplicate name", full("  - {name: shop, path: b.csv, format: grocery, test_cutoff: 2024-06-01, train_cutoffs: [2024-01-01]}\n"),
			[]string{"line 7", `"shop" is given twice (first on line 2)`}},
		{"alias", "x: &a 1\n", []string{`unknown key "x"`}},
		{"dataset alias", "datasets:\n  - &a {name: cdnow}\n  - *a\n", []string{"line 3", "datasets[1] must be a map"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.src), "s.yaml", builtin)
			if err == nil {
				t.Fatalf("got no error, want one mentioning %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "parse suite s.yaml: ") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// TestExampleSuiteFile: the documented example file parses.
func TestExampleSuiteFile(t *testing.T) {
	path := filepath.Join("testdata", "example.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadFile(path, resolvedBuiltin("/data"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got); n != 4 {
		t.Errorf("got %d data sets, want the 3 built-in ones and the CDNOW sample", n)
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"datasets:\n  - name: shop\n    path: a.csv\n    format: grocery\n    test_cutoff: 2024-06-01\n    train_cutoffs: [2024-01-01]\n",
		"builtin: false\ndatasets:\n  - {name: cdnow, test_cutoff: 1998-04-01, train_cutoffs: [1998-01-01]}\n",
		"datasets: [&a {name: x}, *a]\n", "datasets: {}\n", "- 1\n", "",
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "example.yaml")); err == nil {
		seeds = append(seeds, string(b))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	builtin := resolvedBuiltin("/data")
	f.Fuzz(func(t *testing.T, src string) {
		got, err := Parse(strings.NewReader(src), "fuzz.yaml", builtin)
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatal("no error and no data set")
		}
		for _, d := range got {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted data set %s fails Validate: %v", d.Name, err)
			}
		}
	})
}
