package cluster

import (
	"bytes"
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// InstallCRDs creates the CustomResourceDefinitions of manifests, one YAML
// document each, such as those the Multi-Cluster Services API embeds, and
// waits until the API server serves them. Definitions that exist are kept.
func (c *Cluster) InstallCRDs(ctx context.Context, manifests ...[]byte) error {
	client, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		return err
	}
	crds := client.Resource(crdResource)
	for _, m := range manifests {
		crd := &unstructured.Unstructured{}
		if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(m), 4096).Decode(&crd.Object); err != nil {
			return fmt.Errorf("CustomResourceDefinition: %w", err)
		}
		if _, err := crds.Create(ctx, crd, meta.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("CustomResourceDefinition %s: %w", crd.GetName(), err)
		}
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, c.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
			got, err := crds.Get(ctx, crd.GetName(), meta.GetOptions{})
			if err != nil {
				return false, err
			}
			return established(got), nil
		})
		if err != nil {
			return fmt.Errorf("CustomResourceDefinition %s not established: %w", crd.GetName(), err)
		}
	}
	return nil
}

// established reports whether the condition Established of crd is True.
func established(crd *unstructured.Unstructured) bool {
	conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conditions {
		if c, ok := c.(map[string]any); ok && c["type"] == "Established" && c["status"] == "True" {
			return true
		}
	}
	return false
}
