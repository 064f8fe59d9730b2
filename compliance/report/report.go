// Package report renders Kairos's compliance report: one self-contained HTML
// file (inline CSS and SVG, no external resources) with every merchant's
// privacy budget and a chart of its ε spent over time against the federation's
// and its own cap, the model versions with their lineage and the active one,
// the policy in force and the policy hashes the registry has seen, every
// action class of the audit log with its administrative entries, and the
// audit log's verification result; and the per-merchant SVG charts on their
// own.
//
// Gather reads a report's data from the store (through package compliance)
// and verifies the audit log; it is the one code path behind both
// `kairos compliance report` and GET /v1/report. The rendering functions
// (HTML, Chart) are pure: they render the data handed in and do no I/O
// beyond the writer they are given.
package report

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/compliance"
	"github.com/kairos-fl/kairos/policies"
)

// Verification is the audit log's verification result as the report shows it.
type Verification struct {
	// OK is true when the chain and every checkpoint verified.
	OK          bool
	Entries     uint64
	Checkpoints int
	Head        string
	// Unpinned is how many entries at the end are chained but not yet
	// covered by a signed checkpoint.
	Unpinned uint64
	// Failure names the first bad entry or checkpoint when OK is false.
	Failure string
}

// Line is the verification result in one sentence.
func (v Verification) Line() string {
	if !v.OK {
		return fmt.Sprintf("Audit log verification FAILED: %s (%s and %s verified before it).",
			v.Failure, plural(int(v.Entries), "entry", "entries"), plural(v.Checkpoints, "checkpoint", "checkpoints"))
	}
	s := fmt.Sprintf("Audit log verified: %s, %s, head %s.", plural(int(v.Entries), "entry", "entries"),
		plural(v.Checkpoints, "signed checkpoint", "signed checkpoints"), v.Head)
	switch {
	case v.Unpinned == 1:
		s += " The last entry is chained but not yet covered by a signed checkpoint."
	case v.Unpinned > 1:
		s += fmt.Sprintf(" The last %d entries are chained but not yet covered by a signed checkpoint.", v.Unpinned)
	}
	return s
}

// Report is everything the HTML report shows.
type Report struct {
	Generated  time.Time
	Source     string // where the data came from, e.g. the database (without credentials)
	Federation string
	PolicyHash string
	Budgets    []compliance.Budget
	Models     []protocol.ModelVersion
	Policies   []compliance.PolicySeen
	Audit      Verification
	// Policy is the policy in force, in full.
	Policy PolicyView
	// Actions counts every action class of the audit log by outcome.
	Actions []ActionCount
	// Events are the latest administrative entries (MaxEvents at most;
	// EventsDropped older ones left out).
	Events        []Event
	EventsDropped int
}

// plural writes n with the singular or plural noun.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"chart": func(b compliance.Budget) template.HTML {
		// Chart escapes every string it writes.
		return template.HTML(Chart(b)) //nolint:gosec // Chart's output is escaped XML.
	},
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"eps": func(v float64) string { return fmt.Sprintf("%.5f", v) },
	"features": func(m policies.MerchantPolicy) string {
		if m.AllFeatures {
			return "all"
		}
		return strings.Join(m.Features, ", ")
	},
	"pct":        pct,
	"short":      shortHash,
	"evaluation": evaluation,
	"parent": func(m protocol.ModelVersion) string {
		if m.Round == "" && m.Parent == 0 {
			return "— (initial)"
		}
		return fmt.Sprint(m.Parent)
	},
}).Parse(pageTemplate))

// HTML writes the report as one self-contained HTML document.
func HTML(w io.Writer, r Report) error {
	if err := page.Execute(w, r); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

// evaluation summarises a version's federated DP evaluation, or "—".
func evaluation(m protocol.ModelVersion) string {
	e := m.Metrics
	if _, ok := e["auc_30"]; !ok {
		return "—"
	}
	return fmt.Sprintf("AUC@30 %.3f ± %.3f, AUC@7 %.3f ± %.3f, PR-AUC@30 %.3f ± %.3f (%.0f merchants, DP)",
		e["auc_30"], e["auc_30_se"], e["auc_7"], e["auc_7_se"], e["pr_auc_30"], e["pr_auc_30_se"], e["merchants"])
}

func pct(v, c float64) string {
	if c <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f%%", 100*v/c)
}

// shortHash abbreviates a long hash for tables; the full value is in the
// cell's title.
func shortHash(h string) string {
	if h == "" {
		return "—"
	}
	prefix, rest, ok := strings.Cut(h, ":")
	if !ok {
		prefix, rest = "", h
	} else {
		prefix += ":"
	}
	if len(rest) > 16 {
		rest = rest[:16] + "…"
	}
	return prefix + rest
}

const pageTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kairos compliance report{{with .Federation}} — {{.}}{{end}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .9em; } .ok { color: #1e7e34; font-weight: bold; } .fail { color: #c0392b; font-weight: bold; }
.merchant { margin: 1.5em 0; padding: 1em; border: 1px solid #ddd; border-radius: 4px; }
.statement { font-size: .9em; color: #444; max-width: 60em; } .over { color: #c0392b; font-weight: bold; }
.muted { color: #666; } td.contrib, td.time { white-space: nowrap; } td.contrib { font-size: .9em; }
</style>
</head>
<body>
<h1>Kairos compliance report{{with .Federation}} — {{.}}{{end}}</h1>
<p class="muted">Generated {{time .Generated}}{{with .Source}} from {{.}}{{end}}. Policy in force: <code>{{.PolicyHash}}</code>.</p>

<h2 id="audit">Audit log</h2>
<p id="verification" class="{{if .Audit.OK}}ok{{else}}fail{{end}}">{{.Audit.Line}}</p>
<h3 id="actions">Every action in the log</h3>
<table>
<tr><th>Action</th><th>ok</th><th>denied</th><th>error</th><th>Total</th></tr>
{{range .Actions}}<tr id="action-{{.Action}}"><td><code>{{.Action}}</code></td><td class="num">{{.OK}}</td><td class="num">{{.Denied}}</td><td class="num">{{.Error}}</td><td class="num">{{.Total}}</td></tr>
{{end}}</table>
<h3 id="events">Administrative actions</h3>
<p class="muted">Enrolments, stops, reloads, cancelled rounds, rollbacks, token issues and revocations: every entry that is not the round machinery or a prediction{{if .EventsDropped}} (the latest {{len .Events}}; {{.EventsDropped}} older ones in the log){{end}}. Identifiers are HMACs in the log and not shown.</p>
{{if .Events}}<table>
<tr><th>#</th><th>Time</th><th>Actor</th><th>Action</th><th>Object</th><th>Outcome</th><th>Reason</th><th>Details</th></tr>
{{range .Events}}<tr><td class="num">{{.Seq}}</td><td class="time">{{time .Time}}</td><td>{{.Actor}}</td><td><code>{{.Action}}</code></td><td>{{.Object}}</td><td class="{{if eq .Outcome "ok"}}ok{{else}}fail{{end}}">{{.Outcome}}</td><td>{{.Reason}}</td><td class="contrib">{{.DetailLine}}</td></tr>
{{end}}</table>{{else}}<p>None.</p>{{end}}

<h2 id="policy">Policy in force</h2>
<p>Federation <b>{{.Policy.Federation}}</b>, hash <code>{{.Policy.Hash}}</code>. Merge: {{.Policy.Merge}}{{with .Policy.TrimFraction}} (trim {{.}}){{end}}, largest weight share {{.Policy.MaxShare}}{{with .Policy.NormBound}}, update norm bound {{.}}{{end}}.</p>
{{if .Policy.Merchants}}<table>
<tr><th>Merchant</th><th>Region</th><th>ε cap</th><th>δ</th><th>Min noise</th><th>Clip</th><th>Min customers</th><th>Features</th><th>Retention (days)</th></tr>
{{range .Policy.Merchants}}<tr id="policy-{{.ID}}"><td>{{.ID}}</td><td>{{with .Region}}{{.}}{{else}}—{{end}}</td><td class="num">{{.EpsilonCap}}</td><td class="num">{{.Delta}}</td><td class="num">{{.MinNoiseMultiplier}}</td><td class="num">{{.ClipNorm}}</td><td class="num">{{.MinCustomersPerUpdate}}</td><td>{{features .}}</td><td class="num">{{.RetentionDays}}</td></tr>
{{end}}</table>{{else}}<p>The policy names no merchant.</p>{{end}}
{{if .Policy.Partners}}<table>
<tr><th>Partner</th><th>May query</th><th>Requests/s</th><th>Burst</th></tr>
{{range .Policy.Partners}}<tr id="partner-{{.ID}}"><td>{{.ID}}</td><td>{{range $i, $m := .Merchants}}{{if $i}}, {{end}}{{$m}}{{end}}</td><td class="num">{{.RatePerSecond}}</td><td class="num">{{.Burst}}</td></tr>
{{end}}</table>{{else}}<p>No partner app is granted any merchant.</p>{{end}}

<h2 id="budgets">Privacy budgets</h2>
{{if .Budgets}}
<table>
<tr><th>Merchant</th><th>ε spent</th><th>Cap</th><th>Used</th><th>Local cap</th><th>δ</th><th>Releases</th><th>Last release</th></tr>
{{range .Budgets}}<tr><td><a href="#budget-{{.Merchant}}">{{.Merchant}}</a></td><td class="num">{{eps .Epsilon}}</td><td class="num">{{if .InPolicy}}{{.Cap}}{{else}}not in policy{{end}}</td><td class="num{{if and .InPolicy (gt .Epsilon .Cap)}} over{{end}}">{{pct .Epsilon .Cap}}</td><td class="num">{{if .LocalCap}}{{.LocalCap}}{{with .LocalDelta}} at δ {{.}}{{end}}{{else}}—{{end}}</td><td class="num">{{.Delta}}</td><td class="num">{{.Releases}}</td><td>{{time .LastRelease}}</td></tr>
{{end}}</table>
{{range .Budgets}}<div class="merchant" id="budget-{{.Merchant}}">
{{chart .}}
<p class="statement">{{.Statement}}</p>
</div>
{{end}}<p class="muted">Local cap: the merchant's own, stricter cap, as it reported it when it stopped at it (merchant.stop); — when it has not.</p>
{{else}}<p>No merchant has a budget yet.</p>{{end}}

<h2 id="models">Model versions and lineage</h2>
{{if .Models}}
<table>
<tr><th>Version</th><th>Parent</th><th>Round</th><th>Published</th><th>Contributors (cumulative ε at δ, weight)</th><th>Merge</th><th>Federated evaluation</th><th>Policy hash</th><th>Schema hash</th><th>Active</th></tr>
{{range .Models}}<tr id="version-{{.Version}}"><td class="num">{{.Version}}</td><td class="num">{{parent .}}</td><td>{{with .Round}}<code>{{.}}</code>{{else}}—{{end}}</td><td class="time">{{time .PublishedAt}}</td><td class="contrib">{{range $i, $c := .Contributions}}{{if $i}}<br>{{end}}{{$c.Merchant}}: ε {{eps $c.Epsilon}} at δ {{$c.Delta}}, weight {{printf "%.3g" $c.Weight}}{{else}}—{{end}}</td><td>{{.Merge}}</td><td>{{evaluation .}}</td><td title="{{.PolicyHash}}"><code>{{short .PolicyHash}}</code></td><td title="{{.SchemaHash}}"><code>{{short .SchemaHash}}</code></td><td>{{if .Active}}active{{else if .Withdrawn}}withdrawn {{time .WithdrawnAt}}{{with .WithdrawnSeq}} (audit seq {{.}}){{end}}{{end}}</td></tr>
{{end}}</table>
{{else}}<p>The registry holds no model version.</p>{{end}}

<h2 id="policies">Policy history</h2>
<table>
<tr><th>Policy hash</th><th>Versions published under it</th><th>First seen</th><th>Last seen</th><th></th></tr>
{{range .Policies}}<tr><td><code>{{.Hash}}</code></td><td>{{if .Versions}}{{.Versions}} (v{{.FirstVersion}}–v{{.LastVersion}}){{else}}none{{end}}</td><td>{{time .FirstSeen}}</td><td>{{time .LastSeen}}</td><td>{{if .Current}}in force{{end}}</td></tr>
{{end}}</table>
</body>
</html>
`
