package cluster

import (
	"context"
	"fmt"

	authn "k8s.io/api/authentication/v1"
	core "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	meta "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tokenExpiration is the lifetime, in seconds, of service account tokens.
const tokenExpiration = 3600

// EnsureNamespace creates the namespace name unless it exists.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string) error {
	ns := &core.Namespace{ObjectMeta: meta.ObjectMeta{Name: name}}
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, meta.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// ServiceAccountKubeconfig creates the ServiceAccount namespace/name, and its
// namespace, unless they exist, and writes a kubeconfig that authenticates as
// it with a token valid for an hour. It returns the path of the file, in the
// work directory. The account can do nothing until RBAC rules allow it.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	if err := c.EnsureNamespace(ctx, namespace); err != nil {
		return "", err
	}
	if err := c.ensureServiceAccount(ctx, namespace, name); err != nil {
		return "", err
	}
	token, err := c.serviceAccountToken(ctx, namespace, name)
	if err != nil {
		return "", err
	}
	path := c.path(fmt.Sprintf("kubeconfig-%s-%s", namespace, name))
	user := "system:serviceaccount:" + namespace + ":" + name
	return path, writeKubeconfig(path, c.Server, user, token)
}

// ensureServiceAccount creates the ServiceAccount namespace/name unless it
// exists.
func (c *Cluster) ensureServiceAccount(ctx context.Context, namespace, name string) error {
	sa := &core.ServiceAccount{ObjectMeta: meta.ObjectMeta{Name: name, Namespace: namespace}}
	_, err := c.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, meta.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create service account %s/%s: %w", namespace, name, err)
	}
	return nil
}

// serviceAccountToken returns a new token of the ServiceAccount
// namespace/name from the TokenRequest API.
func (c *Cluster) serviceAccountToken(ctx context.Context, namespace, name string) (string, error) {
	exp := int64(tokenExpiration)
	req := &authn.TokenRequest{Spec: authn.TokenRequestSpec{ExpirationSeconds: &exp}}
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, req, meta.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token of service account %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}
