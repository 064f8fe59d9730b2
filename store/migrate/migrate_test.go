package migrate

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		want    []int
		wantErr string
	}{
		{"ordered by number, not name", fstest.MapFS{
			"m/0010_ten.sql": file("10"), "m/2_two.sql": file("2"), "m/1_one.sql": file("1"),
			"m/3_x.sql": file("3"), "m/4_x.sql": file("4"), "m/5_x.sql": file("5"), "m/6_x.sql": file("6"),
			"m/7_x.sql": file("7"), "m/8_x.sql": file("8"), "m/9_x.sql": file("9"), "m/README": file("ignored"),
		}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, ""},
		{"gap", fstest.MapFS{"m/0001_a.sql": file(""), "m/0003_c.sql": file("")}, nil, "0003_c.sql: version 3, want 2"},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": file(""), "m/01_b.sql": file("")}, nil, "version 1, want 2"},
		{"no number", fstest.MapFS{"m/init.sql": file("")}, nil, "init.sql: name is not NNNN_name.sql"},
		{"zero", fstest.MapFS{"m/0000_a.sql": file("")}, nil, "not a positive integer"},
		{"empty", fstest.MapFS{"m/x.txt": file("")}, nil, "none found"},
	} {
		ms, err := Load(tc.fs, "m")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []int
		for _, m := range ms {
			got = append(got, m.Version)
			if want := tc.fs["m/"+m.Name].Data; m.SQL != string(want) {
				t.Errorf("%s: %s SQL = %q, want %q", tc.name, m.Name, m.SQL, want)
			}
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: versions %v, want %v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: versions %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
}
