package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator"
	"github.com/kairos-fl/kairos/policies"
	"github.com/kairos-fl/kairos/store"
)

// journeyScript returns the README's end-to-end block: the shell code
// between <!-- journey:begin --> and <!-- journey:end -->, without its fence.
func journeyScript(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	_, rest, ok := strings.Cut(s, "<!-- journey:begin -->")
	block, _, ok2 := strings.Cut(rest, "<!-- journey:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md: no <!-- journey:begin --> … <!-- journey:end --> block")
	}
	_, body, ok := strings.Cut(block, "```sh\n")
	body, _, ok2 = strings.Cut(body, "```")
	if !ok || !ok2 {
		t.Fatal("README.md: the journey block has no ```sh fence")
	}
	return body
}

// TestJourney runs the README's operator → merchant → partner → compliance
// block as it is written, with bash, in a fresh directory holding bin/kairos:
// the embedded store, real processes on loopback, two CDNOW shops. The only
// change is the port: 127.0.0.1:8700 becomes a free one (the text and
// KAIROS_LISTEN). Then it checks what the script left behind against
// values computed here: models published from both shops, the policy in
// force (its hash from the file) audited by config.reload, both merchants'
// stop, the partner's prediction, the JSON log, the report.
func TestJourney(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	data := os.Getenv("KAIROS_DATA")
	if data == "" {
		data = "../../shared/data"
	}
	data, err := filepath.Abs(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "cdnow", "CDNOW_master.txt")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CDNOW data missing under CI: %v", err)
		}
		t.Skipf("CDNOW_master.txt not under %s (set KAIROS_DATA)", data)
	}
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's journey needs %s: %v", tool, err)
		}
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(kairosBin, filepath.Join(dir, "bin", "kairos")); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	script := strings.ReplaceAll(journeyScript(t), "127.0.0.1:8700", addr)

	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KAIROS_DATA="+data, "KAIROS_LISTEN="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On a timeout or failure the background server and clients die with the shell.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything left behind
	}
	if err != nil {
		t.Fatalf("README journey failed after %v: %v\nstdout:\n%s\nstderr:\n%s", time.Since(start).Round(time.Second), err, lastLines(stdout.String(), 40), lastLines(stderr.String(), 40))
	}
	t.Logf("README journey ran in %v", time.Since(start).Round(time.Second))

	// The partner's answer: a prediction of the published model from both shops.
	var pred struct {
		Merchant   string             `json:"merchant"`
		Within     map[string]float64 `json:"within"`
		Provenance struct {
			ModelVersion  int `json:"model_version"`
			Contributions []struct {
				Merchant string `json:"merchant"`
			} `json:"contributions"`
			ContributionsRedacted bool `json:"contributions_redacted"`
		} `json:"provenance"`
	}
	for line := range strings.Lines(stdout.String()) {
		if strings.HasPrefix(line, `{"merchant":"shop-1"`) {
			if err := json.Unmarshal([]byte(line), &pred); err != nil {
				t.Fatalf("prediction: %v", err)
			}
		}
	}
	if p := pred.Within["30d"]; !(p > 0 && p < 1) || pred.Provenance.ModelVersion < 2 ||
		len(pred.Provenance.Contributions) != 0 || !pred.Provenance.ContributionsRedacted {
		// Each shop's ε is for compliance and admin: a partner's prediction
		// names a published version with its contributions redacted (the
		// store's check below finds both shops in it).
		t.Errorf("prediction: got %+v, want P(30d) in (0,1) from a published version, contributions redacted", pred)
	}

	// The store the script left: published versions merged from both shops.
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(dir, "agg", "kairos.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var models []aggregator.ModelRecord
	err = st.(aggregator.Store).InTx(t.Context(), func(tx aggregator.Tx) (err error) {
		models, err = tx.Models(t.Context())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	both := 0
	for _, m := range models {
		if len(m.Contributions) == 2 && m.Contributions[0].Merchant != m.Contributions[1].Merchant {
			both++
		}
	}
	if both == 0 {
		t.Fatalf("no model version merged from both shops: %d versions", len(models))
	}

	// The policy in force: the file enrol --add-to-policy wrote, named by
	// the last config.reload; both merchants enrolled, and stopped at their cap.
	pdata, err := os.ReadFile(filepath.Join(dir, "agg", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policies.Parse("policy.yaml", pdata)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pol.Merchants(), ","); got != "shop-1,shop-2" || !pol.MayQuery("crm-app", "shop-2") {
		t.Errorf("policy merchants %s, crm-app may query shop-2: %v; want shop-1,shop-2 and true", got, pol.MayQuery("crm-app", "shop-2"))
	}
	es, err := st.AuditEntries(t.Context(), 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	lastReload := ""
	for _, e := range es {
		count[e.Action+" "+string(e.Outcome)]++
		if e.Action == "config.reload" && e.Outcome == "ok" {
			lastReload = e.Details["policy_hash"]
		}
	}
	if lastReload != pol.Hash() {
		t.Errorf("last config.reload: policy %s, want the file's %s", lastReload, pol.Hash())
	}
	if count["merchant.enrol ok"] != 2 || count["merchant.stop ok"] != 2 || count["round.publish ok"] < 1 {
		t.Errorf("audit: %v; want 2 enrolments, 2 stops and a publication", count)
	}

	// serve --log-json: every line JSON, one per round transition and update.
	logf, err := os.Open(filepath.Join(dir, "agg", "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	msgs := map[string]int{}
	sc := bufio.NewScanner(logf)
	for sc.Scan() {
		var l struct {
			Msg, Level string
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("serve.log line %q: %v", sc.Text(), err)
		}
		msgs[l.Msg]++
	}
	if msgs["round.publish"] != count["round.publish ok"] || msgs["round.update.accept"] < 2*msgs["round.publish"] || msgs["round.open"] == 0 {
		t.Errorf("serve.log messages %v: want one line per round transition and per update (%d publications)", msgs, count["round.publish ok"])
	}

	// The compliance report the script wrote, against the store: the
	// active version marked, every action class of the log listed, the
	// policy in force shown, both shops' local caps (0.8, from their
	// merchant.stop) drawn on their charts.
	raw, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	html := string(raw)
	var active int
	err = st.(aggregator.Store).InTx(t.Context(), func(tx aggregator.Tx) (err error) {
		active, err = tx.ActiveVersion(t.Context())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	row := func(id string) string {
		_, rest, ok := strings.Cut(html, `<tr id="`+id+`">`)
		r, _, _ := strings.Cut(rest, "</tr>")
		if !ok {
			return ""
		}
		return r
	}
	for _, m := range models {
		marked := strings.Contains(row(fmt.Sprintf("version-%d", m.Version)), "<td>active</td>")
		if marked != (m.Version == active) {
			t.Errorf("report: version %d marked active %v; the store's active version is %d", m.Version, marked, active)
		}
	}
	for k := range count {
		action, outcome, _ := strings.Cut(k, " ")
		if r := row("action-" + action); r == "" {
			t.Errorf("report does not list audit action %s (%s)", action, outcome)
		}
	}
	for _, want := range []string{`<tr id="policy-shop-1">`, `<tr id="policy-shop-2">`, `<tr id="partner-crm-app">`, pol.Hash(),
		"ε spent over time", "local cap 0.8"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The budgets command (and its charts) carry the same local caps.
	out, err := exec.Command(kairosBin, "compliance", "budgets", "--db", filepath.Join(dir, "agg", "kairos.db"),
		"--policy", filepath.Join(dir, "agg", "policy.yaml"), "--json").Output()
	var budgets struct {
		Budgets []struct {
			Merchant string  `json:"merchant"`
			LocalCap float64 `json:"local_epsilon_cap"`
		} `json:"budgets"`
	}
	if err == nil {
		err = json.Unmarshal(out, &budgets)
	}
	if err != nil || len(budgets.Budgets) != 2 || budgets.Budgets[0].LocalCap != 0.8 || budgets.Budgets[1].LocalCap != 0.8 {
		t.Errorf("compliance budgets --json: %v %+v; want both shops with local cap 0.8 (shop.yaml's epsilon_cap)", err, budgets)
	}
	if n := strings.Count(html, `class="local-cap"`); n != 2 {
		t.Errorf("report draws %d local caps, want 2", n)
	}
	if strings.Contains(html, "burn") || strings.Contains(html, " 1 signed checkpoints") {
		t.Error(`report still says "burn-down" or "1 signed checkpoints"`)
	}

	// kairos version reports the commit the build stamped.
	out, err = exec.Command(kairosBin, "version", "--json").Output()
	var v struct {
		Commit string `json:"commit"`
	}
	if err == nil {
		err = json.Unmarshal(out, &v)
	}
	if err != nil || v.Commit != e2eCommit {
		t.Errorf("kairos version --json: %s, %v; want commit %s", out, err, e2eCommit)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
