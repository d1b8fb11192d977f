package monitoring

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const dir = "../../deploy/monitoring"

// TestFilesCurrent checks that the files in deploy/monitoring are those
// Render makes from the rules file and Dashboard: run go generate after a
// change.
func TestFilesCurrent(t *testing.T) {
	files, err := Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what go generate ./internal/monitoring makes: run it", name)
		}
	}
}

// TestRenderedManifests checks that the PrometheusRule holds the rules file
// and the ConfigMap the dashboard, read back as YAML.
func TestRenderedManifests(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var rules, rule map[string]any
	if err := yaml.Unmarshal(read(RulesFile), &rules); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(read(PrometheusRuleFile), &rule); err != nil {
		t.Fatal(err)
	}
	if rule["kind"] != "PrometheusRule" || !reflect.DeepEqual(rule["spec"], rules) {
		t.Errorf("the PrometheusRule's spec is not the rules file:\n%v\n%v", rule["spec"], rules)
	}

	var cm struct {
		Kind     string
		Metadata struct{ Labels map[string]string }
		Data     map[string]string
	}
	if err := yaml.Unmarshal(read(ConfigMapFile), &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata.Labels["grafana_dashboard"] != "1" {
		t.Errorf("not a ConfigMap for Grafana's sidecar: %+v", cm.Metadata)
	}
	var got, want any
	if err := json.Unmarshal([]byte(cm.Data["headless-dns.json"]), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(read(DashboardFile), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("the ConfigMap's dashboard is not headless-dashboard.json")
	}
}

// TestRunbooks checks that every alert has a runbook_url that points at a
// heading of docs/operators.md, and a unit test in which it fires and one
// in which it does not.
func TestRunbooks(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Annotations map[string]string
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	docs, err := os.ReadFile("../../docs/operators.md")
	if err != nil {
		t.Fatal(err)
	}
	var anchors []string
	for _, h := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(docs), -1) {
		anchors = append(anchors, anchor(h[1]))
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		}
	}
	b, err = os.ReadFile(filepath.Join(dir, RulesTestFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	const base = "https://github.com/headlessdns/headless/blob/main/docs/operators.md#"
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			url := r.Annotations["runbook_url"]
			if !strings.HasPrefix(url, base) || !slices.Contains(anchors, strings.TrimPrefix(url, base)) {
				t.Errorf("%s: runbook_url %q is no heading of docs/operators.md", r.Alert, url)
			}
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: unit tests in which it fires: %v, in which it does not: %v; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
	if n < 5 {
		t.Errorf("%d alerts, want at least 5", n)
	}
}

// anchor is GitHub's anchor of a heading.
func anchor(heading string) string {
	a := strings.ToLower(strings.TrimSpace(heading))
	a = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(a, "")
	return strings.ReplaceAll(a, " ", "-")
}

// TestPromtool checks the rules file with promtool, and runs its unit
// tests. CI installs promtool (Debian's prometheus); without it, the test
// skips, except in CI.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed: .ci/run installs Debian's prometheus")
		}
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", RulesFile}, {"test", "rules", RulesTestFile}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
