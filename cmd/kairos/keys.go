package main

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/crypto/keys"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, publish and rotate the keys a merchant or the aggregator holds",
		Long: `Key directories hold small files (see the crypto/keys package documentation).
Private files are written 0600 in a 0700 directory and refused if group or
others can read them; files ending in .pub hold only public parts.

  kairos keys gen --role aggregator --out agg-keys
  kairos keys gen --role merchant --id shop-1 --out shop-keys --passphrase-file pw.txt
  kairos keys public agg-keys          # JSON for enrolment
  kairos keys rotate-jwt agg-keys      # new active JWT key, old ones kept
  kairos keys remove-jwt agg-keys KID  # stop accepting tokens of a retired key`,
	}
	cmd.AddCommand(newKeysGenCmd(), newKeysPublicCmd(), newKeysRotateJWTCmd(), newKeysRemoveJWTCmd())
	return cmd
}

// passphraseFlags are the protection flags shared by the subcommands that write keys.
type passphraseFlags struct {
	file       string
	workFactor int
}

func (p *passphraseFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.file, "passphrase-file", "", "file whose first line is the passphrase protecting the private key files (age scrypt)")
	cmd.Flags().IntVar(&p.workFactor, "scrypt-work-factor", keys.DefaultScryptWorkFactor, "scrypt log2(N) for newly encrypted files (10-22)")
}

// passphrase returns nil when no passphrase file was given.
// Without --passphrase-file it reads $KAIROS_PASSPHRASE_FILE, then
// $KAIROS_PASSPHRASE. A file group or others can write is refused, one they
// can read is used with a warning on stderr (readPassphraseFile).
func (p *passphraseFlags) passphrase(stderr io.Writer) ([]byte, error) {
	file := p.file
	if file == "" {
		file = os.Getenv(envPassphraseFile)
	}
	if file == "" {
		if v := os.Getenv(envPassphrase); v != "" {
			return []byte(v), nil
		}
		return nil, nil
	}
	return readPassphraseFile(stderr, file)
}

// readPassphraseFile reads the first line of a passphrase file with
// keys.ReadSecretLine, warning on stderr when group or others can read it.
func readPassphraseFile(stderr io.Writer, path string) ([]byte, error) {
	line, mode, err := keys.ReadSecretLine(path)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	warnReadableSecret(stderr, path, mode)
	return line, nil
}

// warnReadableSecret says on stderr that group or others can read the
// secret file path (keys.ReadSecretLine accepts such files, which container
// runtimes mount with the host file's mode).
func warnReadableSecret(stderr io.Writer, path string, mode fs.FileMode) {
	if path == "" || !keys.ReadableByOthers(mode) {
		return
	}
	fmt.Fprintf(stderr, "kairos: warning: %s has mode %#o: group or others can read it; chmod 600 it unless a container runtime mounts it so\n", path, mode.Perm())
}

func (p *passphraseFlags) writeOptions(stderr io.Writer) (keys.WriteOptions, error) {
	pass, err := p.passphrase(stderr)
	if err != nil {
		return keys.WriteOptions{}, err
	}
	return keys.WriteOptions{Passphrase: pass, ScryptWorkFactor: p.workFactor}, nil
}

func newKeysGenCmd() *cobra.Command {
	var (
		role, out, id string
		classic, keep bool
		pf            passphraseFlags
	)
	cmd := &cobra.Command{
		Use:   "gen --role aggregator|merchant --out DIR",
		Short: "Create a new key directory for the aggregator or a merchant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("keys gen: --out is required")
			}
			if err := requireEmptyDir(out); err != nil {
				if keep && role == "merchant" {
					if p, perr := keys.LoadMerchantPublic(out); perr == nil && p.ID == id {
						_, err := fmt.Fprintf(cmd.ErrOrStderr(), "keys gen: %s already holds the keys of merchant %s; kept\n", out, id)
						return err
					}
				}
				if keep && role == "aggregator" {
					if _, perr := keys.LoadAggregatorPublic(out); perr == nil {
						_, err := fmt.Fprintf(cmd.ErrOrStderr(), "keys gen: %s already holds aggregator keys; kept\n", out)
						return err
					}
				}
				return fmt.Errorf("keys gen: %w", err)
			}
			opts, err := pf.writeOptions(cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("keys gen: %w", err)
			}
			switch role {
			case "aggregator":
				if id != "" {
					return errors.New("keys gen: --id is for merchants only")
				}
				a, err := keys.GenerateAggregator(rand.Reader, keys.AggregatorOptions{Classic: classic})
				if err != nil {
					return fmt.Errorf("keys gen: %w", err)
				}
				if err := keys.WriteAggregatorWithOptions(out, a, opts); err != nil {
					return fmt.Errorf("keys gen: %w", err)
				}
				return printJSON(cmd.OutOrStdout(), publicView{Role: "aggregator", Aggregator: ptr(a.Public())})
			case "merchant":
				if classic {
					return errors.New("keys gen: --classic is for the aggregator only")
				}
				if id == "" {
					return errors.New("keys gen: --id is required for a merchant")
				}
				m, err := keys.GenerateMerchant(rand.Reader, id)
				if err != nil {
					return fmt.Errorf("keys gen: %w", err)
				}
				if err := keys.WriteMerchantWithOptions(out, m, opts); err != nil {
					return fmt.Errorf("keys gen: %w", err)
				}
				return printJSON(cmd.OutOrStdout(), publicView{Role: "merchant", Merchant: ptr(m.Public())})
			default:
				return fmt.Errorf("keys gen: --role %q: want aggregator or merchant", role)
			}
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "aggregator or merchant")
	cmd.Flags().StringVar(&out, "out", "", "directory to create (must not exist or be empty)")
	cmd.Flags().StringVar(&id, "id", "", "merchant id ([A-Za-z0-9._-], at most 64 bytes)")
	cmd.Flags().BoolVar(&classic, "classic", false, "aggregator: X25519 age identity instead of the post-quantum hybrid")
	cmd.Flags().BoolVar(&keep, "keep-existing", false, "when --out already holds keys of this role (and --id), keep them and exit 0 (container start-up)")
	pf.register(cmd)
	return cmd
}

// publicView is what `keys public` and `keys gen` print.
type publicView struct {
	Role       string                 `json:"role"`
	Aggregator *keys.AggregatorPublic `json:"aggregator,omitempty"`
	Merchant   *keys.MerchantPublic   `json:"merchant,omitempty"`
}

func ptr[T any](v T) *T { return &v }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// requireEmptyDir refuses to generate keys over an existing key directory.
func requireEmptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty; refusing to overwrite keys", dir)
	}
	return nil
}

// isMerchantDir tells the two kinds of key directory apart by their id file.
func isMerchantDir(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, keys.FileMerchantID))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if _, err := os.Stat(filepath.Join(dir, keys.FileAgeRecipient)); err != nil {
		return false, fmt.Errorf("%s is not a key directory: %w", dir, err)
	}
	return false, nil
}

func newKeysPublicCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "public DIR",
		Short: "Print the public parts of a key directory as JSON (for enrolment)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			merchant, err := isMerchantDir(dir)
			if err != nil {
				return fmt.Errorf("keys public: %w", err)
			}
			if merchant {
				p, err := keys.LoadMerchantPublic(dir)
				if err != nil {
					return fmt.Errorf("keys public: %w", err)
				}
				return printJSON(cmd.OutOrStdout(), publicView{Role: "merchant", Merchant: &p})
			}
			p, err := keys.LoadAggregatorPublic(dir)
			if err != nil {
				return fmt.Errorf("keys public: %w", err)
			}
			return printJSON(cmd.OutOrStdout(), publicView{Role: "aggregator", Aggregator: &p})
		},
	}
}

func newKeysRotateJWTCmd() *cobra.Command {
	var pf passphraseFlags
	cmd := &cobra.Command{
		Use:   "rotate-jwt DIR",
		Short: "Add a new JWT signing key to an aggregator key directory and make it active",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := pf.writeOptions(cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("keys rotate-jwt: %w", err)
			}
			a, err := keys.LoadAggregator(args[0], opts.Passphrase)
			if err != nil {
				return fmt.Errorf("keys rotate-jwt: %w", err)
			}
			k, err := a.RotateJWT(rand.Reader)
			if err != nil {
				return fmt.Errorf("keys rotate-jwt: %w", err)
			}
			if err := keys.WriteAggregatorWithOptions(args[0], a, opts); err != nil {
				return fmt.Errorf("keys rotate-jwt: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "active jwt key: %s (%d keys kept for verification)\n", k.ID, len(a.JWT))
			return err
		},
	}
	pf.register(cmd)
	return cmd
}

func newKeysRemoveJWTCmd() *cobra.Command {
	var pf passphraseFlags
	cmd := &cobra.Command{
		Use:   "remove-jwt DIR KID",
		Short: "Remove a retired JWT key; tokens it signed stop verifying",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := pf.writeOptions(cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("keys remove-jwt: %w", err)
			}
			a, err := keys.LoadAggregator(args[0], opts.Passphrase)
			if err != nil {
				return fmt.Errorf("keys remove-jwt: %w", err)
			}
			if err := a.RemoveJWT(args[1]); err != nil {
				return fmt.Errorf("keys remove-jwt: %w", err)
			}
			if err := keys.WriteAggregatorWithOptions(args[0], a, opts); err != nil {
				return fmt.Errorf("keys remove-jwt: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed jwt key %s; active is %s\n", args[1], a.ActiveJWT)
			return err
		},
	}
	pf.register(cmd)
	return cmd
}
