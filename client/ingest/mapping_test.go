package ingest

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/model"
)

func TestParseMapping(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	in := `header: true
delimiter: "\t"
customer: user
time:
  column: 2
  layout: "2006-01-02 15:04:05"
  zone: Europe/Berlin
kind:
  column: event
  values:
    pv: view
    "1": purchase
amount: "7"
item: sku
`
	got, err := ParseMapping(strings.NewReader(in), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Mapping{Header: true, Delimiter: '\t', Customer: Column{Name: "user"}, Time: Column{Index: 2},
		TimeLayout: "2006-01-02 15:04:05", TimeZone: berlin, Kind: Column{Name: "event"},
		KindValues: map[string]model.Kind{"pv": model.View, "1": model.Purchase}, Amount: Column{Name: "7"}, Item: Column{Name: "sku"}}
	if got.TimeZone.String() != "Europe/Berlin" {
		t.Errorf("got zone %v, want Europe/Berlin", got.TimeZone)
	}
	got.TimeZone = berlin
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseMappingErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown top key", "customer: 1\ncolour: red\n", `line 2, column 1: unknown key "colour" (want header, delimiter, encoding, decimal, thousands, customer, customer_normalize, missing_customer, missing_customer_values, time, kind, amount, currency_symbol, accounting_negatives, amount_unit, quantity, currency, item, category, negative_amount, cancelled, order, sheet)`},
		{"unknown nested key", "customer: 1\ntime:\n  column: 2\n  layuot: unix\n", `line 4, column 3: unknown key "layuot" under time (want column, time_of_day, layout, zone, epoch)`},
		{"unknown kind key", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {column: 3, value: {a: view}}\n", `line 3, column 19: unknown key "value" under kind (want column, values, ignore, constant)`},
		// The shapes that leaked Go types before ("cannot unmarshal !!str `purchase` into struct { Column yaml.Node ...}").
		{"kind as a word", "customer: 1\ntime: {column: 2, layout: unix}\nkind: purchase\n", `line 3, column 7: kind must be a map with a column (and optional values) or a constant, like kind: {constant: purchase} for one kind on every row; got "purchase"`},
		{"kind as a column name", "header: true\ncustomer: u\ntime: {column: t, layout: unix}\nkind: event\n", `line 4, column 7: kind must be a map with a column (and optional values) or a constant, like kind: {column: event, values: {buy: purchase}} or kind: {constant: purchase}; got "event"`},
		{"time as a word", "customer: 1\ntime: ts\nkind: {constant: view}\n", `line 2, column 7: time must be a map with a column and a layout, like time: {column: ts, layout: unix}; got "ts"`},
		{"time as a list", "customer: 1\ntime: [2, unix]\nkind: {constant: view}\n", `line 2, column 7: time must be a map with a column and a layout, like time: {column: ts, layout: unix}; got a list`},
		{"document is a list", "- customer: 1\n", `line 1, column 1: a mapping is a map of keys (header, delimiter, encoding, decimal, thousands, customer, customer_normalize, missing_customer, missing_customer_values, time, kind, amount, currency_symbol, accounting_negatives, amount_unit, quantity, currency, item, category, negative_amount, cancelled, order, sheet), not a list`},
		{"document is a word", "purchase\n", `line 1, column 1: a mapping is a map of keys`},
		{"key is a map", "{a: 1}: 2\n", `line 1, column 1: a key must be a word, not a map`},
		{"values as a list", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {column: 3, values: [buy]}\n", `line 3, column 27: kind values must be a map from file value to kind, like {buy: purchase}, not a list`},
		{"value is a list", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {column: 3, values: {buy: [purchase]}}\n", `line 3, column 33: kind value buy must be a single value, not a list`},
		{"ignore a mapped value", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {column: 3, values: {buy: purchase}, ignore: [buy]}\n", `line 3, column 53: kind value "buy" is both mapped under values and ignored`},
		{"ignore without column", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: view, ignore: [x]}\n", `line 3, column 32: kind ignore needs a kind column`},
		{"ignore a word", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {column: 3, ignore: x}\n", `line 3, column 27: kind ignore must be a list of file values`},
		{"ignore a canonical kind", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {column: 3, ignore: [view]}\n", `kind value "view" is a canonical kind`},
		{"bad kind value", "customer: 1\ntime: {column: 2, layout: unix}\nkind:\n  column: 3\n  values:\n    pv: look\n", `line 6, column 9: kind value pv: unknown event kind "look"`},
		{"bad constant", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: buy}\n", `line 3, column 18: kind constant: unknown event kind "buy"`},
		{"both kinds", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {column: 3, constant: view}\n", "line 3, column 29: give either"},
		{"no kind", "customer: 1\ntime: {column: 2, layout: unix}\n", "kind is required: kind: {constant: purchase} when every row is an order"},
		{"no time", "customer: 1\nkind: {constant: view}\n", "time is required"},
		{"no layout", "customer: 1\ntime: {column: 2}\nkind: {constant: view}\n", "line 2, column 7: time layout is required"},
		{"zero index", "customer: 0\ntime: {column: 2, layout: unix}\nkind: {constant: view}\n", "line 1, column 11: customer column index 0"},
		{"list column", "customer: [1]\ntime: {column: 2, layout: unix}\nkind: {constant: view}\n", "line 1, column 11: customer column must be a header name or a 1-based index, not a list"},
		{"bad zone", "customer: 1\ntime: {column: 2, layout: unix, zone: Mars/Olympus}\nkind: {constant: view}\n", `line 2, column 39: unknown time zone "Mars/Olympus"`},
		{"bad header", "header: yes please\ncustomer: 1\n", "line 1, column 9: header must be true or false"},
		{"long delimiter", "delimiter: ';;'\ncustomer: 1\n", "line 1, column 12: delimiter"},
		{"named with header false", "header: false\ncustomer: c\ntime: {column: 2, layout: unix}\nkind: {constant: view}\n", "no header (header: false)"},
		{"duplicate key", "customer: 1\ncustomer: 2\n", `line 2, column 1: key "customer" is given twice (first on line 1)`},
		{"duplicate nested key", "customer: 1\ntime: {column: 2, column: 3}\n", `line 2, column 19: key "column" under time is given twice (first on line 2)`},
		{"values without column", "customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: view, values: {a: view}}\n", "line 3, column 32: kind values need a kind column"},
		{"empty", "", "empty document"},
		{"not yaml", "customer: [\n", "parse mapping m.yaml: yaml: line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMapping(strings.NewReader(tt.in), "m.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "parse mapping m.yaml: ") {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			// The user wrote YAML keys, not Go: no decoder type names.
			for _, leak := range []string{"yaml.Node", "struct {", "ingest.", "!!str", "!!seq", "!!map", "unmarshal"} {
				if err != nil && strings.Contains(err.Error(), leak) {
					t.Errorf("got %v, which names the Go decoding (%q) instead of the mapping's keys", err, leak)
				}
			}
		})
	}
}

// TestMappingReadsTaobao reads the Taobao file through the generic reader and
// a mapping file, and checks that both paths give the same events.
func TestMappingReadsTaobao(t *testing.T) {
	m, err := LoadMapping("testdata/taobao.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := sharedData(t, "taobao/UserBehavior_head84k.csv")
	var direct []model.Event
	if _, err := ReadFile(context.Background(), path, Options{Format: Taobao}, func(ev model.Event) error {
		direct = append(direct, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	i := 0
	rep, err := ReadFile(context.Background(), path, Options{Format: CSV, Mapping: m}, func(ev model.Event) error {
		if i < len(direct) && ev != direct[i] {
			t.Errorf("event %d: got %+v, want %+v", i, ev, direct[i])
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != 84475 || len(direct) != 84475 {
		t.Errorf("got %d mapped and %d direct events, want 84475", rep.Events, len(direct))
	}
}

func TestParseColumn(t *testing.T) {
	for in, want := range map[string]Column{"3": {Index: 3}, "user": {Name: "user"}, "0": {Name: "0"}, "-1": {Name: "-1"}} {
		if got := ParseColumn(in); got != want {
			t.Errorf("ParseColumn(%q): got %+v, want %+v", in, got, want)
		}
	}
}

func TestParseMappingIgnore(t *testing.T) {
	in := "customer: 1\ntime: {column: 2, layout: unix}\nkind:\n  column: 3\n  values: {buy: purchase}\n  ignore: [refund, \"0\"]\n"
	m, err := ParseMapping(strings.NewReader(in), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"refund", "0"}; !reflect.DeepEqual(m.IgnoreKinds, want) {
		t.Errorf("got ignore %q, want %q", m.IgnoreKinds, want)
	}
}

// TestParseMappingHeaderFromNames: a mapping that names a column and says
// nothing of a header means a file with one (before, it was refused with "no
// header" until header: true was added); one with indexes only keeps the
// default of no header. The file below is read end to end: two events.
func TestParseMappingHeaderFromNames(t *testing.T) {
	named, err := ParseMapping(strings.NewReader("customer: id\ntime: {column: ts, layout: unix}\nkind: {constant: purchase}\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !named.Header {
		t.Fatal("a mapping naming its columns: header false, want true")
	}
	indexed, err := ParseMapping(strings.NewReader("customer: 1\ntime: {column: 2, layout: unix}\nkind: {constant: purchase}\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if indexed.Header {
		t.Fatal("a mapping of indexes only: header true, want false")
	}
	var got []model.Event
	_, err = Read(context.Background(), strings.NewReader("id,ts\na,1000\nb,2000\n"), "f.csv", Options{Format: CSV, Mapping: named}, func(e model.Event) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Customer != "a" || got[0].Time.Unix() != 1000 || got[1].Customer != "b" || got[1].Time.Unix() != 2000 {
		t.Errorf("read %+v, want a at 1000 and b at 2000", got)
	}
}
