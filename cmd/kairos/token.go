package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/aggregator/server"
	"github.com/kairos-fl/kairos/api/auth"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Issue and verify API tokens (EdDSA JWTs) and print the JWKS",
		Long: `Tokens are Ed25519-signed JWTs (alg EdDSA, typ kairos+jwt) with a kid naming the
aggregator's JWT key, a role (admin, merchant, partner, compliance) and a merchant
scope: a merchant token names exactly its own id (the subject), a partner token the
merchants it may query. A token lives at most 30 days (90 for merchant tokens), or what
the policy's tokens.max_ttl allows its role: the aggregator refuses a longer-lived one.

  kairos token issue --keys agg-keys --role partner --subject crm-app --merchants m1,m2 --ttl 1h
  kairos token verify --keys agg-keys "$TOKEN"
  kairos token jwks --keys agg-keys > jwks.json
  kairos token verify --jwks jwks.json "$TOKEN"`,
	}
	cmd.AddCommand(newTokenIssueCmd(), newTokenVerifyCmd(), newTokenJWKSCmd())
	return cmd
}

func newTokenIssueCmd() *cobra.Command {
	var (
		dir, role, subject, issuer, audience, passFile, policyFile string
		merchants                                                  []string
		ttl                                                        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue --keys DIR --role ROLE --subject S [--merchants a,b] [--ttl 1h]",
		Short: "Print a token signed with the aggregator's active JWT key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit, err := tokenMaxTTLFor(policyFile, auth.Role(role))
			if err != nil {
				return fmt.Errorf("token issue: %w", err)
			}
			if ttl > limit {
				return fmt.Errorf("token issue: --ttl %v exceeds %v, the longest lifetime the aggregator accepts for a %s token", ttl, limit, role)
			}
			pass, err := tokenPassphrase(cmd.ErrOrStderr(), passFile)
			if err != nil {
				return err
			}
			agg, err := keys.LoadAggregator(dir, pass)
			if err != nil {
				return fmt.Errorf("token issue: %w", err)
			}
			active, err := agg.Active()
			if err != nil {
				return fmt.Errorf("token issue: %w", err)
			}
			iss, err := auth.NewIssuer(auth.IssuerOptions{
				Key:      auth.SigningKey{ID: active.ID, Private: active.Private},
				Issuer:   issuer,
				Audience: audience,
			})
			if err != nil {
				return fmt.Errorf("token issue: %w", err)
			}
			tok, _, err := iss.Issue(auth.Grant{Subject: subject, Role: auth.Role(role), Merchants: merchants, TTL: ttl})
			if err != nil {
				return err // "issue token: ..."
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "keys", "", "aggregator key directory (from kairos keys gen --role aggregator)")
	f.StringVar(&role, "role", "", "admin, merchant, partner or compliance")
	f.StringVar(&subject, "subject", "", "who the token is for (a merchant token's subject is the merchant id)")
	f.StringSliceVar(&merchants, "merchants", nil, "merchant scope: the merchant's own id, or the merchants a partner may query")
	f.DurationVar(&ttl, "ttl", time.Hour, "lifetime")
	f.StringVar(&issuer, "issuer", auth.DefaultIssuer, "iss claim")
	f.StringVar(&audience, "audience", auth.DefaultAudience, "aud claim")
	f.StringVar(&passFile, "passphrase-file", "", "file whose first line is the key directory's passphrase")
	f.StringVar(&policyFile, "policy", "", "federation policy whose tokens.max_ttl bounds --ttl (default: 30 days, 90 for merchant tokens)")
	for _, name := range []string{"keys", "role", "subject"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func newTokenVerifyCmd() *cobra.Command {
	var (
		dir, jwksFile, issuer, audience, db string
		leeway                              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify (--keys DIR | --jwks FILE) TOKEN|-",
		Short: "Verify a token and print its claims as JSON",
		Long: `Verify checks the signature against the published JWT keys, the typ, iss, aud, exp,
nbf, iat, role and merchant scope, and prints the claims. With --db it also asks the
aggregator's store whether the token was revoked (kairos aggregator revoke-token);
without it a revoked token that is otherwise valid passes here.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pubs, err := tokenPublicKeys(dir, jwksFile)
			if err != nil {
				return fmt.Errorf("token verify: %w", err)
			}
			tok := args[0]
			if tok == "-" {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), auth.MaxTokenSize+1))
				if err != nil {
					return fmt.Errorf("token verify: read stdin: %w", err)
				}
				tok = string(b)
			}
			var revs auth.RevocationStore = auth.NewMemoryRevocations(nil)
			if db != "" {
				st, err := openExisting(cmd.Context(), db)
				if err != nil {
					return fmt.Errorf("token verify: --db: %w", err)
				}
				defer st.Close()
				revs = st
			}
			v, err := auth.NewVerifier(auth.VerifierOptions{
				Keys:        pubs,
				Issuer:      issuer,
				Audience:    audience,
				Leeway:      leeway,
				Revocations: revs,
			})
			if err != nil {
				return fmt.Errorf("token verify: %w", err)
			}
			c, err := v.Verify(cmd.Context(), strings.TrimSpace(tok))
			if err != nil {
				return err // "verify token: ..."
			}
			return tokenWriteJSON(cmd.OutOrStdout(), c)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "keys", "", "aggregator key directory (only its public files are read)")
	f.StringVar(&jwksFile, "jwks", "", "JWKS document instead of --keys")
	f.StringVar(&issuer, "issuer", auth.DefaultIssuer, "required iss")
	f.StringVar(&audience, "audience", auth.DefaultAudience, "required aud")
	f.DurationVar(&leeway, "leeway", 30*time.Second, "clock skew tolerated on exp, nbf and iat")
	f.StringVar(&db, "db", "", "the aggregator's store (SQLite path or postgres:// URL) to check the revocation list")
	cmd.MarkFlagsMutuallyExclusive("keys", "jwks")
	cmd.MarkFlagsOneRequired("keys", "jwks")
	return cmd
}

func newTokenJWKSCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "jwks --keys DIR",
		Short: "Print the JWKS (RFC 8037 Ed25519 keys) of every JWT key in the directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pubs, err := tokenPublicKeys(dir, "")
			if err != nil {
				return fmt.Errorf("token jwks: %w", err)
			}
			return tokenWriteJSON(cmd.OutOrStdout(), auth.NewJWKS(pubs))
		},
	}
	cmd.Flags().StringVar(&dir, "keys", "", "aggregator key directory (only its public files are read)")
	_ = cmd.MarkFlagRequired("keys")
	return cmd
}

// tokenPublicKeys reads the JWT verification keys from a key directory or a
// JWKS file.
func tokenPublicKeys(dir, jwksFile string) ([]auth.PublicKey, error) {
	if jwksFile != "" {
		b, err := os.ReadFile(jwksFile)
		if err != nil {
			return nil, err
		}
		return auth.ParseJWKS(b)
	}
	pub, err := keys.LoadAggregatorPublic(dir)
	if err != nil {
		return nil, err
	}
	out := make([]auth.PublicKey, 0, len(pub.JWT))
	for _, k := range pub.JWT {
		out = append(out, auth.PublicKey{ID: k.ID, Key: k.Key})
	}
	return out, nil
}

// tokenMaxTTLFor is server.TokenMaxTTL of the policy in path for role, or the
// default without a path.
func tokenMaxTTLFor(path string, role auth.Role) (time.Duration, error) {
	if path == "" {
		return auth.DefaultMaxTTL(role), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pol, err := policies.Parse(path, b)
	if err != nil {
		return 0, err
	}
	return server.TokenMaxTTL(pol)(role), nil
}

// tokenPassphrase returns the first line of path (readPassphraseFile), or
// nil when path is empty.
func tokenPassphrase(stderr io.Writer, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return readPassphraseFile(stderr, path)
}

func tokenWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
