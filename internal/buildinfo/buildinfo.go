// Package buildinfo says which build of Kairos is running: module version,
// VCS commit and time, Go version, and the feature schema the binary's
// models are built on.
package buildinfo

import (
	"fmt"
	"io"
	"runtime/debug"
	"strconv"

	"github.com/kairos-fl/kairos/model/feature"
)

// Set by the linker when the build system knows better than the Go
// toolchain's VCS stamping (a container build without .git):
//
//	go build -ldflags "-X github.com/kairos-fl/kairos/internal/buildinfo.commit=$(git rev-parse HEAD) -X github.com/kairos-fl/kairos/internal/buildinfo.date=$(date -u +%FT%TZ)"
var (
	commit  string
	date    string
	version string
)

// Info describes a build.
type Info struct {
	Module        string `json:"module"`
	Version       string `json:"version"` // module version; "(devel)" for a build from a checkout
	Commit        string `json:"commit,omitempty"`
	Modified      bool   `json:"modified,omitempty"` // the checkout had uncommitted changes
	Date          string `json:"date,omitempty"`     // commit time (VCS) or build date (ldflags)
	GoVersion     string `json:"go_version"`
	FeatureSchema int    `json:"feature_schema_version"`
	SchemaHash    string `json:"feature_schema_hash"`
}

// Read returns the running binary's build information. The linker values
// win over the toolchain's VCS stamps.
func Read() (Info, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{}, fmt.Errorf("build info: binary built without module support")
	}
	return fromBuildInfo(bi, commit, date, version)
}

func fromBuildInfo(bi *debug.BuildInfo, commit, date, version string) (Info, error) {
	s, err := feature.NewSchema(nil)
	if err != nil {
		return Info{}, fmt.Errorf("build info: %w", err)
	}
	in := Info{
		Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion,
		FeatureSchema: s.Version, SchemaHash: s.Hash,
	}
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			in.Commit = kv.Value
		case "vcs.time":
			in.Date = kv.Value
		case "vcs.modified":
			in.Modified, _ = strconv.ParseBool(kv.Value)
		}
	}
	if commit != "" {
		in.Commit = commit
	}
	if date != "" {
		in.Date = date
	}
	if version != "" {
		in.Version = version
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	return in, nil
}

// Write prints in as a few "key: value" lines.
func (in Info) Write(w io.Writer) error {
	commit := in.Commit
	if commit == "" {
		commit = "unknown"
	}
	if in.Modified {
		commit += " (modified)"
	}
	date := in.Date
	if date == "" {
		date = "unknown"
	}
	_, err := fmt.Fprintf(w, "kairos %s\nmodule: %s\ncommit: %s\ndate: %s\ngo: %s\nfeature schema: version %d, hash %s\n",
		in.Version, in.Module, commit, date, in.GoVersion, in.FeatureSchema, in.SchemaHash)
	return err
}
