package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// TestFromBuildInfo: the toolchain's VCS stamps are reported, the linker's
// values replace them, and the schema is the one a fresh model is built on.
func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/kairos-fl/kairos", Version: "v0.3.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	in, err := fromBuildInfo(bi, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := hazard.Initial(mustSchema(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if in.Module != "github.com/kairos-fl/kairos" || in.Version != "v0.3.0" || in.Commit != "abc123" || !in.Modified ||
		in.Date != "2026-12-01T10:00:00Z" || in.GoVersion != "go1.26.8" || in.SchemaHash != m.Schema.Hash || in.FeatureSchema != feature.SchemaVersion {
		t.Errorf("got %+v", in)
	}
	in, err = fromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/kairos-fl/kairos"}}, "def456", "2026-12-04T07:00:00Z", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if in.Commit != "def456" || in.Date != "2026-12-04T07:00:00Z" || in.Version != "v1.0.0" {
		t.Errorf("ldflags: got %+v", in)
	}
	var b strings.Builder
	if err := in.Write(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kairos v1.0.0\n", "commit: def456\n", "go: go1.26.8\n", "hash " + m.Schema.Hash} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output %q lacks %q", b.String(), want)
		}
	}
	in, _ = fromBuildInfo(&debug.BuildInfo{Main: debug.Module{Path: "m"}}, "", "", "")
	if in.Version != "(devel)" {
		t.Errorf("no version: got %q, want (devel)", in.Version)
	}
}

func mustSchema(t *testing.T) feature.Schema {
	t.Helper()
	s, err := feature.NewSchema(nil) // every feature, as a policy allowing [all]
	if err != nil {
		t.Fatal(err)
	}
	return s
}
