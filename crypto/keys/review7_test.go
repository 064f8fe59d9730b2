package keys

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadRefusesKeyDirWritableByOthers (round 6): the key files' own modes
// were checked but not their directory's: in a keys directory that group or
// others may write (opened up after `keys gen`, which makes it 0700) they
// could rename a pseudonym key of their own over the merchant's (and then
// link every pseudonym a partner app holds to the ids they guess), or a
// signing or checkpoint key over the aggregator's. Loading such a directory
// is refused naming it; one only they can read and enter (0755) is loaded.
func TestLoadRefusesKeyDirWritableByOthers(t *testing.T) {
	m, err := GenerateMerchant(rand.Reader, "shop-1")
	if err != nil {
		t.Fatal(err)
	}
	a, err := GenerateAggregator(rand.Reader, AggregatorOptions{Classic: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o700, true}, {0o755, true}, {0o770, false}, {0o777, false}, {0o702, false}} {
		mdir, adir := filepath.Join(t.TempDir(), "m"), filepath.Join(t.TempDir(), "a")
		if err := WriteMerchant(mdir, m, nil); err != nil {
			t.Fatal(err)
		}
		if err := WriteAggregator(adir, a, nil); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{mdir, adir} {
			if err := os.Chmod(d, tt.mode); err != nil {
				t.Fatal(err)
			}
		}
		_, merr := LoadMerchant(mdir, nil)
		_, aerr := LoadAggregator(adir, nil)
		for _, c := range []struct {
			dir string
			err error
		}{{mdir, merr}, {adir, aerr}} {
			switch {
			case tt.ok && c.err != nil:
				t.Errorf("keys directory %v: %v, want it loaded", tt.mode, c.err)
			case !tt.ok && (!errors.Is(c.err, ErrInsecureMode) || !strings.Contains(fmtErr(c.err), c.dir)):
				t.Errorf("keys directory %v: got %v, want ErrInsecureMode naming %s", tt.mode, c.err, c.dir)
			}
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
