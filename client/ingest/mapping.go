package ingest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/model"
)

// Column names a column of a delimited file by header name or by 1-based
// index; exactly one of the two is set in a used column, neither in an absent
// optional one.
type Column struct {
	Name  string
	Index int
}

// IsZero reports whether c names no column.
func (c Column) IsZero() bool { return c.Name == "" && c.Index == 0 }

func (c Column) String() string {
	if c.Name != "" {
		return strconv.Quote(c.Name)
	}
	return "#" + strconv.Itoa(c.Index)
}

// ParseColumn reads a column reference from a flag: a string of digits is a
// 1-based index, anything else a header name.
func ParseColumn(s string) Column {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return Column{Index: n}
	}
	return Column{Name: s}
}

// Time layouts with special meaning in Mapping.TimeLayout.
const (
	LayoutUnix   = "unix"    // integer seconds since the epoch
	LayoutUnixMs = "unix_ms" // integer milliseconds since the epoch
)

// Mapping describes a generic delimited event file for Format CSV.
type Mapping struct {
	Header    bool // the first line names the columns
	Delimiter byte // ',' when zero
	Customer  Column
	Time      Column
	// TimeLayout is LayoutUnix, LayoutUnixMs or a Go time layout
	// ("2006-01-02 15:04:05"). A layout without a zone offset is read in
	// TimeZone, or Options.Location when TimeZone is nil.
	TimeLayout string
	TimeZone   *time.Location
	// Kind is the column holding the event kind, mapped through KindValues
	// (raw value → Kind), or through the canonical names (view, cart, favorite,
	// purchase) when KindValues is nil. When Kind is absent every row has
	// ConstKind.
	Kind       Column
	KindValues map[string]model.Kind
	ConstKind  model.Kind
	// Optional columns.
	Amount, Item, Category Column
}

// Validate checks that m describes a readable file.
func (m *Mapping) Validate() error {
	if m.Customer.IsZero() {
		return errors.New("mapping: customer column is required")
	}
	if m.Time.IsZero() {
		return errors.New("mapping: time column is required")
	}
	if m.TimeLayout == "" {
		return errors.New("mapping: time layout is required")
	}
	if m.Kind.IsZero() == (m.ConstKind == 0) {
		return errors.New("mapping: give exactly one of a kind column and a constant kind")
	}
	if m.ConstKind != 0 && (m.ConstKind < model.View || m.ConstKind > model.Purchase) {
		return fmt.Errorf("mapping: constant kind %v is not a known kind", m.ConstKind)
	}
	for raw, k := range m.KindValues {
		if k < model.View || k > model.Purchase {
			return fmt.Errorf("mapping: kind value %q maps to unknown kind %v", raw, k)
		}
	}
	switch m.Delimiter {
	case '"', '\n', '\r':
		return fmt.Errorf("mapping: delimiter %q is not allowed", m.Delimiter)
	}
	for _, c := range []struct {
		what string
		col  Column
	}{{"customer", m.Customer}, {"time", m.Time}, {"kind", m.Kind}, {"amount", m.Amount}, {"item", m.Item}, {"category", m.Category}} {
		if c.col.Name != "" && c.col.Index != 0 {
			return fmt.Errorf("mapping: %s column has both a name and an index", c.what)
		}
		if c.col.Index < 0 {
			return fmt.Errorf("mapping: %s column index %d is not 1-based", c.what, c.col.Index)
		}
		if c.col.Name != "" && !m.Header {
			return fmt.Errorf("mapping: %s column is named %q but the file has no header; use a 1-based index", c.what, c.col.Name)
		}
	}
	return nil
}

// rawMapping is the YAML form; yaml.Node fields keep line numbers for
// validation errors.
type rawMapping struct {
	Header    yaml.Node `yaml:"header"`
	Delimiter yaml.Node `yaml:"delimiter"`
	Customer  yaml.Node `yaml:"customer"`
	Time      *struct {
		Column yaml.Node `yaml:"column"`
		Layout yaml.Node `yaml:"layout"`
		Zone   yaml.Node `yaml:"zone"`
	} `yaml:"time"`
	Kind *struct {
		Column   yaml.Node `yaml:"column"`
		Values   yaml.Node `yaml:"values"`
		Constant yaml.Node `yaml:"constant"`
	} `yaml:"kind"`
	Amount   yaml.Node `yaml:"amount"`
	Item     yaml.Node `yaml:"item"`
	Category yaml.Node `yaml:"category"`
}

// LoadMapping reads a mapping YAML file; see ParseMapping.
func LoadMapping(path string) (*Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load mapping: %w", err)
	}
	defer f.Close()
	return ParseMapping(f, path)
}

// ParseMapping reads a mapping from YAML, strictly: unknown keys, wrong types
// and invalid values are errors that name the line. The layout:
//
//	header: true            # default false
//	delimiter: ","          # default ","; "\t" for TSV
//	customer: user          # header name, or a 1-based index like 1
//	time:
//	  column: ts
//	  layout: unix          # unix, unix_ms or a Go layout like "2006-01-02 15:04:05"
//	  zone: Europe/Berlin   # for layouts without an offset; default Options.Location
//	kind:                   # either a column with an optional value map ...
//	  column: event
//	  values: {pv: view, cart: cart, fav: favorite, buy: purchase}
//	# kind: {constant: purchase}   # ... or one kind for every row
//	amount: price           # optional
//	item: sku               # optional
//	category: cat           # optional
func ParseMapping(r io.Reader, name string) (*Mapping, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var raw rawMapping
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse mapping %s: empty document", name)
		}
		return nil, fmt.Errorf("parse mapping %s: %w", name, err)
	}
	m, err := raw.mapping()
	if err != nil {
		return nil, fmt.Errorf("parse mapping %s: %w", name, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("parse mapping %s: %w", name, err)
	}
	return m, nil
}

func nodeErr(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("line %d, column %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...))
}

func present(n *yaml.Node) bool { return n.Kind != 0 }

func scalar(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", nodeErr(n, "%s must be a scalar", what)
	}
	return n.Value, nil
}

func column(n *yaml.Node, what string, required bool) (Column, error) {
	if !present(n) {
		if required {
			return Column{}, fmt.Errorf("%s column is required", what)
		}
		return Column{}, nil
	}
	v, err := scalar(n, what+" column")
	if err != nil {
		return Column{}, err
	}
	if n.ShortTag() == "!!int" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 1 {
			return Column{}, nodeErr(n, "%s column index %s is not a 1-based index", what, v)
		}
		return Column{Index: i}, nil
	}
	if n.ShortTag() != "!!str" || v == "" {
		return Column{}, nodeErr(n, "%s column must be a header name or a 1-based index", what)
	}
	return Column{Name: v}, nil
}

func (raw *rawMapping) mapping() (*Mapping, error) {
	m := &Mapping{Delimiter: ','}
	var err error
	if present(&raw.Header) {
		if raw.Header.ShortTag() != "!!bool" {
			return nil, nodeErr(&raw.Header, "header must be true or false")
		}
		m.Header = raw.Header.Value == "true"
	}
	if present(&raw.Delimiter) {
		d, err := scalar(&raw.Delimiter, "delimiter")
		if err != nil {
			return nil, err
		}
		if len(d) != 1 || d[0] >= 0x80 {
			return nil, nodeErr(&raw.Delimiter, "delimiter %q must be one ASCII character", d)
		}
		m.Delimiter = d[0]
	}
	if m.Customer, err = column(&raw.Customer, "customer", true); err != nil {
		return nil, err
	}
	if raw.Time == nil {
		return nil, errors.New("time is required")
	}
	if m.Time, err = column(&raw.Time.Column, "time", true); err != nil {
		return nil, err
	}
	if !present(&raw.Time.Layout) {
		return nil, errors.New("time layout is required")
	}
	if m.TimeLayout, err = scalar(&raw.Time.Layout, "time layout"); err != nil {
		return nil, err
	}
	if m.TimeLayout == "" {
		return nil, nodeErr(&raw.Time.Layout, "time layout is empty")
	}
	if present(&raw.Time.Zone) {
		z, err := scalar(&raw.Time.Zone, "time zone")
		if err != nil {
			return nil, err
		}
		if m.TimeZone, err = time.LoadLocation(z); err != nil || z == "" || strings.HasPrefix(z, "/") {
			return nil, nodeErr(&raw.Time.Zone, "unknown time zone %q", z)
		}
	}
	if raw.Kind == nil {
		return nil, errors.New("kind is required (a column or a constant)")
	}
	if m.Kind, err = column(&raw.Kind.Column, "kind", false); err != nil {
		return nil, err
	}
	if present(&raw.Kind.Constant) {
		c, err := scalar(&raw.Kind.Constant, "constant kind")
		if err != nil {
			return nil, err
		}
		if m.ConstKind, err = model.ParseKind(c); err != nil {
			return nil, nodeErr(&raw.Kind.Constant, "%v", err)
		}
		if !m.Kind.IsZero() {
			return nil, nodeErr(&raw.Kind.Constant, "give either a kind column or a constant kind, not both")
		}
	} else if m.Kind.IsZero() {
		return nil, errors.New("kind needs a column or a constant")
	}
	if present(&raw.Kind.Values) {
		v := &raw.Kind.Values
		if v.Kind != yaml.MappingNode {
			return nil, nodeErr(v, "kind values must be a map from file value to kind")
		}
		if m.Kind.IsZero() {
			return nil, nodeErr(v, "kind values need a kind column")
		}
		m.KindValues = make(map[string]model.Kind, len(v.Content)/2)
		for i := 0; i+1 < len(v.Content); i += 2 {
			kn, vn := v.Content[i], v.Content[i+1]
			key, err := scalar(kn, "kind value")
			if err != nil {
				return nil, err
			}
			val, err := scalar(vn, "kind")
			if err != nil {
				return nil, err
			}
			k, err := model.ParseKind(val)
			if err != nil {
				return nil, nodeErr(vn, "%v", err)
			}
			if _, dup := m.KindValues[key]; dup {
				return nil, nodeErr(kn, "kind value %q given twice", key)
			}
			m.KindValues[key] = k
		}
	}
	if m.Amount, err = column(&raw.Amount, "amount", false); err != nil {
		return nil, err
	}
	if m.Item, err = column(&raw.Item, "item", false); err != nil {
		return nil, err
	}
	if m.Category, err = column(&raw.Category, "category", false); err != nil {
		return nil, err
	}
	return m, nil
}
