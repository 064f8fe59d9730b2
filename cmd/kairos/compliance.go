package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/audit"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/store"
)

func newComplianceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "compliance",
		Short: "Compliance reports: verify and export the tamper-evident audit log",
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

--db takes a postgres:// URL or an SQLite file path (optionally prefixed sqlite:).`,
	}
	auditCmd.AddCommand(newAuditVerifyCmd(), newAuditExportCmd())
	cmd.AddCommand(auditCmd)
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var db, file, keyDir, keyFile string
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
				if src, err = audit.ReadExport(f); err != nil {
					return fmt.Errorf("audit verify: %s: %w", file, err)
				}
			} else {
				s, err := openExisting(ctx, db)
				if err != nil {
					return fmt.Errorf("audit verify: %w", err)
				}
				defer s.Close()
				src = s
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
	return cmd
}

func newAuditExportCmd() *cobra.Command {
	var db, out string
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
			if out == "" || out == "-" {
				return audit.Export(ctx, s, cmd.OutOrStdout())
			}
			return writeFileVia(out, func(w io.Writer) error { return audit.Export(ctx, s, w) })
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database: postgres://… URL or SQLite file path")
	cmd.Flags().StringVar(&out, "out", "", "output file (default standard output)")
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
