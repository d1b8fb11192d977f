package cluster

import (
	"bufio"
	"encoding/json"
	"net/url"
	"os"
	"time"
)

// auditPolicy logs, once the response starts and once it is complete, the
// requests for the resources DNS plugins watch, without their bodies.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  resources:
  - group: ""
    resources: ["services", "namespaces"]
  - group: "discovery.k8s.io"
    resources: ["endpointslices"]
  - group: "multicluster.x-k8s.io"
    resources: ["serviceimports"]
- level: None
`

// auditArgs returns the kube-apiserver flags that write the audit log of
// Options.Audit, after writing its policy.
func (c *Cluster) auditArgs() ([]string, error) {
	policy := c.path("audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	return []string{"--audit-policy-file=" + policy, "--audit-log-path=" + c.path("audit.log")}, nil
}

// AuditEvent is one request in the audit log (see Options.Audit).
type AuditEvent struct {
	Stage      string    `json:"stage"` // ResponseStarted (watches) or ResponseComplete
	Verb       string    `json:"verb"`  // list, watch, get, create, ...
	RequestURI string    `json:"requestURI"`
	UserAgent  string    `json:"userAgent"`
	Received   time.Time `json:"requestReceivedTimestamp"`
	ObjectRef  struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		APIGroup  string `json:"apiGroup"`
	} `json:"objectRef"`
}

// Query returns the query parameters of the request, such as its
// labelSelector and fieldSelector.
func (e AuditEvent) Query() url.Values {
	u, err := url.ParseRequestURI(e.RequestURI)
	if err != nil {
		return url.Values{}
	}
	return u.Query()
}

// AuditEvents returns the requests for services, namespaces, EndpointSlices
// and ServiceImports that the API server has logged so far, when the cluster
// was started with Options.Audit.
func (c *Cluster) AuditEvents() ([]AuditEvent, error) {
	f, err := os.Open(c.path("audit.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e AuditEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			events = append(events, e)
		}
	}
	return events, sc.Err()
}
