package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kairos-fl/kairos/aggregator/config"
	"github.com/kairos-fl/kairos/client"
)

// kairosEnv are the environment variables the commands read.
var kairosEnv = append(slices.Clone(config.EnvVars), config.EnvConfig, envPassphrase, envPassphraseFile, envClientConfig, envAggregator, envTokenFile, envInsecureHTTP, "KAIROS_DATA")

// checkInvocation fails t unless args (without the program name) name a
// runnable kairos command whose flags all exist and parse, with arguments
// the command accepts.
func checkInvocation(t *testing.T, where string, args []string) {
	t.Helper()
	if err := invocationError(args); err != nil {
		t.Errorf("%s: kairos %s: %v", where, strings.Join(args, " "), err)
	}
}

func invocationError(args []string) error {
	root := newRootCmd()
	c, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if c == root || !c.Runnable() {
		return errors.New("no such command")
	}
	if err := c.ParseFlags(rest); err != nil {
		return err
	}
	if err := c.ValidateArgs(c.Flags().Args()); err != nil {
		return err
	}
	return c.ValidateRequiredFlags()
}

// TestDeployCommandsExist: every kairos command and flag that the Dockerfile,
// deploy/compose.yaml and the systemd units run exists in this CLI, every
// KAIROS_* variable they set is one the commands read, and the merchant
// configurations compose mounts are valid client configurations.
func TestDeployCommandsExist(t *testing.T) {
	n := 0
	check := func(where string, args []string) {
		n++
		checkInvocation(t, where, args)
	}
	checkEnv := func(where, name string) {
		if strings.HasPrefix(name, "KAIROS_") && !slices.Contains(kairosEnv, name) {
			t.Errorf("%s: $%s is read by no kairos command", where, name)
		}
	}

	// Dockerfile: the exec-form CMD runs under ENTRYPOINT kairos.
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var entry, cmdArgs []string
	for line := range strings.Lines(string(df)) {
		for _, kw := range []string{"ENTRYPOINT ", "CMD "} {
			if v, ok := strings.CutPrefix(line, kw); ok {
				var a []string
				if err := json.Unmarshal([]byte(v), &a); err != nil {
					t.Fatalf("Dockerfile %s: not exec form: %v", kw, err)
				}
				if kw == "CMD " {
					cmdArgs = a
				} else {
					entry = a
				}
			}
		}
	}
	if len(entry) != 1 || entry[0] != "/usr/local/bin/kairos" || len(cmdArgs) == 0 {
		t.Fatalf("Dockerfile: ENTRYPOINT %q CMD %q, want kairos with a command", entry, cmdArgs)
	}
	check("Dockerfile CMD", cmdArgs)
	if !strings.Contains(string(df), "CGO_ENABLED=0") || !regexp.MustCompile(`(?m)^USER 65532`).Match(df) || !strings.Contains(string(df), "distroless") {
		t.Error("Dockerfile: want a CGO_ENABLED=0 build, a distroless image and a non-root USER")
	}

	// compose: commands run under the image's ENTRYPOINT; health checks name the binary.
	cf, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(cf, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	kairosServices, shops := 0, 0
	for name, s := range compose.Services {
		if s.Image != "kairos:latest" {
			continue
		}
		kairosServices++
		where := "compose " + name
		if len(s.Command) == 0 {
			t.Errorf("%s: no command", where)
			continue
		}
		check(where, s.Command)
		if h := s.Healthcheck.Test; len(h) > 0 {
			if len(h) < 3 || h[0] != "CMD" || h[1] != "/usr/local/bin/kairos" {
				t.Errorf("%s: health check %q: want [CMD, /usr/local/bin/kairos, …] (the image has no shell)", where, h)
			} else {
				check(where+" healthcheck", h[2:])
			}
		}
		for k := range s.Environment {
			checkEnv(where, k)
		}
		if s.Command[0] == "client" {
			shops++
			i := slices.Index(s.Command, "--config")
			conf := filepath.Join("../../deploy/shops", filepath.Base(s.Command[i+1]))
			data, err := os.ReadFile(conf)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			c, err := client.ParseConfig(conf, "/etc/kairos", data)
			if err != nil {
				t.Errorf("%s: %s: %v", where, conf, err)
				continue
			}
			if c.Data.Shard == nil || c.Data.Path != "/shared/cdnow/CDNOW_master.txt" {
				t.Errorf("%s: want a CDNOW shard under the /shared mount, got %+v", where, c.Data)
			}
		}
	}
	if kairosServices < 9 || shops != 3 {
		t.Errorf("compose: %d kairos services, %d merchants; want init, aggregator, keys, enrolments and 3 merchants", kairosServices, shops)
	}
	if _, ok := compose.Services["postgres"]; !ok {
		t.Error("compose: no postgres service")
	}

	// systemd: Exec lines that run kairos.
	units, err := filepath.Glob("../../deploy/systemd/*.service")
	if err != nil || len(units) != 2 {
		t.Fatalf("systemd units: %v %v", units, err)
	}
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service"} {
			if !bytes.Contains(data, []byte(want)) {
				t.Errorf("%s: missing hardening %q", u, strings.TrimSpace(want))
			}
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			line := sc.Text()
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			switch {
			case strings.HasPrefix(k, "Exec"):
				f := strings.Fields(v)
				if f[0] == "/usr/local/bin/kairos" {
					check(filepath.Base(u)+" "+k, f[1:])
				}
			case k == "Environment":
				name, _, _ := strings.Cut(v, "=")
				checkEnv(filepath.Base(u), name)
			}
		}
	}
	if n < 12 {
		t.Errorf("checked %d invocations; the files have more", n)
	}
}

// TestCheckInvocationCatchesMistakes: the check above is not vacuous.
func TestCheckInvocationCatchesMistakes(t *testing.T) {
	if err := invocationError([]string{"aggregator", "serve", "--dir", "x", "--log-json"}); err != nil {
		t.Errorf("a valid invocation: %v", err)
	}
	for _, args := range [][]string{
		{"aggregator", "serv", "--dir", "x"},
		{"aggregator", "serve", "--dirr", "x"},
		{"client", "run", "--config"},
		{"aggregator", "enrol", "--dir", "x", "--id", "a"}, // --time-zone and --public-key are required
		{"aggregator", "models", "extra"},
	} {
		if err := invocationError(args); err == nil {
			t.Errorf("kairos %s passed the check", strings.Join(args, " "))
		}
	}
}
