package cluster

import (
	"bytes"
	"fmt"
	"os"
)

// Pods that start slowly. kwok's fast pod-ready stage gives a pod its
// address and Ready=True in one step, so that a pod is never listed in an
// EndpointSlice unready. A pod labelled SlowReadyLabel "true" gets its
// address and phase Running with Ready=False at once, and Ready=True after
// a delay drawn uniformly between its annotations ReadyAfterAnnotation and
// ReadyWithinAnnotation (Go durations such as "10s"; 10s and 12s when
// missing): kwok's Stage spec.delay, durationFrom and jitterDurationFrom.
// Every other pod goes through kwok's stages as before.
const (
	SlowReadyLabel        = "headless.bench/slow-ready"
	ReadyAfterAnnotation  = "headless.bench/ready-after"
	ReadyWithinAnnotation = "headless.bench/ready-within"
)

// podReadyName and podReadySelector locate kwok's fast pod-ready stage in
// the stages file and the start of its selector's expressions.
const (
	podReadyName     = "  name: pod-ready\n"
	podReadySelector = "  selector:\n    matchExpressions:\n"
)

// notSlowReady is the expression added to the pod-ready stage: a pod not
// labelled SlowReadyLabel "true" (no label, or another value).
var notSlowReady = fmt.Sprintf(`    - key: '.metadata.labels["%s"]'
      operator: 'NotIn'
      values:
      - 'true'
`, SlowReadyLabel)

// slowReadyStages are the stages of the pods labelled SlowReadyLabel "true":
// Pending to Running with an address and Ready=False, with no delay; then
// Ready=True after the delay of the pod's annotations. Their templates are
// those of kwok's fast pod-ready stage (kustomize/stage/pod/fast), split in
// two.
var slowReadyStages = fmt.Sprintf(`# pods labelled %[1]s: "true", a stage of the bench's
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-slow-ready-start
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["%[1]s"]'
      operator: 'In'
      values:
      - 'true'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        reason: ContainersNotReady
        status: "False"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        reason: ContainersNotReady
        status: "False"
        type: ContainersReady

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
---
# pods labelled %[1]s: "true", a stage of the bench's
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-slow-ready-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.labels["%[1]s"]'
      operator: 'In'
      values:
      - 'true'
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  delay:
    durationMilliseconds: 10000
    durationFrom:
      expressionFrom: '.metadata.annotations["%[2]s"]'
    jitterDurationMilliseconds: 12000
    jitterDurationFrom:
      expressionFrom: '.metadata.annotations["%[3]s"]'
  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: {{ .conditionType | Quote }}
      {{ end }}

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
`, SlowReadyLabel, ReadyAfterAnnotation, ReadyWithinAnnotation)

// kwokStages returns the stages file base, kwok's stages as bincache wrote
// them, with the slow-ready pods' stages: the pod-ready stage gets the
// expression notSlowReady, and slowReadyStages follow the others. The
// cached file is left as it is, so that a cache written before these
// stages serves too.
func kwokStages(base []byte) ([]byte, error) {
	docs := bytes.Split(base, []byte("\n---\n"))
	found := 0
	for i, d := range docs {
		if !bytes.Contains(d, []byte("\nkind: Stage\n")) || !bytes.Contains(d, []byte("\n"+podReadyName)) {
			continue
		}
		at := bytes.Index(d, []byte("\n"+podReadySelector))
		if at < 0 {
			return nil, fmt.Errorf("kwok's pod-ready stage has no selector of expressions the bench knows how to extend:\n%s", d)
		}
		at += 1 + len(podReadySelector)
		docs[i] = append(append(append([]byte{}, d[:at]...), notSlowReady...), d[at:]...)
		found++
	}
	if found != 1 {
		return nil, fmt.Errorf("kwok's stages have %d pod-ready stages, want 1", found)
	}
	out := bytes.Join(docs, []byte("\n---\n"))
	out = append(bytes.TrimRight(out, "\n"), "\n---\n"...)
	return append(out, slowReadyStages...), nil
}

// writeKwokStages writes kwokStages of the cached stages file from into the
// cluster's work directory and returns its path.
func (c *Cluster) writeKwokStages(from string) (string, error) {
	base, err := os.ReadFile(from)
	if err != nil {
		return "", err
	}
	stages, err := kwokStages(base)
	if err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	path := c.path("kwok.yaml")
	return path, os.WriteFile(path, stages, 0o644)
}
