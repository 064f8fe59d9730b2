package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kairos-fl/kairos/crypto/keys"
)

// Environment variables that override keys of the config file (12-factor);
// a command-line flag overrides both. A *_FILE variable names a file holding
// the value, for secrets mounted by the container runtime or systemd's
// LoadCredential. The command reads the environment and passes its getenv
// to ApplyEnv.
const (
	EnvConfig         = "KAIROS_CONFIG"           // the config file, when neither --dir nor --config is given
	EnvListen         = "KAIROS_LISTEN"           // listen
	EnvURL            = "KAIROS_URL"              // url
	EnvMetricsListen  = "KAIROS_METRICS_LISTEN"   // metrics_listen
	EnvDB             = "KAIROS_DB"               // db (may hold a password: prefer KAIROS_DB_FILE)
	EnvDBFile         = "KAIROS_DB_FILE"          // a file whose first line is db
	EnvKeys           = "KAIROS_KEYS"             // keys
	EnvPolicy         = "KAIROS_POLICY"           // policy
	EnvAdminTokenFile = "KAIROS_ADMIN_TOKEN_FILE" // admin_token
)

// EnvVars lists the variables ApplyEnv reads, for documentation and tests.
var EnvVars = []string{EnvListen, EnvURL, EnvMetricsListen, EnvDB, EnvDBFile, EnvKeys, EnvPolicy, EnvAdminTokenFile}

// ApplyEnv overrides the config's keys from the environment (getenv) and
// checks the result again. Relative paths from the environment are relative
// to the working directory, not the config file's.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	set := func(dst *string, name string, path bool) error {
		v := getenv(name)
		if v == "" {
			return nil
		}
		if path {
			a, err := filepath.Abs(v)
			if err != nil {
				return fmt.Errorf("$%s: %w", name, err)
			}
			v = a
		}
		*dst = v
		return nil
	}
	if getenv(EnvDB) != "" && getenv(EnvDBFile) != "" {
		return fmt.Errorf("$%s and $%s: set one, not both", EnvDB, EnvDBFile)
	}
	for _, e := range []struct {
		dst  *string
		name string
		path bool
	}{
		{&c.Listen, EnvListen, false}, {&c.URL, EnvURL, false}, {&c.MetricsListen, EnvMetricsListen, false},
		{&c.DB, EnvDB, false}, {&c.Keys, EnvKeys, true}, {&c.Policy, EnvPolicy, true}, {&c.AdminToken, EnvAdminTokenFile, true},
	} {
		if err := set(e.dst, e.name, e.path); err != nil {
			return err
		}
	}
	if f := getenv(EnvDBFile); f != "" {
		v, err := SecretLine(f)
		if err != nil {
			return fmt.Errorf("$%s: %w", EnvDBFile, err)
		}
		c.DB = v
	}
	if strings.HasPrefix(c.DB, "sqlite:") && getenv(EnvDB) != "" {
		// An sqlite: file from the environment is relative to the working directory.
		a, err := filepath.Abs(strings.TrimPrefix(c.DB, "sqlite:"))
		if err != nil {
			return fmt.Errorf("$%s: %w", EnvDB, err)
		}
		c.DB = "sqlite:" + a
	}
	return c.Check()
}

// SecretLine reads the first line of a secret file, without its line end,
// with keys.ReadSecretLine: a file group or others can write is refused
// (keys.ErrInsecureMode), one they can read is accepted (compose mounts
// file secrets with the host file's mode) and the command warns.
func SecretLine(path string) (string, error) {
	line, _, err := keys.ReadSecretLine(path)
	if err != nil {
		return "", err
	}
	return string(line), nil
}
