package main

import (
	"errors"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// TestApplyMemoryLimit: a container limit of 1 TiB gives a soft limit of
// 0.9 · 2^40 = 989,560,464,998.4 bytes, rounded down (by hand); GOMEMLIMIT,
// when set, wins and the provider is not asked.
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, k := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT"} {
		t.Setenv(k, "") // restored after the test
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}

	got, err := applyMemoryLimit(memlimit.Limit(1 << 40))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(989560464998); got != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("soft limit %d (runtime %d), want %d", got, debug.SetMemoryLimit(-1), want)
	}

	debug.SetMemoryLimit(prev)
	t.Setenv("GOMEMLIMIT", "3GiB")
	asked := false
	got, err = applyMemoryLimit(func() (uint64, error) { asked = true; return 0, errors.New("not to be asked") })
	if err != nil || asked || got != prev {
		t.Errorf("with GOMEMLIMIT set: limit %d, err %v, provider asked %v; want the runtime's %d untouched", got, err, asked, prev)
	}
}
