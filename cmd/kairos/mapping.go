package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/client/ingest"
)

// exitGuesses is the exit status of kairos mapping suggest when the mapping
// it wrote holds a guess to confirm (a "# CHECK:" line) and
// --accept-guesses was not given; 1 stays every other failure.
const exitGuesses = 3

// exitError carries the exit status main uses for err.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process exit status for an error RunE returned.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func newMappingCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mapping",
		Short: "Tools for the YAML mapping that reads a shop's export (docs/operations.md)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newMappingSuggestCmd())
	return cmd
}

func newMappingSuggestCmd() *cobra.Command {
	var (
		data, out     string
		rows          int
		acceptGuesses bool
	)
	cmd := &cobra.Command{
		Use:   "suggest",
		Short: "Write the mapping of an export (CSV, TSV, JSON Lines, gzip, .xlsx, Parquet, zip) from the head of the file",
		Long: `suggest reads the first --rows rows of an export and writes the mapping that reads it, with a
comment above each key giving the evidence for it: which column is the customer (a name that says
customer, client, kunde, user, buyer or e-mail, confirmed by ids that repeat), the order time and
its layout (ISO 8601, dates with and without a time, US month-first or day-first dates, Unix
seconds or milliseconds, Excel serials, day numbers), the amount (or a unit price and a quantity)
with its decimal mark, thousands separator, currency symbol and accounting negatives, negative
amounts (returns), a status column with its purchase and ignored values, a cancelled column, an
order id whose lines repeat the order's total, and the file's delimiter, header and encoding.
Every candidate is checked with the reader's own parsing, and the sample is then read through the
suggested mapping; the read summary goes to standard error, as kairos eval prints it. An Excel
workbook's first sheet and a Parquet file's columns are rendered as CSV for the same decisions (a
date cell as Excel's serial), and the whole file is then read through the mapping; a zip archive
of one export is read as that export.

What the sample cannot decide (two candidate customer columns, no parsable time column, a day and
month order no value resolves, several currencies) is written as the best guess with a "# CHECK:"
comment and named on standard error, and the command exits with status 3 unless --accept-guesses
is given. It exits with status 1 when no mapping can be written at all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" {
				return errors.New("mapping suggest: --data is required")
			}
			return runMappingSuggest(cmd, data, out, rows, acceptGuesses)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "the export to read (CSV, TSV, JSON Lines, gzip-compressed or not; an .xlsx workbook, a Parquet file, a zip of one export)")
	f.StringVar(&out, "out", "", "write the mapping to this file (default: standard output)")
	f.IntVar(&rows, "rows", ingest.DefaultSuggestRows, "data rows to sample from the head of the file")
	f.BoolVar(&acceptGuesses, "accept-guesses", false, "exit 0 even when the mapping holds guesses marked # CHECK")
	return cmd
}

func runMappingSuggest(cmd *cobra.Command, data, out string, rows int, acceptGuesses bool) error {
	if rows < 1 {
		return fmt.Errorf("mapping suggest: --rows %d, want at least 1", rows)
	}
	sg, err := ingest.SuggestFile(cmd.Context(), data, ingest.SuggestOptions{MaxRows: rows})
	if err != nil {
		return fmt.Errorf("mapping suggest: %w", err)
	}
	stderr := cmd.ErrOrStderr()
	if out == "" {
		if _, err := cmd.OutOrStdout().Write(sg.YAML); err != nil {
			return fmt.Errorf("mapping suggest: %w", err)
		}
	} else {
		if err := os.WriteFile(out, sg.YAML, 0o644); err != nil {
			return fmt.Errorf("mapping suggest: %w", err)
		}
		fmt.Fprintf(stderr, "wrote %s\n", out)
	}
	fmt.Fprintln(stderr, "sample read through the suggested mapping:")
	fmt.Fprintln(stderr, sg.Report)
	if len(sg.Checks) == 0 {
		return nil
	}
	fmt.Fprintf(stderr, "%d choices could not be decided from the file (marked # CHECK in the mapping):\n", len(sg.Checks))
	for _, c := range sg.Checks {
		fmt.Fprintf(stderr, "  CHECK: %s\n", c)
	}
	if acceptGuesses {
		return nil
	}
	return &exitError{code: exitGuesses, err: fmt.Errorf("mapping suggest: %d guesses to confirm (%s); edit the mapping, or pass --accept-guesses",
		len(sg.Checks), strings.TrimSuffix(firstWords(sg.Checks[0], 12), "."))}
}

// firstWords shortens s to its first n words.
func firstWords(s string, n int) string {
	w := strings.Fields(s)
	if len(w) <= n {
		return s
	}
	return strings.Join(w[:n], " ") + " …"
}

// suggestHint tells a user without a mapping how to get one.
func suggestHint(data string) string {
	if data == "" {
		data = "FILE"
	}
	return fmt.Sprintf("to write the mapping from the file, run: kairos mapping suggest --data %s --out %s.mapping.yaml", data, strings.TrimSuffix(data, ".gz"))
}
