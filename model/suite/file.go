package suite

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// LoadFile reads a suite file with Parse.
func LoadFile(path string, builtin []Dataset) ([]Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load suite: %w", err)
	}
	defer f.Close()
	return Parse(f, path, builtin)
}

// Parse reads a suite file named name and returns the suite it describes:
// builtin (already resolved to the data directory) with the file's data sets
// added, or replacing the built-in data set of the same name. Parsing is
// strict: an unknown or repeated key, a value of the wrong shape, a date that
// is not YYYY-MM-DD and a protocol Validate refuses are errors naming the key,
// the value and the line. The layout:
//
//	builtin: true                 # keep the built-in data sets (default true)
//	datasets:
//	  - name: my-shop             # required, unique
//	    path: orders.csv.gz       # relative to this file's directory
//	    format: csv               # cdnow, cdnow-sample, online-retail, grocery or csv
//	    mapping: orders.yaml      # column mapping, for format csv only
//	    test_cutoff: 2024-06-01
//	    train_cutoffs: [2024-01-01, 2024-02-01, 2024-03-01]
//
// A data set named like a built-in one takes the built-in's value for every
// key it leaves out (so `{name: cdnow, test_cutoff: 1998-04-01,
// train_cutoffs: [...]}` moves CDNOW's cutoffs and keeps its file); any other
// data set needs a path and a format (and a mapping for csv); cutoffs it
// leaves out follow `kairos eval --dataset csv`'s default rule from the span
// of its events (Dataset.WithDefaultCutoffs).
func Parse(r io.Reader, name string, builtin []Dataset) ([]Dataset, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(r).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse suite %s: empty document", name)
		}
		return nil, fmt.Errorf("parse suite %s: %w", name, err)
	}
	out, err := parseDoc(&doc, filepath.Dir(name), builtin)
	if err != nil {
		return nil, fmt.Errorf("parse suite %s: %w", name, err)
	}
	return out, nil
}

var (
	topKeys     = []string{"builtin", "datasets"}
	datasetKeys = []string{"name", "path", "format", "mapping", "test_cutoff", "train_cutoffs"}
)

func parseDoc(doc *yaml.Node, dir string, builtin []Dataset) ([]Dataset, error) {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, nodeErr(root, "a suite file is a map with the keys %s, not %s", strings.Join(topKeys, ", "), describe(root))
	}
	top, err := keys(root, "", topKeys)
	if err != nil {
		return nil, err
	}
	keep := true
	if n := top["builtin"]; n != nil {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return nil, nodeErr(n, "builtin must be true or false, not %s", describe(n))
		}
		keep = n.Value == "true" || n.Value == "True" || n.Value == "TRUE"
	}
	list := top["datasets"]
	if list == nil {
		return nil, errors.New("key datasets is required (a list of data sets)")
	}
	if list.Kind != yaml.SequenceNode {
		return nil, nodeErr(list, "datasets must be a list of data sets, not %s", describe(list))
	}
	var added []Dataset
	seen := map[string]int{}
	for i, n := range list.Content {
		where := fmt.Sprintf("datasets[%d]", i)
		d, err := parseDataset(n, where, dir, builtin)
		if err != nil {
			return nil, err
		}
		if line, dup := seen[d.Name]; dup {
			return nil, nodeErr(n, "%s: data set name %q is given twice (first on line %d)", where, d.Name, line)
		}
		seen[d.Name] = n.Line
		added = append(added, d)
	}
	if !keep {
		builtin = nil
	}
	out := Merge(builtin, added)
	if len(out) == 0 {
		return nil, errors.New("the suite holds no data set (builtin: false and an empty datasets list)")
	}
	return out, nil
}

func parseDataset(n *yaml.Node, where, dir string, builtin []Dataset) (Dataset, error) {
	if n.Kind != yaml.MappingNode {
		return Dataset{}, nodeErr(n, "%s must be a map with the keys %s, not %s", where, strings.Join(datasetKeys, ", "), describe(n))
	}
	k, err := keys(n, where, datasetKeys)
	if err != nil {
		return Dataset{}, err
	}
	str := func(key string) (string, error) {
		v := k[key]
		if v == nil {
			return "", nil
		}
		if v.Kind != yaml.ScalarNode || v.Value == "" {
			return "", nodeErr(v, "%s: %s must be a non-empty value, not %s", where, key, describe(v))
		}
		return v.Value, nil
	}
	name, err := str("name")
	if err != nil {
		return Dataset{}, err
	}
	if name == "" {
		return Dataset{}, nodeErr(n, "%s: name is required", where)
	}
	where = fmt.Sprintf("%s (%s)", where, name)
	var d Dataset
	inherit := false
	for _, b := range builtin {
		if b.Name == name {
			d, inherit = b, true
		}
	}
	d.Name = name
	for _, f := range []struct {
		key string
		dst *string
	}{{"path", &d.Path}, {"format", &d.Format}, {"mapping", &d.Mapping}} {
		v, err := str(f.key)
		if err != nil {
			return Dataset{}, err
		}
		if v == "" {
			continue
		}
		if f.key != "format" && !filepath.IsAbs(v) {
			v = filepath.Join(dir, v)
		}
		*f.dst = v
	}
	if k["format"] != nil && d.Format != FormatCSV && k["mapping"] == nil {
		d.Mapping = "" // a built-in's format replaced by another reader
	}
	if k["format"] != nil && !slices.Contains(Formats(), d.Format) {
		return Dataset{}, nodeErr(k["format"], "%s: unknown format %q (want one of %s)", where, d.Format, strings.Join(Formats(), ", "))
	}
	if v := k["test_cutoff"]; v != nil {
		if d.TestCutoff, err = date(v, where, "test_cutoff"); err != nil {
			return Dataset{}, err
		}
	}
	if v := k["train_cutoffs"]; v != nil {
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			return Dataset{}, nodeErr(v, "%s: train_cutoffs must be a non-empty list of dates YYYY-MM-DD, not %s", where, describe(v))
		}
		d.TrainCutoffs = nil
		for j, c := range v.Content {
			t, err := date(c, where, fmt.Sprintf("train_cutoffs[%d]", j))
			if err != nil {
				return Dataset{}, err
			}
			d.TrainCutoffs = append(d.TrainCutoffs, t)
		}
	}
	if !inherit {
		// Cutoffs left out follow the default rule (Dataset.WithDefaultCutoffs).
		for _, key := range []string{"path", "format"} {
			if k[key] == nil {
				return Dataset{}, nodeErr(n, "%s: %s is required (it is not a built-in data set whose value could be kept)", where, key)
			}
		}
	}
	if err := d.Validate(); err != nil {
		return Dataset{}, nodeErr(n, "%s: %v", where, err)
	}
	return d, nil
}

func date(n *yaml.Node, where, key string) (time.Time, error) {
	if n.Kind != yaml.ScalarNode {
		return time.Time{}, nodeErr(n, "%s: %s must be a date YYYY-MM-DD, not %s", where, key, describe(n))
	}
	t, err := time.Parse(time.DateOnly, n.Value)
	if err != nil {
		return time.Time{}, nodeErr(n, "%s: %s %q is not a date YYYY-MM-DD", where, key, n.Value)
	}
	return t, nil
}

// keys returns the value node of every key of the map n, refusing a key not in
// want and a key given twice.
func keys(n *yaml.Node, where string, want []string) (map[string]*yaml.Node, error) {
	in := ""
	if where != "" {
		in = " in " + where
	}
	out := map[string]*yaml.Node{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			return nil, nodeErr(kn, "a key%s must be a word, not %s", in, describe(kn))
		}
		if !slices.Contains(want, kn.Value) {
			return nil, nodeErr(kn, "unknown key %q%s (want %s)", kn.Value, in, strings.Join(want, ", "))
		}
		if line, dup := lines[kn.Value]; dup {
			return nil, nodeErr(kn, "key %q%s is given twice (first on line %d)", kn.Value, in, line)
		}
		if vn.Kind == yaml.AliasNode {
			return nil, nodeErr(vn, "key %q%s: aliases are not supported", kn.Value, in)
		}
		lines[kn.Value] = kn.Line
		out[kn.Value] = vn
	}
	return out, nil
}

// describe names a node's value the way the user wrote it.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

func nodeErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d, column %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))
}
