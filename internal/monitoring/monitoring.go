// Package monitoring makes the monitoring files of deploy/monitoring: the
// Grafana dashboard of CoreDNS with the headless plugin, the ConfigMap that
// Grafana's dashboard sidecar loads it from, and the PrometheusRule of the
// alert rules. The rules file, headless-rules.yaml, is written by hand; the
// others are made from it and from Dashboard, so that each exists once.
//
// Run `go generate ./internal/monitoring` after a change; its test fails
// while the files in deploy/monitoring are not what it makes.
package monitoring

//go:generate go run ../cmd/monitoring -dir ../../deploy/monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The files of deploy/monitoring.
const (
	RulesFile          = "headless-rules.yaml"
	RulesTestFile      = "headless-rules.test.yaml"
	PrometheusRuleFile = "headless-prometheusrule.yaml"
	DashboardFile      = "headless-dashboard.json"
	ConfigMapFile      = "headless-dashboard-configmap.yaml"
)

// Render returns the files made from the rules file in dir, by name.
func Render(dir string) (map[string][]byte, error) {
	rules, err := os.ReadFile(filepath.Join(dir, RulesFile))
	if err != nil {
		return nil, err
	}
	dashboard, err := Dashboard()
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		DashboardFile:      dashboard,
		ConfigMapFile:      ConfigMap(dashboard),
		PrometheusRuleFile: PrometheusRule(rules),
	}, nil
}

// generated heads a file made by this package.
func generated(from string) string {
	return fmt.Sprintf("# Made from %s by `go generate ./internal/monitoring`: do not edit.\n", from)
}

// PrometheusRule returns the rules file as a PrometheusRule of the
// Prometheus operator: its groups, indented, are the spec.
func PrometheusRule(rules []byte) []byte {
	var b bytes.Buffer
	b.WriteString(generated(RulesFile))
	b.WriteString(`apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: headless-dns
  labels:
    app.kubernetes.io/name: coredns
    app.kubernetes.io/component: headless-dns
spec:
`)
	indent(&b, "  ", withoutComments(rules))
	return b.Bytes()
}

// ConfigMap returns the dashboard in a ConfigMap that Grafana's dashboard
// sidecar (the grafana chart's, kube-prometheus-stack's) loads: it looks for
// the label grafana_dashboard.
func ConfigMap(dashboard []byte) []byte {
	var b bytes.Buffer
	b.WriteString(generated(DashboardFile))
	b.WriteString(`apiVersion: v1
kind: ConfigMap
metadata:
  name: headless-dns-dashboard
  labels:
    grafana_dashboard: "1"
    app.kubernetes.io/name: coredns
    app.kubernetes.io/component: headless-dns
data:
  headless-dns.json: |-
`)
	indent(&b, "    ", bytes.TrimRight(dashboard, "\n"))
	b.WriteString("\n")
	return b.Bytes()
}

// withoutComments drops the comment lines that head a YAML file.
func withoutComments(yaml []byte) []byte {
	for bytes.HasPrefix(yaml, []byte("#")) {
		_, yaml, _ = bytes.Cut(yaml, []byte("\n"))
	}
	return yaml
}

// indent writes text with prefix before each line that is not empty.
func indent(b *bytes.Buffer, prefix string, text []byte) {
	for i, line := range strings.Split(string(text), "\n") {
		if i > 0 {
			b.WriteString("\n")
		}
		if line != "" {
			b.WriteString(prefix + line)
		}
	}
}

// Target is one query of a panel.
type Target struct {
	RefID        string `json:"refId"`
	Datasource   source `json:"datasource"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat,omitempty"`
	Format       string `json:"format,omitempty"`
}

type source struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// prometheus is the data source of every query: the dashboard's variable.
var prometheus = source{Type: "prometheus", UID: "${datasource}"}

// Panel is one panel of the dashboard, or a row.
type Panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description,omitempty"`
	GridPos     gridPos     `json:"gridPos"`
	Datasource  *source     `json:"datasource,omitempty"`
	Targets     []Target    `json:"targets,omitempty"`
	FieldConfig fieldConfig `json:"fieldConfig"`
	Options     any         `json:"options,omitempty"`
	Collapsed   *bool       `json:"collapsed,omitempty"`
	Panels      []Panel     `json:"panels,omitempty"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type fieldConfig struct {
	Defaults  fieldDefaults `json:"defaults"`
	Overrides []any         `json:"overrides"`
}

type fieldDefaults struct {
	Unit string `json:"unit,omitempty"`
	Min  *int   `json:"min,omitempty"`
	Max  *int   `json:"max,omitempty"`
}

// Variable is a template variable of the dashboard.
type Variable struct {
	Name       string  `json:"name"`
	Label      string  `json:"label"`
	Type       string  `json:"type"`
	Query      any     `json:"query"`
	Datasource *source `json:"datasource,omitempty"`
	Refresh    int     `json:"refresh,omitempty"`
	IncludeAll bool    `json:"includeAll"`
	Multi      bool    `json:"multi"`
	AllValue   string  `json:"allValue,omitempty"`
	Sort       int     `json:"sort,omitempty"`
	Current    any     `json:"current"`
}

// Model is the JSON model of a Grafana dashboard, with what this one sets.
type Model struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Description   string   `json:"description"`
	Tags          []string `json:"tags"`
	Editable      bool     `json:"editable"`
	GraphTooltip  int      `json:"graphTooltip"`
	Refresh       string   `json:"refresh"`
	SchemaVersion int      `json:"schemaVersion"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Timezone   string `json:"timezone"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// selector is the label matchers of the dashboard's variables; a panel of
// questions adds the server.
const (
	selector       = `job=~"$job", instance=~"$instance"`
	serverSelector = selector + `, server=~"$server"`
)

// Dashboard returns the JSON model of the dashboard.
func Dashboard() ([]byte, error) {
	m := Model{
		UID:           "headless-dns",
		Title:         "CoreDNS / headless",
		Description:   "The headless plugin of CoreDNS: how fresh its data is, its watches, programming latency, what it did with each question; and beside it CoreDNS's own requests, latency and cache. See docs/operators.md for the runbooks of its alerts.",
		Editable:      true,
		GraphTooltip:  1,
		Refresh:       "30s",
		SchemaVersion: 39,
		Timezone:      "utc",
	}
	m.Tags = []string{"coredns", "dns", "headless"}
	m.Time.From, m.Time.To = "now-1h", "now"
	m.Templating.List = []Variable{
		{Name: "datasource", Label: "Data source", Type: "datasource", Query: "prometheus", Current: map[string]any{}},
		labelVariable("job", "Job", "coredns_headless_synced", "job", false),
		labelVariable("instance", "Instance", `coredns_headless_synced{job=~"$job"}`, "instance", true),
		labelVariable("server", "Server", `coredns_dns_requests_total{`+selector+`}`, "server", true),
	}

	y := 0
	id := 0
	row := func(title string) {
		id++
		m.Panels = append(m.Panels, Panel{ID: id, Type: "row", Title: title, GridPos: gridPos{H: 1, W: 24, Y: y}, Collapsed: new(bool)})
		y++
	}
	// line places panels of height h side by side, widths w.
	line := func(h int, panels ...Panel) {
		x := 0
		for _, p := range panels {
			id++
			p.ID = id
			p.GridPos.H, p.GridPos.Y, p.GridPos.X = h, y, x
			x += p.GridPos.W
			m.Panels = append(m.Panels, p)
		}
		y += h
	}

	row("Headless: is the data fresh")
	line(8,
		timeseries(9, "Data age by watch", "s",
			"Time since each watch last heard from the API server: an event, a list or a bookmark. The API server sends a bookmark about every minute, so a quiet cluster stays under a minute or two. Alert: HeadlessDNSDataStale.",
			target("A", `time() - max by (instance, watch) (coredns_headless_watch_last_heard_timestamp_seconds{`+selector+`} > 0)`, "{{instance}} {{watch}}")),
		timeseries(9, "Watches current", "none",
			"1 while the watch's last request to the API server succeeded, 0 from its first failure on. Alert: HeadlessDNSWatchFailing.",
			target("A", `min by (instance, watch) (coredns_headless_watch_current{`+selector+`})`, "{{instance}} {{watch}}")),
		stat(6, "Synced", "none",
			"1 once every watch has delivered its first list; until then the plugin is not ready. Alert: HeadlessDNSNotSynced.",
			target("A", `min by (instance) (coredns_headless_synced{`+selector+`})`, "{{instance}}")),
	)
	line(8,
		timeseries(12, "Watch failures by kind", "ops",
			"Failed lists and watches, and errors delivered on a watch, a second: forbidden and unauthorized need the RBAC role or the credentials fixed, connection the API server reached, gone is a relist.",
			target("A", `sum by (watch, kind) (rate(coredns_headless_watch_failures_total{`+selector+`}[$__rate_interval]))`, "{{watch}} {{kind}}")),
		timeseries(12, "Services and endpoints indexed", "none",
			"Headless Services and their ready addresses in the index of each instance: instances that disagree for minutes do not see the same API server state.",
			target("A", `sum by (instance) (coredns_headless_services{`+selector+`})`, "services {{instance}}"),
			target("B", `sum by (instance) (coredns_headless_endpoints{`+selector+`})`, "endpoints {{instance}}")),
	)
	row("Headless: programming latency and questions")
	line(8,
		timeseries(8, "Programming latency p50 / p99", "s",
			"From an EndpointSlice change of a headless Service (its last-change-trigger-time) to the moment the plugin serves it, live watch events only, all instances: the DNS programming latency SLI. Alert: HeadlessDNSProgrammingLatencyHigh.",
			target("A", `histogram_quantile(0.5, sum by (le) (rate(coredns_headless_dns_programming_duration_seconds_bucket{`+selector+`}[$__rate_interval])))`, "p50"),
			target("B", `histogram_quantile(0.99, sum by (le) (rate(coredns_headless_dns_programming_duration_seconds_bucket{`+selector+`}[$__rate_interval])))`, "p99")),
		heatmap(8, "Programming latency",
			"The changes programmed, by how long each took.",
			Target{RefID: "A", Expr: `sum by (le) (increase(coredns_headless_dns_programming_duration_seconds_bucket{` + selector + `}[$__rate_interval]))`, LegendFormat: "{{le}}", Format: "heatmap"}),
		timeseries(8, "Questions by outcome", "reqps",
			"What the plugin did with each question: answered with records, negative (NXDOMAIN, NODATA), passed to the next plugin, SERVFAIL while not synced, refused (a zone transfer); with extended_errors, the negative answers by reason. Alert: HeadlessDNSServfail.",
			target("A", `sum by (outcome) (rate(coredns_headless_requests_total{`+serverSelector+`}[$__rate_interval]))`, "{{outcome}}"),
			target("B", `sum by (reason) (rate(coredns_headless_negative_answers_total{`+selector+`}[$__rate_interval]))`, "negative: {{reason}}")),
	)
	row("CoreDNS: the same servers")
	line(8,
		timeseries(6, "Requests by protocol", "reqps",
			"Every question the servers got, whichever plugin answered it (coredns_dns_requests_total).",
			target("A", `sum by (proto) (rate(coredns_dns_requests_total{`+serverSelector+`}[$__rate_interval]))`, "{{proto}}")),
		timeseries(6, "Responses by rcode", "reqps",
			"Every answer the servers wrote, by rcode (coredns_dns_responses_total).",
			target("A", `sum by (rcode) (rate(coredns_dns_responses_total{`+serverSelector+`}[$__rate_interval]))`, "{{rcode}}")),
		timeseries(6, "Request latency p50 / p99", "s",
			"Time to answer a question, whichever plugin answered it (coredns_dns_request_duration_seconds).",
			target("A", `histogram_quantile(0.5, sum by (le) (rate(coredns_dns_request_duration_seconds_bucket{`+serverSelector+`}[$__rate_interval])))`, "p50"),
			target("B", `histogram_quantile(0.99, sum by (le) (rate(coredns_dns_request_duration_seconds_bucket{`+serverSelector+`}[$__rate_interval])))`, "p99")),
		timeseries(6, "Cache hits and misses", "reqps",
			"The cache plugin's hits, by type, and misses: a hit never reaches the headless plugin.",
			target("A", `sum by (type) (rate(coredns_cache_hits_total{`+serverSelector+`}[$__rate_interval]))`, "hits {{type}}"),
			target("B", `sum(rate(coredns_cache_misses_total{`+serverSelector+`}[$__rate_interval]))`, "misses")),
	)

	// Queries keep their > and <, which a browser never sees as HTML here.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func labelVariable(name, label, metric, of string, all bool) Variable {
	v := Variable{
		Name: name, Label: label, Type: "query", Datasource: &prometheus, Refresh: 2, Sort: 1,
		Query:   map[string]any{"query": fmt.Sprintf("label_values(%s, %s)", metric, of), "refId": "PrometheusVariableQueryEditor-VariableQuery"},
		Current: map[string]any{},
	}
	if all {
		v.IncludeAll, v.Multi, v.AllValue = true, true, ".*"
		v.Current = map[string]any{"text": "All", "value": "$__all"}
	}
	return v
}

func target(ref, expr, legend string) Target {
	return Target{RefID: ref, Expr: expr, LegendFormat: legend}
}

func timeseries(w int, title, unit, description string, targets ...Target) Panel {
	return panel("timeseries", w, title, unit, description, targets)
}

func stat(w int, title, unit, description string, targets ...Target) Panel {
	return panel("stat", w, title, unit, description, targets)
}

func heatmap(w int, title, description string, targets ...Target) Panel {
	p := panel("heatmap", w, title, "", description, targets)
	p.Options = map[string]any{
		"calculate": false,
		"yAxis":     map[string]any{"unit": "s"},
		"cellGap":   1,
		"color":     map[string]any{"mode": "scheme", "scheme": "Oranges"},
	}
	return p
}

func panel(kind string, w int, title, unit, description string, targets []Target) Panel {
	for i := range targets {
		targets[i].Datasource = prometheus
	}
	return Panel{
		Type: kind, Title: title, Description: description, GridPos: gridPos{W: w},
		Datasource: &prometheus, Targets: targets,
		FieldConfig: fieldConfig{Defaults: fieldDefaults{Unit: unit}, Overrides: []any{}},
	}
}

// Queries returns the queries of a dashboard's panels, by panel title, and
// those of its query variables by name, as written.
func Queries(dashboard []byte) (panels, variables map[string][]string, err error) {
	var m struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(dashboard, &m); err != nil {
		return nil, nil, err
	}
	panels, variables = map[string][]string{}, map[string][]string{}
	for _, p := range m.Panels {
		for _, t := range p.Targets {
			panels[p.Title] = append(panels[p.Title], t.Expr)
		}
	}
	for _, v := range m.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			return nil, nil, err
		}
		variables[v.Name] = append(variables[v.Name], q.Query)
	}
	return panels, variables, nil
}
