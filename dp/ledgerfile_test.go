package dp_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/dp"
)

func TestParseReleaseSpec(t *testing.T) {
	tests := []struct {
		spec string
		want dp.Release
	}{
		{"q=0.01,z=1.1,steps=100", dp.Release{Mechanism: dp.Gaussian, Q: 0.01, Z: 1.1, Steps: 100}},
		{" Q = 1 , z=4", dp.Release{Mechanism: dp.Gaussian, Q: 1, Z: 4, Steps: 1}},
		{"rho=0.03125", dp.Release{Mechanism: dp.ZCDP, Rho: 0.03125, Steps: 1}},
		{"mechanism=pure,epsilon=0.5,steps=3", dp.Release{Mechanism: dp.Pure, Epsilon: 0.5, Steps: 3}},
	}
	for _, tt := range tests {
		got, err := dp.ParseReleaseSpec(tt.spec)
		if err != nil {
			t.Errorf("ParseReleaseSpec(%q): %v", tt.spec, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseReleaseSpec(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
	bad := []struct {
		spec string
		col  int
	}{
		{"q=0.01,z=x", 8},
		{"q=0.01,z=1,steps=0", 12},
		{"q=2,z=1", 1},
		{"q=0.1,z=1,q=0.2", 11},
		{"q=0.1,zz=1", 7},
		{"q=0.1", 1},
		{"q=0.1;z=1", 1},
		{"rho=0.1,z=1", 1},
		{"q=0.1,z=NaN", 7},
	}
	for _, tt := range bad {
		_, err := dp.ParseReleaseSpec(tt.spec)
		var pe *dp.ParseError
		if !errors.As(err, &pe) || !errors.Is(err, dp.ErrInvalidParameter) {
			t.Errorf("ParseReleaseSpec(%q) = %v, want a *ParseError wrapping ErrInvalidParameter", tt.spec, err)
			continue
		}
		if pe.Column != tt.col {
			t.Errorf("ParseReleaseSpec(%q): column %d, want %d (%v)", tt.spec, pe.Column, tt.col, err)
		}
	}
}

func TestParseReleases(t *testing.T) {
	want := []dp.Release{
		{Mechanism: dp.Gaussian, Q: 0.01, Z: 1.1, Steps: 100},
		{Mechanism: dp.ZCDP, Rho: 0.02, Steps: 1},
		{Mechanism: dp.Pure, Epsilon: 0.3, Steps: 2},
	}
	inputs := map[string]string{
		"jsonl": "\n{\"q\":0.01,\"z\":1.1,\"steps\":100}\n\n{\"rho\":0.02}\n{\"mechanism\":\"pure\",\"epsilon\":0.3,\"steps\":2}\n",
		"csv":   "mechanism,q,z,steps,rho,epsilon\ngaussian,0.01,1.1,100,,\n,,,,0.02,\npure,,,2,,0.3\n",
	}
	for name, in := range inputs {
		got, err := dp.ParseReleases(strings.NewReader(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	if got, err := dp.ParseReleases(strings.NewReader(" \n\n")); err != nil || len(got) != 0 {
		t.Errorf("blank file: %v, %v, want no releases", got, err)
	}
}

func TestParseReleasesErrorsNamePosition(t *testing.T) {
	tests := []struct {
		name, in  string
		line, col int
	}{
		{"json bad value", "{\"q\":0.01,\"z\":1.1,\"steps\":100}\n{\"q\":0.01, \"z\":-1}\n", 2, 12},
		{"json unknown key", "{\"q\":0.01,\"z\":1,\"sigma\":2}\n", 1, 17},
		{"json syntax", "{\"q\":0.01,\"z\":1\n", 1, 16},
		{"json string number", "{\"q\":\"0.1\",\"z\":1}\n", 1, 2},
		{"json trailing", "{\"q\":0.1,\"z\":1} x\n", 1, 17},
		{"json missing z", "\n\n{\"q\":0.1}\n", 3, 1},
		{"csv bad header", "q,z,sigma\n0.1,1,2\n", 1, 5},
		{"csv bad cell", "q,z,steps\n0.1,1,5\n0.1,1,x\n", 3, 7},
		{"csv wrong field count", "q,z\n0.1,1\n0.1\n", 3, 1},
		{"csv missing z", "q,steps\n0.1,5\n", 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dp.ParseReleases(strings.NewReader(tt.in))
			var pe *dp.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if pe.Line != tt.line || pe.Column != tt.col {
				t.Errorf("at line %d, column %d, want line %d, column %d (%v)", pe.Line, pe.Column, tt.line, tt.col, err)
			}
		})
	}
}

func FuzzParseReleases(f *testing.F) {
	f.Add("{\"q\":0.01,\"z\":1.1,\"steps\":100}\n{\"rho\":0.02}\n")
	f.Add("mechanism,q,z,steps,rho,epsilon\ngaussian,0.01,1.1,100,,\n,,,,0.02,\npure,,,2,,0.3\n")
	f.Add("q,z\n1,4.530877117\n")
	f.Add("{\"mechanism\":\"pure\",\"epsilon\":1e-300}")
	f.Add("{\"q\":0.1,\"z\":1,\"q\":0.2}")
	f.Add("\"q\nz\"")
	f.Add("{\"mechanism\":\"ddgauss\",\"q\":0.05,\"sigma2\":250000,\"cohort\":10,\"l2\":1040,\"l1\":8320,\"dim\":64,\"steps\":40}\n")
	f.Add("mechanism,q,sigma2,cohort,l2,l1,dim,steps\nddgauss,0.05,0.25,3,1,1,1,2\n")
	f.Fuzz(func(t *testing.T, in string) {
		rs, err := dp.ParseReleases(strings.NewReader(in))
		if err != nil {
			var pe *dp.ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Column < 0 {
				t.Fatalf("error without a valid position: %v", err)
			}
			return
		}
		for i, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatalf("release %d = %+v accepted but invalid: %v", i, r, err)
			}
		}
		var buf bytes.Buffer
		if err := dp.WriteReleases(&buf, rs); err != nil {
			t.Fatalf("write back: %v", err)
		}
		again, err := dp.ParseReleases(&buf)
		if err != nil {
			t.Fatalf("re-read %q: %v", buf.String(), err)
		}
		if len(rs) != len(again) || (len(rs) > 0 && !reflect.DeepEqual(rs, again)) {
			t.Fatalf("round trip: %+v became %+v", rs, again)
		}
	})
}

func FuzzParseReleaseSpec(f *testing.F) {
	for _, s := range []string{"q=0.01,z=1.1,steps=100", "rho=0.1", "mechanism=pure,epsilon=1", "q=,z=", "=,=", "steps=9999999999999999999", "q=1,sigma2=0.25,cohort=2,l2=1,l1=1,dim=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		r, err := dp.ParseReleaseSpec(spec)
		if err != nil {
			var pe *dp.ParseError
			if !errors.As(err, &pe) || pe.Column < 1 || pe.Column > len(spec)+1 {
				t.Fatalf("ParseReleaseSpec(%q): error without a valid column: %v", spec, err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseReleaseSpec(%q) = %+v accepted but invalid: %v", spec, r, err)
		}
	})
}
