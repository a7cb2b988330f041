// Package grafana holds the Grafana dashboard of paxos-go's Prometheus
// metrics (paxos.json) and its test; it has no Go code of its own.
package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// kind is what a metric is, which decides how a query may read it.
type kind int

const (
	gauge kind = iota
	counter
	histogram
)

// metrics are the names the engine exports (fixed by issue 14, so that
// dashboards can rely on them), each with a replica label.
var metrics = map[string]kind{
	"paxos_commit_latency_seconds":    histogram,
	"paxos_wal_fsync_seconds":         histogram,
	"paxos_batch_commands":            histogram,
	"paxos_inflight_slots":            gauge,
	"paxos_commit_index":              gauge,
	"paxos_applied_index":             gauge,
	"paxos_is_leader":                 gauge,
	"paxos_leader_changes_total":      counter,
	"paxos_elections_total":           counter,
	"paxos_snapshot_seconds":          histogram,
	"paxos_snapshot_bytes":            gauge,
	"paxos_snapshot_installs_total":   counter,
	"paxos_peer_connected":            gauge,
	"paxos_peer_send_queue_bytes":     gauge,
	"paxos_client_connections":        gauge,
	"paxos_protocol_violations_total": counter,
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	GridPos     struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

// ourDatasource is the data source variable every panel and query uses, so
// that the dashboard imports into any Grafana with a Prometheus.
const ourDatasource = "${datasource}"

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("paxos.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("paxos.json: %v", err)
	}
	return d
}

// all returns the panels, those of collapsed rows included.
func all(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, all(p.Panels)...)
	}
	return out
}

// TestDashboard checks paxos.json: a dashboard Grafana imports, with a
// Prometheus data source variable, panels laid out without overlap, and
// queries that read only the metrics above, each as its kind allows.
func TestDashboard(t *testing.T) {
	d := load(t)
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 || d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q: want a version Grafana 10-11 imports, a uid of 1-40 characters, a title",
			d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		switch {
		case v.Type == "datasource" && string(v.Query) != `"prometheus"`:
			t.Errorf("variable %s: a data source variable of type %s, want prometheus", v.Name, v.Query)
		case v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != ourDatasource):
			t.Errorf("variable %s: its data source is %+v, want %s", v.Name, v.Datasource, ourDatasource)
		}
	}
	if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["replica"] != "query" {
		t.Errorf("variables %v: want datasource (a data source), job and replica (queries)", vars)
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	panels := all(d.Panels)
	for i, p := range panels {
		if p.ID <= 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d is not positive or not unique", p.Title, p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W < 1 || g.X < 0 || g.X+g.W > 24 || g.H < 1 || g.Y < 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, q := range panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", q.Title, p.Title)
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" || p.Description == "" || len(p.Targets) == 0 {
			t.Errorf("panel %d (%q): want a title, a description and queries", p.ID, p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != ourDatasource {
			t.Errorf("panel %q: data source %+v, want %s", p.Title, p.Datasource, ourDatasource)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != ourDatasource {
				t.Errorf("panel %q, query %s: data source %+v, want %s", p.Title, tg.RefID, tg.Datasource, ourDatasource)
			}
			for _, err := range checkExpr(tg.Expr, used) {
				t.Errorf("panel %q, query %s: %s\n\t%s", p.Title, tg.RefID, err, tg.Expr)
			}
		}
	}
	for m := range metrics {
		if !used[m] {
			t.Errorf("no panel reads %s", m)
		}
	}
}

// metricRef finds a metric name in a query, and what follows it.
var metricRef = regexp.MustCompile(`\bpaxos_[a-z_]+`)

// checkExpr checks one PromQL query, noting the metrics it reads in used.
// It is no PromQL parser (the module has none, and needs none but here):
// it checks the brackets balance and how each metric is read.
func checkExpr(expr string, used map[string]bool) []string {
	var errs []string
	if expr == "" {
		return []string{"empty query"}
	}
	var stack []rune
	pairs := map[rune]rune{')': '(', '}': '{', ']': '['}
	inString := false
	for _, r := range expr {
		switch {
		case r == '"':
			inString = !inString
		case inString:
		case r == '(' || r == '{' || r == '[':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return []string{"brackets do not balance"}
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 || inString {
		return []string{"brackets or quotes left open"}
	}
	if !strings.Contains(expr, `replica=~"$replica"`) {
		errs = append(errs, "does not select the Replica variable")
	}
	for _, loc := range metricRef.FindAllStringIndex(expr, -1) {
		name := expr[loc[0]:loc[1]]
		before, after := strings.TrimSpace(expr[:loc[0]]), expr[loc[1]:]
		base, suffix := name, ""
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, s); ok && metrics[b] == histogram {
				base, suffix = b, s
			}
		}
		k, known := metrics[base]
		switch {
		case !known:
			errs = append(errs, name+" is not a paxos-go metric")
			continue
		case k == histogram && suffix == "":
			errs = append(errs, name+" is a histogram: read its _bucket, _sum or _count")
		}
		used[base] = true
		if k == counter || k == histogram {
			// Counters and histogram series only go up: a query reads their
			// rate of change.
			if !strings.HasSuffix(before, "rate(") && !strings.HasSuffix(before, "increase(") {
				errs = append(errs, name+" is read outside rate() or increase()")
			}
		}
		sel, ok := strings.CutPrefix(after, "{")
		if !ok {
			errs = append(errs, name+" has no label selector")
			continue
		}
		sel, _, _ = strings.Cut(sel, "}")
		if !slices.Contains(strings.Split(sel, ","), `job=~"$job"`) {
			errs = append(errs, name+" does not select the Job variable")
		}
	}
	return errs
}

// TestREADMEDescribesEveryPanel: the README next to the dashboard names
// each panel (in bold, as its list does) and each metric.
func TestREADMEDescribesEveryPanel(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, p := range all(load(t).Panels) {
		if p.Type != "row" && !strings.Contains(readme, "**"+p.Title+"**") {
			t.Errorf("README.md does not describe the panel %q", p.Title)
		}
	}
	for m := range metrics {
		if !strings.Contains(readme, "`"+m+"`") {
			t.Errorf("README.md does not list %s", m)
		}
	}
}

// TestCheckExprCatchesMistakes: the query check refuses what Grafana
// would draw wrong or not at all.
func TestCheckExprCatchesMistakes(t *testing.T) {
	sel := `{job=~"$job",replica=~"$replica"}`
	for _, tc := range []struct{ expr, want string }{
		{`paxos_commit_idx` + sel, "not a paxos-go metric"},
		{`paxos_wal_fsync_seconds` + sel, "is a histogram"},
		{`paxos_elections_total` + sel, "outside rate() or increase()"},
		{`histogram_quantile(0.9, paxos_wal_fsync_seconds_bucket` + sel + `)`, "outside rate() or increase()"},
		{`paxos_is_leader{replica=~"$replica"}`, "does not select the Job variable"},
		{`paxos_is_leader{job=~"$job"}`, "does not select the Replica variable"},
		{`rate(paxos_elections_total` + sel + `[5m]`, "left open"},
		{`paxos_is_leader` + sel + `)`, "do not balance"},
		{`paxos_is_leader == 1 and paxos_commit_index` + sel, "has no label selector"},
	} {
		errs := checkExpr(tc.expr, map[string]bool{})
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
			t.Errorf("%s: %q, want an error containing %q", tc.expr, errs, tc.want)
		}
	}
	good := `histogram_quantile(0.99, sum by (job, replica, le) (rate(paxos_wal_fsync_seconds_bucket` + sel + `[$__rate_interval])))`
	if errs := checkExpr(good, map[string]bool{}); len(errs) != 0 {
		t.Errorf("%s: %q, want no error", good, errs)
	}
}
