package bgnbd

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestReadSummary(t *testing.T) {
	in := "ID,frequency,recency,T\n1,2,30.43,38.86\n2,0,0,38.86\n"
	got, err := ReadSummary(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Customer{{2, 30.43, 38.86}, {0, 0, 38.86}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// Columns by name in any order and case, lifetimes' x/t_x aliases, a BOM.
	got, err = ReadSummary(strings.NewReader("\ufeffT,X,T_X\n10,1,4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Customer{1, 4, 10}); len(got) != 1 || got[0] != want {
		t.Errorf("reordered columns: got %v, want [%+v]", got, want)
	}
}

func TestReadSummaryErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
		is             error
	}{
		{"empty", "", "empty input", nil},
		{"no rows", "frequency,recency,T\n", "no customers", nil},
		{"missing column", "frequency,T\n1,2\n", "lacks a recency column", nil},
		{"duplicate column", "x,frequency,recency,T\n1,1,1,2\n", "line 1, column 2: second frequency column", nil},
		{"bad number", "ID,frequency,recency,T\n1,2,30.43,38.86\n2,1,abc,38.86\n", "line 3, column 3 (recency): \"abc\": invalid syntax", nil},
		{"nan", "ID,frequency,recency,T\n1,NaN,0,3\n", "line 2, column 2 (frequency): \"NaN\": not a finite number", nil},
		{"wrong field count", "ID,frequency,recency,T\n1,2,3\n", "record on line 2: wrong number of fields", nil},
		{"tx beyond T", "frequency,recency,T\n1,2,3\n1,5,3\n", "line 3: invalid customer summary", ErrInvalidCustomer},
		{"fractional x", "frequency,recency,T\n1.5,2,3\n", "line 2: invalid customer summary", ErrInvalidCustomer},
		{"recency without repeat", "frequency,recency,T\n0,2,3\n", "line 2: invalid customer summary", ErrInvalidCustomer},
		{"zero age", "frequency,recency,T\n0,0,0\n", "line 2: invalid customer summary", ErrInvalidCustomer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSummary(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("got nil error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %q, want it to contain %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got error %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

func FuzzReadSummary(f *testing.F) {
	f.Add("ID,frequency,recency,T\n1,2,30.43,38.86\n2,1,1.71,38.86\n3,0,0.0,38.86\n")
	f.Add("T,x,t_x\n10,1,4\n")
	f.Add("frequency,recency,T\n1,\"2\",3\n")
	f.Add("frequency,recency,T\n1e308,1e308,1e309\n")
	f.Add("frequency,recency,T\n-0,0,1\n")
	f.Add("a,b\n\"unterminated\n")
	f.Fuzz(func(t *testing.T, in string) {
		cs, err := ReadSummary(strings.NewReader(in))
		if err != nil {
			if cs != nil {
				t.Errorf("got %d customers with error %v, want none", len(cs), err)
			}
			return
		}
		if len(cs) == 0 {
			t.Fatal("got no customers and no error")
		}
		for i, c := range cs {
			if err := c.Validate(); err != nil {
				t.Errorf("customer %d accepted but invalid: %v", i, err)
			}
			// Every accepted customer has a finite log-likelihood.
			ll, err := published.LogLikelihood([]Customer{c})
			if err != nil || math.IsNaN(ll) || math.IsInf(ll, 0) || (c.X == 0 && ll > 0) {
				t.Errorf("customer %+v: log-likelihood %v, %v", c, ll, err)
			}
		}
	})
}
