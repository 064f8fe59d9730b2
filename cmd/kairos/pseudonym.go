package main

import (
	"bufio"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/crypto/pseudonym"
	"github.com/kairos-fl/kairos/model"
)

func newPseudonymCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pseudonym",
		Short: "Create a merchant's pseudonym key and pseudonymize event files",
		Long: `Customer ids are replaced by keyed HMAC-SHA256 pseudonyms (crypto/pseudonym)
before events reach any model. Each merchant holds its own key, so the same
shopper at two merchants cannot be linked.

  kairos pseudonym keygen --out shop.pkey
  kairos pseudonym apply --key shop.pkey --format cdnow --in CDNOW_master.txt --out events.csv
  kairos pseudonym apply --key shop.pkey --format csv --header --customer-col user \
      --time-col ts --time-layout "2006-01-02 15:04:05" --time-zone Europe/Berlin \
      --kind purchase --amount-col total --in orders.csv --out events.csv
  kairos pseudonym show --key shop.pkey 00001 00002`,
	}
	cmd.AddCommand(newPseudonymKeygenCmd(), newPseudonymApplyCmd(), newPseudonymShowCmd())
	return cmd
}

func newPseudonymKeygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Write a new pseudonym key file (mode 0600; never overwrites)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("pseudonym keygen: --out is required")
			}
			k, err := pseudonym.NewKey(rand.Reader)
			if err != nil {
				return fmt.Errorf("pseudonym keygen: %w", err)
			}
			if err := pseudonym.WriteKeyFile(out, k); err != nil {
				return fmt.Errorf("pseudonym keygen: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.ID())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "key file to create")
	return cmd
}

func newPseudonymShowCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "show ID...",
		Short: "Print the pseudonym of each raw customer id",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPseudonymizer(keyFile)
			if err != nil {
				return fmt.Errorf("pseudonym show: %w", err)
			}
			for _, id := range args {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", id, p.Pseudonym(id))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "pseudonym key file")
	return cmd
}

func loadPseudonymizer(keyFile string) (*pseudonym.Pseudonymizer, error) {
	if keyFile == "" {
		return nil, errors.New("--key is required")
	}
	k, err := pseudonym.ReadKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	return pseudonym.New(k, 0)
}

// mappingFlags describe a generic CSV file on the command line, as an
// alternative to a mapping YAML file.
type mappingFlags struct {
	header                                         bool
	delimiter                                      string
	customer, timeCol, layout, zone, kindCol, kind string
	kindValues                                     []string
	amount, item, category                         string
}

func (m *mappingFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&m.header, "header", false, "csv: the first line names the columns")
	f.StringVar(&m.delimiter, "delimiter", ",", "csv: field delimiter (one character; \\t for tab)")
	f.StringVar(&m.customer, "customer-col", "", "csv: customer column (header name or 1-based index)")
	f.StringVar(&m.timeCol, "time-col", "", "csv: time column")
	f.StringVar(&m.layout, "time-layout", "unix", "csv: unix, unix_ms or a Go layout such as \"2006-01-02 15:04:05\"")
	f.StringVar(&m.zone, "time-zone", "", "csv: IANA zone of timestamps without an offset")
	f.StringVar(&m.kindCol, "kind-col", "", "csv: kind column")
	f.StringVar(&m.kind, "kind", "", "csv: one kind for every row (view, cart, favorite, purchase) instead of --kind-col")
	f.StringSliceVar(&m.kindValues, "kind-value", nil, "csv: file value=kind, repeatable (default: the canonical names)")
	f.StringVar(&m.amount, "amount-col", "", "csv: amount column (optional)")
	f.StringVar(&m.item, "item-col", "", "csv: item column (optional)")
	f.StringVar(&m.category, "category-col", "", "csv: category column (optional)")
}

// set reports whether any column flag was given.
func (m *mappingFlags) set() bool { return m.customer != "" || m.timeCol != "" }

func (m *mappingFlags) mapping() (*ingest.Mapping, error) {
	d := m.delimiter
	if d == `\t` {
		d = "\t"
	}
	if len(d) != 1 {
		return nil, fmt.Errorf("--delimiter %q must be one character", m.delimiter)
	}
	col := func(s string) ingest.Column {
		if s == "" {
			return ingest.Column{}
		}
		return ingest.ParseColumn(s)
	}
	mp := &ingest.Mapping{Header: m.header, Delimiter: d[0], Customer: col(m.customer), Time: col(m.timeCol), TimeLayout: m.layout,
		Kind: col(m.kindCol), Amount: col(m.amount), Item: col(m.item), Category: col(m.category)}
	if m.zone != "" {
		z, err := time.LoadLocation(m.zone)
		if err != nil {
			return nil, fmt.Errorf("--time-zone: %w", err)
		}
		mp.TimeZone = z
	}
	if m.kind != "" {
		k, err := model.ParseKind(m.kind)
		if err != nil {
			return nil, fmt.Errorf("--kind: %w", err)
		}
		mp.ConstKind = k
	}
	for _, kv := range m.kindValues {
		raw, name, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--kind-value %q: want value=kind", kv)
		}
		k, err := model.ParseKind(name)
		if err != nil {
			return nil, fmt.Errorf("--kind-value %q: %w", kv, err)
		}
		if mp.KindValues == nil {
			mp.KindValues = map[string]model.Kind{}
		}
		mp.KindValues[raw] = k
	}
	if err := mp.Validate(); err != nil {
		return nil, err
	}
	return mp, nil
}

func newPseudonymApplyCmd() *cobra.Command {
	var mf mappingFlags
	var (
		keyFile, format, mappingFile, in, out, zone, from, to string
		skip, taobaoRange                                     bool
	)
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Read an event file and write it with pseudonymous customer ids",
		Long: `apply reads --in with a client/ingest reader and writes the events as generic CSV
(customer,time,kind,amount,item,category; unix seconds) with every customer id
replaced by its pseudonym. The output reads back with the mapping kairos gen
writes. A summary of skipped and out-of-range rows goes to standard error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadPseudonymizer(keyFile)
			if err != nil {
				return fmt.Errorf("pseudonym apply: %w", err)
			}
			opts, err := ingestOptions(format, mappingFile, zone, from, to, skip, taobaoRange, &mf)
			if err != nil {
				return fmt.Errorf("pseudonym apply: %w", err)
			}
			if in == "" {
				return errors.New("pseudonym apply: --in is required")
			}
			w := cmd.OutOrStdout()
			var f *os.File
			if out != "-" {
				if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
					return fmt.Errorf("pseudonym apply: %w", err)
				}
				defer f.Close()
				w = f
			}
			bw := bufio.NewWriterSize(w, 1<<16)
			cw := csv.NewWriter(bw)
			if err := cw.Write([]string{"customer", "time", "kind", "amount", "item", "category"}); err != nil {
				return fmt.Errorf("pseudonym apply: %w", err)
			}
			rec := make([]string, 6)
			rep, err := ingest.ReadFile(cmd.Context(), in, opts, p.Wrap(func(ev model.Event) error {
				rec[0], rec[1], rec[2] = ev.Customer, strconv.FormatInt(ev.Time.Unix(), 10), ev.Kind.String()
				rec[3] = ""
				if ev.HasAmount {
					rec[3] = strconv.FormatFloat(ev.Amount, 'f', -1, 64)
				}
				rec[4], rec[5] = ev.Item, ev.Category
				return cw.Write(rec)
			}))
			if err != nil {
				return fmt.Errorf("pseudonym apply: %w", err)
			}
			cw.Flush()
			if err := cw.Error(); err != nil {
				return fmt.Errorf("pseudonym apply: %w", err)
			}
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("pseudonym apply: %w", err)
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return fmt.Errorf("pseudonym apply: %w", err)
				}
			}
			fmt.Fprintln(cmd.ErrOrStderr(), rep.String())
			slog.Info("pseudonymized", "file", in, "key_id", p.KeyID(), "events", rep.Events, "invalid", rep.Invalid, "out_of_range", rep.OutOfRange)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&keyFile, "key", "", "pseudonym key file")
	fl.StringVar(&format, "format", "", "input format: cdnow, cdnow-sample, taobao, online-retail or csv")
	fl.StringVar(&mappingFile, "mapping", "", "mapping YAML for --format csv")
	fl.StringVar(&in, "in", "", "input file")
	fl.StringVar(&out, "out", "-", "output CSV (created, never overwritten), - for standard output")
	fl.StringVar(&zone, "zone", "", "IANA zone of naive timestamps in the input (default UTC)")
	fl.StringVar(&from, "valid-from", "", "drop events before this instant (RFC 3339 or YYYY-MM-DD in UTC)")
	fl.StringVar(&to, "valid-to", "", "drop events at or after this instant (RFC 3339 or YYYY-MM-DD in UTC)")
	fl.BoolVar(&skip, "skip-bad-rows", false, "count and skip bad rows instead of stopping at the first")
	fl.BoolVar(&taobaoRange, "taobao-range", false, "keep only Taobao's documented range 2017-11-25..12-03 (UTC+8)")
	mf.register(cmd)
	return cmd
}

// ingestOptions builds reader options from command-line values.
func ingestOptions(format, mappingFile, zone, from, to string, skip, taobaoRange bool, mf *mappingFlags) (ingest.Options, error) {
	var opts ingest.Options
	f, err := ingest.ParseFormat(format)
	if err != nil {
		return opts, err
	}
	opts.Format = f
	if f == ingest.CSV {
		switch {
		case mappingFile != "" && mf.set():
			return opts, errors.New("give --mapping or column flags, not both")
		case mappingFile != "":
			if opts.Mapping, err = ingest.LoadMapping(mappingFile); err != nil {
				return opts, err
			}
		case mf.set():
			if opts.Mapping, err = mf.mapping(); err != nil {
				return opts, err
			}
		default:
			return opts, errors.New("--format csv needs --mapping or --customer-col, --time-col and --kind-col or --kind")
		}
	}
	if zone != "" {
		if opts.Location, err = time.LoadLocation(zone); err != nil {
			return opts, fmt.Errorf("--zone: %w", err)
		}
	}
	if skip {
		opts.OnError = ingest.Skip
	}
	if taobaoRange {
		opts.ValidFrom, opts.ValidTo = ingest.TaobaoRange()
	}
	parse := func(flag, s string) (time.Time, error) {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, nil
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: %q is neither RFC 3339 nor YYYY-MM-DD", flag, s)
		}
		return t, nil
	}
	if from != "" {
		if opts.ValidFrom, err = parse("--valid-from", from); err != nil {
			return opts, err
		}
	}
	if to != "" {
		if opts.ValidTo, err = parse("--valid-to", to); err != nil {
			return opts, err
		}
	}
	return opts, nil
}
