// Package migrate reads and orders the numbered SQL migrations a store
// embeds.
//
// A migration is a file NNNN_name.sql (NNNN a positive decimal version,
// any number of digits). Versions must be 1, 2, 3, … without gaps or
// duplicates, so that every database applies the same sequence. Stores apply
// each pending migration in its own transaction together with the insert of
// its version into schema_migrations.
package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema step.
type Migration struct {
	Version int
	Name    string // file name
	SQL     string
}

// Load returns the migrations in dir of fsys, ordered by version.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	files, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	var ms []Migration
	for _, f := range files {
		name := f.Name()
		if f.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("load migrations: %s: name is not NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("load migrations: %s: version %q is not a positive integer", name, num)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("load migrations: %w", err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("load migrations: %s: version %d, want %d (versions must run 1, 2, 3, … without gaps or duplicates)", m.Name, m.Version, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("load migrations: none found")
	}
	return ms, nil
}
