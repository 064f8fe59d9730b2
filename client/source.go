package client

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/crypto/pseudonym"
	"github.com/kairos-fl/kairos/model"
)

// SourceOptions configure LoadEvents.
type SourceOptions struct {
	// Pseudonym is the merchant's pseudonym key. Required: customer ids are
	// replaced by their pseudonyms as they are read, so raw ids go no further.
	Pseudonym pseudonym.Key
	// KeepIDs makes LoadEvents also return the map from pseudonym back to raw id,
	// which only `kairos client score` needs, to write scores under the
	// merchant's own ids. It never leaves the merchant.
	KeepIDs bool
	// WrapReader, when set, wraps a file source's reader (size is the file size),
	// e.g. to draw a progress bar.
	WrapReader func(r io.Reader, size int64) io.Reader
}

// Dataset is a merchant's events, already pseudonymized.
type Dataset struct {
	Events []model.Event
	// IDs maps pseudonym to raw id when SourceOptions.KeepIDs was set.
	IDs map[string]string
	// Report is the file reader's report (zero for a database source).
	Report ingest.Report
	// Dropped counts events of customers outside the configured shard.
	Dropped int
}

// LoadEvents reads the events of data (a Config's data section, paths resolved
// by cfg), keeps the configured shard and pseudonymizes customer ids at the
// source.
func LoadEvents(ctx context.Context, cfg *Config, opt SourceOptions) (*Dataset, error) {
	ps, err := pseudonym.New(opt.Pseudonym, 0)
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	ds := &Dataset{}
	if opt.KeepIDs {
		ds.IDs = map[string]string{}
	}
	keep := func(string) bool { return true }
	if s := cfg.Data.Shard; s != nil {
		shares := s.Shares()
		owner := map[string]bool{}
		keep = func(id string) bool {
			k, ok := owner[id]
			if !ok {
				k = ShardOf(id, shares) == s.Index
				owner[id] = k
			}
			return k
		}
	}
	sink := ps.Wrap(func(e model.Event) error {
		ds.Events = append(ds.Events, e)
		return nil
	})
	emit := func(e model.Event) error {
		if !keep(e.Customer) {
			ds.Dropped++
			return nil
		}
		if ds.IDs != nil {
			ds.IDs[ps.Pseudonym(e.Customer)] = e.Customer
		}
		return sink(e)
	}
	if cfg.Data.Format == SourcePostgres {
		if err := readPostgres(ctx, cfg, emit); err != nil {
			return nil, fmt.Errorf("load events: %w", err)
		}
		return ds, nil
	}
	rep, err := readFile(ctx, cfg, opt.WrapReader, emit)
	ds.Report = rep
	if err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	return ds, nil
}

// ShardOf returns the part (index into shares) that holds customer: the first
// 64 bits of SHA-256("kairos-split\x00" ‖ customer) as a uniform number in
// [0, 1), placed on the cumulative shares; the last part takes any remainder.
// It is the split of the shared data README and of the federation simulation
// (client/train/sim), so that a client's shard and the simulated merchant hold
// the same customers.
func ShardOf(customer string, shares []float64) int {
	h := sha256.Sum256(append([]byte("kairos-split\x00"), customer...))
	u := float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
	var c float64
	for i, s := range shares {
		c += s
		if u < c {
			return i
		}
	}
	return len(shares) - 1
}

// DefaultMaxInvalidShare is the share of malformed rows a "skip" source
// accepts when its config names none (as kairos eval's default): a real export
// has a handful of bad rows, while a wrong mapping makes nearly every row bad,
// and a merchant that trained on the few rows left would spend its budget on
// noise without knowing.
const DefaultMaxInvalidShare = 0.01

func readFile(ctx context.Context, cfg *Config, wrap func(io.Reader, int64) io.Reader, emit func(model.Event) error) (ingest.Report, error) {
	d := cfg.Data
	format, err := ingest.ParseFormat(d.Format)
	if err != nil {
		return ingest.Report{}, err
	}
	opts := ingest.Options{Format: format}
	if d.OnError == "skip" {
		opts.OnError = ingest.Skip
		opts.MaxInvalidShare = DefaultMaxInvalidShare
		if d.MaxInvalidShare != nil {
			opts.MaxInvalidShare = *d.MaxInvalidShare
		}
	}
	if d.TimeZone != "" {
		if opts.Location, err = time.LoadLocation(d.TimeZone); err != nil {
			return ingest.Report{}, err
		}
	}
	if format == ingest.CSV {
		if opts.Mapping, err = ingest.LoadMapping(cfg.Path(d.Mapping)); err != nil {
			return ingest.Report{}, err
		}
	}
	path := cfg.Path(d.Path)
	f, err := os.Open(path)
	if err != nil {
		return ingest.Report{}, err
	}
	defer f.Close()
	var r io.Reader = f
	if wrap != nil {
		var size int64 = -1
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		r = wrap(f, size)
	}
	// A gzip-compressed or UTF-16 export reads as `kairos eval` reads it
	// (ingest.Open), and so do a workbook, a Parquet file and a zip archive,
	// which ingest.Read copies to a temporary file as it streams in; the
	// progress wrapper above counts the file's own bytes.
	if r, err = ingest.Decompressed(r); err != nil {
		return ingest.Report{}, fmt.Errorf("read %s: %w", path, err)
	}
	return ingest.Read(ctx, r, path, opts, emit)
}

// readPostgres runs the configured query and emits one event per row.
func readPostgres(ctx context.Context, cfg *Config, emit func(model.Event) error) error {
	pg := cfg.Data.Postgres
	url := pg.URL
	if pg.URLFile != "" {
		// As the passphrase file: whoever else could write it could point
		// the training at a database of their own.
		b, _, err := keys.ReadSecretLine(cfg.Path(pg.URLFile))
		if err != nil {
			return fmt.Errorf("postgres source: url_file: %w", err)
		}
		url = strings.TrimSpace(string(b))
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("postgres source: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, pg.Query)
	if err != nil {
		return fmt.Errorf("postgres source: query: %w", err)
	}
	defer rows.Close()
	if n := len(rows.FieldDescriptions()); n != 4 {
		return fmt.Errorf("postgres source: query returns %d columns, want 4 (customer, time, kind, amount)", n)
	}
	line := 0
	for rows.Next() {
		line++
		var (
			customer, kind string
			t              time.Time
			amount         *float64
		)
		if err := rows.Scan(&customer, &t, &kind, &amount); err != nil {
			return fmt.Errorf("postgres source: row %d: %w", line, err)
		}
		e, err := dbEvent(customer, t, kind, amount)
		if err != nil {
			return fmt.Errorf("postgres source: row %d: %w", line, err)
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres source: %w", err)
	}
	return nil
}

// dbEvent checks and converts one database row.
func dbEvent(customer string, t time.Time, kind string, amount *float64) (model.Event, error) {
	if customer == "" {
		return model.Event{}, errors.New("empty customer")
	}
	k, err := model.ParseKind(kind)
	if err != nil {
		return model.Event{}, fmt.Errorf("kind: %w", err)
	}
	e := model.Event{Customer: customer, Time: t.UTC(), Kind: k}
	if amount != nil {
		// The file readers' rule (ingest): finite, ≥ 0, at most model.MaxAmount.
		if !(*amount >= 0 && *amount <= model.MaxAmount) {
			return model.Event{}, fmt.Errorf("amount %v, want 0 ≤ amount ≤ %g", *amount, float64(model.MaxAmount))
		}
		e.Amount, e.HasAmount = *amount, true
	}
	return e, nil
}
