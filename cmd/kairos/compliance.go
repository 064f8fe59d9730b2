package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/compliance/report"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

func newComplianceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compliance",
		Short: "Compliance: privacy budgets, the HTML report, and the tamper-evident audit log",
	}
	auditCmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify or export the audit log",
		Long: `The audit log is a hash chain with Ed25519-signed checkpoints (see the audit
package documentation for the exact encoding, so the check can be re-implemented).

  kairos compliance audit verify --db kairos.db --keys agg-keys
  kairos compliance audit verify --db postgres://host/kairos --checkpoint-key checkpoint.pub
  kairos compliance audit export --db kairos.db --out audit.jsonl
  kairos compliance audit verify --file audit.jsonl --checkpoint-key checkpoint.pub
  kairos compliance audit witness --db kairos.db --keys agg-keys --witness witness.jsonl
  kairos compliance audit verify --db kairos.db --keys agg-keys --witness witness.jsonl

The log alone cannot show that its tail was cut together with the checkpoints
covering it, or that it was rewritten and re-chained after its checkpoints were
deleted. A witness file, kept by the reviewer outside the aggregator's database and
updated regularly with "audit witness", holds the signed checkpoints seen so far;
"audit witness" refuses a log inconsistent with it, and "audit verify --witness"
checks the log against every checkpoint in it. The aggregator also appends every
checkpoint it signs (every second in which the log moved) to the file named by
audit.witness in its config; both commands read that file too.

--db takes a postgres:// URL or an SQLite file path (optionally prefixed sqlite:).`,
	}
	auditCmd.AddCommand(newAuditVerifyCmd(), newAuditExportCmd(), newAuditWitnessCmd())
	cmd.AddCommand(auditCmd, newComplianceBudgetsCmd(), newComplianceReportCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var db, file, keyDir, keyFile, witness, tail string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the chain and every checkpoint; print OK or the first bad entry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (db == "") == (file == "") {
				return errors.New("audit verify: give exactly one of --db and --file")
			}
			if (keyDir == "") == (keyFile == "") {
				return errors.New("audit verify: give exactly one of --keys and --checkpoint-key")
			}
			switch tail {
			case "":
				// A file is evidence handed over: all of it must be signed. A
				// live database's newest entries wait up to a second for theirs.
				tail = "note"
				if file != "" {
					tail = "fail"
				}
			case "fail", "note":
			default:
				return fmt.Errorf("audit verify: --unsigned-tail %q: want fail or note", tail)
			}
			pub, err := checkpointKey(keyDir, keyFile)
			if err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
			ctx := cmd.Context()
			var src audit.Source
			if file != "" {
				f, err := os.Open(file)
				if err != nil {
					return fmt.Errorf("audit verify: %w", err)
				}
				defer f.Close()
				snap, err := audit.ReadExport(f)
				if err != nil {
					return fmt.Errorf("audit verify: %s: %w", file, err)
				}
				if n, _ := snap.Len(); n == 0 {
					// Nothing to verify is not a verified log: an empty file, or
					// one cut before its first line, proves nothing.
					ve := &audit.VerifyError{Seq: 1, Reason: "missing: " + file + " holds no audit entry (empty, or cut before its first line)"}
					fmt.Fprintf(cmd.OutOrStdout(), "FAIL: %s\n", ve.Error())
					return ve
				}
				src = snap
			} else {
				s, err := openExisting(ctx, db)
				if err != nil {
					return fmt.Errorf("audit verify: %w", err)
				}
				defer s.Close()
				src = s
			}
			if witness != "" {
				cps, err := readWitnessFile(witness, pub)
				if err != nil {
					return fmt.Errorf("audit verify: %w", err)
				}
				src = audit.Witnessed(src, cps)
			}
			res, err := audit.Verify(ctx, src, pub)
			out := cmd.OutOrStdout()
			if ve := (*audit.VerifyError)(nil); errors.As(err, &ve) {
				fmt.Fprintf(out, "FAIL: %s\n", ve.Error())
				fmt.Fprintf(out, "verified before it: %d entries, %d checkpoints\n", res.Entries, res.Checkpoints)
				return err
			}
			if err != nil {
				return err
			}
			if res.Entries > res.LastCheckpointSeq && tail == "fail" {
				// The chain alone is no evidence: whoever holds the file can
				// rewrite or extend it and recompute every hash.
				ve := &audit.VerifyError{Seq: res.LastCheckpointSeq + 1, Reason: fmt.Sprintf(
					"unsigned: entries %d..%d are covered by no signed checkpoint, so nothing shows the aggregator wrote them "+
						"(export again after its next checkpoint, or pass --unsigned-tail note to check their chain only)",
					res.LastCheckpointSeq+1, res.Entries)}
				fmt.Fprintf(out, "FAIL: %s\n", ve.Error())
				fmt.Fprintf(out, "verified before it: %d entries, %d checkpoints\n", res.LastCheckpointSeq, res.Checkpoints)
				return ve
			}
			fmt.Fprintf(out, "OK: %d entries, %d checkpoints, head %s\n", res.Entries, res.Checkpoints, res.Head)
			if res.Entries > res.LastCheckpointSeq {
				fmt.Fprintf(out, "note: entries %d..%d are chained but not yet covered by a signed checkpoint\n",
					res.LastCheckpointSeq+1, res.Entries)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database: postgres://… URL or SQLite file path")
	cmd.Flags().StringVar(&file, "file", "", "verify an export file (JSON lines) instead of a database")
	cmd.Flags().StringVar(&keyDir, "keys", "", "aggregator key directory holding checkpoint.pub")
	cmd.Flags().StringVar(&keyFile, "checkpoint-key", "", "checkpoint public key file (PKIX PEM, as checkpoint.pub)")
	cmd.Flags().StringVar(&witness, "witness", "", "also check the log against the checkpoints in this witness file (kairos compliance audit witness)")
	cmd.Flags().StringVar(&tail, "unsigned-tail", "",
		"entries after the last signed checkpoint: fail (default with --file) or note (default with --db)")
	return cmd
}

func newAuditWitnessCmd() *cobra.Command {
	var db, keyDir, keyFile, witness string
	cmd := &cobra.Command{
		Use:   "witness --db DB (--keys DIR | --checkpoint-key FILE) --witness FILE",
		Short: "Add the log's new signed checkpoints to a witness file kept outside the database",
		Long: `Witness reads the log's signed checkpoints and adds the new ones to the witness
file (created if absent; new lines are appended and fsynced, so the aggregator may
push to the same file), after checking that the log agrees with every checkpoint
the file already holds: the same hash for the same entry, and checkpoints reaching
at least as far. A log that was rewritten or cut is refused and the file is left as
it was. Keep the file where the aggregator's operators cannot write, and run this
regularly (a cron job); "audit verify --witness" then checks every entry the file
covers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" || witness == "" {
				return errors.New("audit witness: --db and --witness are required")
			}
			if (keyDir == "") == (keyFile == "") {
				return errors.New("audit witness: give exactly one of --keys and --checkpoint-key")
			}
			pub, err := checkpointKey(keyDir, keyFile)
			if err != nil {
				return fmt.Errorf("audit witness: %w", err)
			}
			ctx := cmd.Context()
			fw, err := audit.NewFileWitness(witness, pub)
			if err != nil {
				return fmt.Errorf("audit witness: %w", err)
			}
			held, err := fw.Checkpoints(ctx)
			if err != nil {
				return fmt.Errorf("audit witness: %w", err)
			}
			s, err := openExisting(ctx, db)
			if err != nil {
				return fmt.Errorf("audit witness: %w", err)
			}
			defer s.Close()
			fresh, err := s.AuditCheckpoints(ctx)
			if err != nil {
				return fmt.Errorf("audit witness: %w", err)
			}
			merged, added, err := audit.MergeWitness(held, fresh, pub)
			if err != nil {
				return fmt.Errorf("audit witness: %s: %w", witness, err)
			}
			// Checkpoints compared seq by seq miss a log grown again after a
			// cut whose checkpoints at the witnessed seqs were deleted: walk it.
			if err := audit.CheckAgainstWitness(ctx, s, held, pub); err != nil {
				return fmt.Errorf("audit witness: %s: %w", witness, err)
			}
			// Append only the new ones: the aggregator may be appending to
			// the same file (audit.witness), and a rewrite could drop its lines.
			heldSeq := make(map[uint64]bool, len(held))
			for _, c := range held {
				heldSeq[c.Seq] = true
			}
			var add []audit.Checkpoint
			for _, c := range merged {
				if !heldSeq[c.Seq] {
					add = append(add, c)
				}
			}
			if err := fw.Add(ctx, add); err != nil {
				return fmt.Errorf("audit witness: %w", err)
			}
			last := uint64(0)
			if len(merged) > 0 {
				last = merged[len(merged)-1].Seq
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "witness %s: %d checkpoints (%d new), the last at entry %d\n", witness, len(merged), added, last)
			return err
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database: postgres://… URL or SQLite file path")
	cmd.Flags().StringVar(&keyDir, "keys", "", "aggregator key directory holding checkpoint.pub")
	cmd.Flags().StringVar(&keyFile, "checkpoint-key", "", "checkpoint public key file (PKIX PEM, as checkpoint.pub)")
	cmd.Flags().StringVar(&witness, "witness", "", "the witness file (JSON lines of signed checkpoints)")
	return cmd
}

// readWitnessFile reads a witness file whose checkpoints verify under pub.
func readWitnessFile(path string, pub ed25519.PublicKey) ([]audit.Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cps, err := audit.ReadWitness(f, pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cps, nil
}

func newAuditExportCmd() *cobra.Command {
	var db, out string
	var unsigned bool
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the audit log as JSON lines, with everything needed to verify it offline",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				return errors.New("audit export: --db is required")
			}
			ctx := cmd.Context()
			s, err := openExisting(ctx, db)
			if err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			defer s.Close()
			var src audit.Source = s
			if !unsigned {
				src = audit.Signed(s)
				head, err := s.AuditHead(ctx)
				if err != nil {
					return fmt.Errorf("audit export: %w", err)
				}
				if head.Seq > head.CheckpointSeq {
					fmt.Fprintf(cmd.ErrOrStderr(), "audit export: entries %d..%d are not yet covered by a signed checkpoint and were left out "+
						"(the aggregator signs one within a second of the log moving: export again, or pass --include-unsigned)\n",
						head.CheckpointSeq+1, head.Seq)
				}
			}
			if out == "" || out == "-" {
				return audit.Export(ctx, src, cmd.OutOrStdout())
			}
			return writeFileVia(out, func(w io.Writer) error { return audit.Export(ctx, src, w) })
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database: postgres://… URL or SQLite file path")
	cmd.Flags().StringVar(&out, "out", "", "output file (default standard output)")
	cmd.Flags().BoolVar(&unsigned, "include-unsigned", false,
		"also write the entries after the last signed checkpoint (verify --file then refuses them unless --unsigned-tail note)")
	return cmd
}

// openExisting opens a store without creating an SQLite file that is not
// there, and without migrating: these commands only read.
func openExisting(ctx context.Context, url string) (store.Store, error) {
	if !store.IsPostgres(url) {
		if _, err := os.Stat(strings.TrimPrefix(url, "sqlite:")); err != nil {
			return nil, err
		}
	}
	return store.Open(ctx, url)
}

// checkpointKey reads the checkpoint public key from an aggregator key
// directory or a PEM file.
func checkpointKey(dir, file string) (ed25519.PublicKey, error) {
	if dir != "" {
		p, err := keys.LoadAggregatorPublic(dir)
		if err != nil {
			return nil, err
		}
		return p.Checkpoint, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%s: no PEM PUBLIC KEY block", file)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not an Ed25519 public key", file, k)
	}
	return pub, nil
}

// writeFileVia writes path through a temporary file in the same directory
// and renames it into place, so a failed export leaves no partial file.
func writeFileVia(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func newComplianceBudgetsCmd() *cobra.Command {
	var db, policyFile, chartDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "budgets",
		Short: "Each merchant's ε spent against its cap, recomputed from the ledger",
		Long: `Reads every merchant's privacy ledger from the database and recomputes its ε at
the policy's δ by composing the RDP curves of all its releases (never by adding
ε values), with a plain-language privacy statement.

  kairos compliance budgets --db kairos.db --policy policy.yaml
  kairos compliance budgets --db kairos.db --policy policy.yaml --json --chart-dir charts/

--chart-dir writes one SVG chart of ε spent over time per merchant (<merchant>.svg: ε after
each release over time against the cap).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" || policyFile == "" {
				return errors.New("compliance budgets: --db and --policy are required")
			}
			ctx := cmd.Context()
			fst, pol, closeStore, err := openForCompliance(ctx, db, policyFile)
			if err != nil {
				return fmt.Errorf("compliance budgets: %w", err)
			}
			defer closeStore()
			bs, err := compliance.LoadBudgets(ctx, fst, pol)
			if err != nil {
				return fmt.Errorf("compliance budgets: %w", err)
			}
			if src, ok := fst.(audit.Source); ok {
				// The merchants' own caps, from their merchant.stop entries, as the report shows them.
				if err := report.AddLocalCaps(ctx, src, bs); err != nil {
					return fmt.Errorf("compliance budgets: %w", err)
				}
			}
			if chartDir != "" {
				if err := writeCharts(chartDir, bs); err != nil {
					return fmt.Errorf("compliance budgets: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Budgets []compliance.Budget `json:"budgets"`
				}{bs})
			}
			return printBudgets(out, bs)
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database: postgres://… URL or SQLite file path")
	cmd.Flags().StringVar(&policyFile, "policy", "", "federation policy file (caps and δ)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (with the ε after every release) instead of a table")
	cmd.Flags().StringVar(&chartDir, "chart-dir", "", "write an SVG chart of ε spent over time per merchant into this directory")
	return cmd
}

func newComplianceReportCmd() *cobra.Command {
	var db, policyFile, keyDir, keyFile, out, witness string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write one self-contained HTML compliance report",
		Long: `Writes one HTML file with no external resources: every merchant's budget with its
chart of ε spent over time and privacy statement, the model versions with their lineage
(round, parent, contributing merchants and their ε, policy and schema hashes),
the policy hashes the registry has seen, and the audit log's verification
result. The report is written even when verification fails; the command then
exits non-zero.

With --witness the log is also checked against the checkpoints of a witness file
(kairos compliance audit witness), as "audit verify --witness" does: the log alone
cannot show a tail cut together with its checkpoints, or a rollback to a backup.

  kairos compliance report --db kairos.db --keys agg-keys --policy policy.yaml --out report.html`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case db == "" || policyFile == "" || out == "":
				return errors.New("compliance report: --db, --policy and --out are required")
			case (keyDir == "") == (keyFile == ""):
				return errors.New("compliance report: give exactly one of --keys and --checkpoint-key")
			}
			pub, err := checkpointKey(keyDir, keyFile)
			if err != nil {
				return fmt.Errorf("compliance report: %w", err)
			}
			ctx := cmd.Context()
			st, err := openExisting(ctx, db)
			if err != nil {
				return fmt.Errorf("compliance report: %w", err)
			}
			defer st.Close()
			fst, pol, err := federationOf(st, policyFile)
			if err != nil {
				return fmt.Errorf("compliance report: %w", err)
			}
			var src audit.Source = st
			if witness != "" {
				cps, err := readWitnessFile(witness, pub)
				if err != nil {
					return fmt.Errorf("compliance report: %w", err)
				}
				src = audit.Witnessed(st, cps)
			}
			r, err := report.Gather(ctx, report.Sources{Store: fst, Audit: src, Policy: pol, CheckpointKey: pub, Source: config.RedactDB(db)})
			if err != nil {
				return fmt.Errorf("compliance report: %w", err)
			}
			if err := writeFileVia(out, func(w io.Writer) error { return report.HTML(w, r) }); err != nil {
				return fmt.Errorf("compliance report: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d merchants, %d model versions, %d policy hashes\n%s\n",
				out, len(r.Budgets), len(r.Models), len(r.Policies), r.Audit.Line())
			if !r.Audit.OK {
				return fmt.Errorf("compliance report: audit log verification failed: %s", r.Audit.Failure)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database: postgres://… URL or SQLite file path")
	cmd.Flags().StringVar(&policyFile, "policy", "", "federation policy file in force")
	cmd.Flags().StringVar(&keyDir, "keys", "", "aggregator key directory holding checkpoint.pub")
	cmd.Flags().StringVar(&keyFile, "checkpoint-key", "", "checkpoint public key file (PKIX PEM, as checkpoint.pub)")
	cmd.Flags().StringVar(&out, "out", "", "output HTML file")
	cmd.Flags().StringVar(&witness, "witness", "", "also check the log against the checkpoints in this witness file (kairos compliance audit witness)")
	return cmd
}

// openForCompliance opens an existing store read-only in spirit (no
// migration) and parses the policy.
func openForCompliance(ctx context.Context, db, policyFile string) (aggregator.Store, *policies.Policy, func(), error) {
	st, err := openExisting(ctx, db)
	if err != nil {
		return nil, nil, nil, err
	}
	fst, pol, err := federationOf(st, policyFile)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return fst, pol, st.Close, nil
}

// federationOf returns st's federation tables and the parsed policy.
func federationOf(st store.Store, policyFile string) (aggregator.Store, *policies.Policy, error) {
	fst, ok := st.(aggregator.Store)
	if !ok {
		return nil, nil, fmt.Errorf("store %T has no federation tables", st)
	}
	data, err := os.ReadFile(policyFile)
	if err != nil {
		return nil, nil, err
	}
	pol, err := policies.Parse(policyFile, data)
	if err != nil {
		return nil, nil, err
	}
	return fst, pol, nil
}

func printBudgets(w io.Writer, bs []compliance.Budget) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MERCHANT\tEPSILON\tCAP\tUSED\tDELTA\tRELEASES\tLAST RELEASE")
	for _, b := range bs {
		capText, used := "none", "-"
		if b.InPolicy {
			capText = fmt.Sprint(b.Cap)
			used = fmt.Sprintf("%.2f%%", 100*b.Epsilon/b.Cap)
		}
		last := "-"
		if !b.LastRelease.IsZero() {
			last = b.LastRelease.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%.5f\t%s\t%s\t%g\t%d\t%s\n", b.Merchant, b.Epsilon, capText, used, b.Delta, b.Releases, last)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, b := range bs {
		if _, err := fmt.Fprintf(w, "\n%s: %s\n", b.Merchant, b.Statement); err != nil {
			return err
		}
	}
	return nil
}

// safeName is what a merchant id may look like to become a file name as is.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// writeCharts writes <merchant>.svg for each budget into dir.
func writeCharts(dir string, bs []compliance.Budget) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, b := range bs {
		name := b.Merchant
		if !safeName.MatchString(name) {
			name = url.PathEscape(name)
			if !safeName.MatchString(name) {
				return fmt.Errorf("merchant id %q cannot be a chart file name", b.Merchant)
			}
		}
		svg := report.Chart(b)
		if err := writeFileVia(filepath.Join(dir, name+".svg"), func(w io.Writer) error {
			_, err := w.Write(svg)
			return err
		}); err != nil {
			return fmt.Errorf("chart of %s: %w", b.Merchant, err)
		}
	}
	return nil
}
