package cluster

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
)

// newToken returns a random bearer token.
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// writeTokenFile writes a static token file that makes token an admin.
func writeTokenFile(path, token string) error {
	return os.WriteFile(path, []byte(token+",admin,admin,system:masters\n"), 0o600)
}

// writeServiceAccountKey writes a new PEM encoded RSA key that signs and
// verifies service account tokens.
func writeServiceAccountKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// kubeconfigTemplate is a kubeconfig with a single context, local, for a
// bearer token; the server's certificate is self-signed, so not verified.
const kubeconfigTemplate = `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %q
    insecure-skip-tls-verify: true
users:
- name: %q
  user:
    token: %q
contexts:
- name: local
  context:
    cluster: local
    user: %q
current-context: local
`

// writeKubeconfig writes a kubeconfig for user, authenticated by token, to
// path.
func writeKubeconfig(path, server, user, token string) error {
	s := fmt.Sprintf(kubeconfigTemplate, server, user, token, user)
	return os.WriteFile(path, []byte(s), 0o600)
}

// WriteKubeconfig writes to path an admin kubeconfig of the cluster whose
// server is server, such as a proxy in front of the API server.
func (c *Cluster) WriteKubeconfig(path, server string) error {
	return writeKubeconfig(path, server, "admin", c.Token)
}
