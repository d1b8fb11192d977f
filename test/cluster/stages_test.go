package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/headlessdns/headless/test/cluster/internal/bincache"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// stagesSample is kwok's stages as bincache writes them, cut short: the
// pod-ready stage's selector as kwok v0.8.0 has it, the others abridged.
const stagesSample = `# kustomize/stage/node/fast/node-initialize.yaml
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'NotIn'
      values:
      - 'Running'
  next:
    statusTemplate: |
      phase: Running
---
# kustomize/stage/pod/fast/pod-ready.yaml
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      phase: Running
---
# kustomize/stage/pod/fast/pod-delete.yaml
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    delete: true
`

// TestKwokStages checks the stages file kwok runs with: every document a
// Stage; kwok's stages all there, unchanged but for the pod-ready stage,
// which leaves the pods labelled slow-ready "true" alone (and only those);
// and two stages for those, with the label in their selectors, the second
// delayed by the pod's annotations. It checks the cached file too, when
// there is one.
func TestKwokStages(t *testing.T) {
	bases := map[string][]byte{"sample": []byte(stagesSample)}
	if path, err := bincache.ConfigPath(bincache.Kwok); err == nil {
		if b, err := os.ReadFile(path); err == nil {
			bases[path] = b
		}
	}
	for name, base := range bases {
		out, err := kwokStages(base)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		before, err := decodeStages(base)
		if err != nil {
			t.Fatalf("%s, as bincache wrote it: %v", name, err)
		}
		after, err := decodeStages(out)
		if err != nil {
			t.Fatalf("%s, with the slow-ready stages: %v\n%s", name, err, out)
		}
		if len(after) != len(before)+2 {
			t.Errorf("%s: %d stages, want %d and 2", name, len(after), len(before))
		}
		for stage, s := range before {
			got, want := fmt.Sprint(after[stage]), fmt.Sprint(s)
			if stage == "pod-ready" {
				exprs := expressions(after[stage])
				if len(exprs) != len(expressions(s))+1 || !slices.Contains(exprs, fmt.Sprintf(`.metadata.labels["%s"] NotIn [true]`, SlowReadyLabel)) {
					t.Errorf("%s: pod-ready's expressions are %q, want kwok's %q and the label NotIn true", name, exprs, expressions(s))
				}
				got, want = withoutExpressions(after[stage]), withoutExpressions(s)
			}
			if got != want {
				t.Errorf("%s: stage %s changed:\n%s\nwant\n%s", name, stage, got, want)
			}
		}
		for _, stage := range []string{"pod-slow-ready-start", "pod-slow-ready-ready"} {
			s, ok := after[stage]
			if !ok {
				t.Errorf("%s: no stage %s", name, stage)
				continue
			}
			if exprs := expressions(s); !slices.Contains(exprs, fmt.Sprintf(`.metadata.labels["%s"] In [true]`, SlowReadyLabel)) {
				t.Errorf("%s: %s's expressions are %q, without the label In true", name, stage, exprs)
			}
			spec := s["spec"].(map[string]any)
			template, _ := spec["next"].(map[string]any)["statusTemplate"].(string)
			delay, delayed := spec["delay"].(map[string]any)
			switch stage {
			case "pod-slow-ready-start":
				if delayed || !strings.Contains(template, "podIP:") || !strings.Contains(template, "status: \"False\"\n  type: Ready\n") {
					t.Errorf("%s: %s is delayed (%v), or gives no address, or not Ready=False:\n%s", name, stage, delay, template)
				}
			case "pod-slow-ready-ready":
				if fmt.Sprint(delay["durationFrom"]) != fmt.Sprintf(`map[expressionFrom:.metadata.annotations["%s"]]`, ReadyAfterAnnotation) ||
					fmt.Sprint(delay["jitterDurationFrom"]) != fmt.Sprintf(`map[expressionFrom:.metadata.annotations["%s"]]`, ReadyWithinAnnotation) ||
					!strings.Contains(template, "status: \"True\"\n  type: Ready\n") || strings.Contains(template, "podIP") {
					t.Errorf("%s: %s's delay is %v, or it does not make the pod Ready, or changes its address:\n%s", name, stage, delay, template)
				}
			}
		}
	}
	if _, err := kwokStages([]byte(strings.Replace(stagesSample, "name: pod-ready", "name: pod-readier", 1))); err == nil {
		t.Error("stages without pod-ready: no error")
	}
}

// decodeStages decodes the YAML documents of a stages file, each a Stage,
// by name.
func decodeStages(b []byte) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	d := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var s map[string]any
		if err := d.Decode(&s); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		name, _ := s["metadata"].(map[string]any)["name"].(string)
		if s["kind"] != "Stage" || name == "" {
			return nil, fmt.Errorf("not a named Stage: %v", s)
		}
		if _, ok := out[name]; ok {
			return nil, fmt.Errorf("two stages %s", name)
		}
		out[name] = s
	}
}

// expressions returns the matchExpressions of stage s, each as "KEY OP
// [VALUES]".
func expressions(s map[string]any) []string {
	var out []string
	sel, _ := s["spec"].(map[string]any)["selector"].(map[string]any)
	exprs, _ := sel["matchExpressions"].([]any)
	for _, e := range exprs {
		m := e.(map[string]any)
		out = append(out, fmt.Sprintf("%v %v %v", m["key"], m["operator"], m["values"]))
	}
	return out
}

// withoutExpressions returns s with its expressions cleared, for comparing
// the rest.
func withoutExpressions(s map[string]any) string {
	sel := s["spec"].(map[string]any)["selector"].(map[string]any)
	exprs := sel["matchExpressions"]
	delete(sel, "matchExpressions")
	out := fmt.Sprint(s)
	sel["matchExpressions"] = exprs
	return out
}
