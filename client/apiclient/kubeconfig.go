package apiclient

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Version reads the API's /version: it answers as a Kubernetes API server, its gitVersion
// ending in "+skiff".
func (c *Client) Version(ctx context.Context) (version.Info, error) {
	var v version.Info
	err := c.do(ctx, http.MethodGet, "/version", nil, &v)
	return v, err
}

// KubeconfigOptions say what context WriteKubeconfig writes.
type KubeconfigOptions struct {
	// Name is the context's name, and its cluster's and user's ("skiff" when empty).
	Name string
	// Namespace is the context's namespace ("default" when empty).
	Namespace string
	// SetCurrent makes it the current context.
	SetCurrent bool
}

// DefaultKubeconfigPath is where kubectl reads its configuration from: the first file in
// $KUBECONFIG, else ~/.kube/config.
func DefaultKubeconfigPath() string {
	if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		return filepath.SplitList(env)[0]
	}
	return clientcmd.RecommendedHomeFile
}

// Kubeconfig is a kubeconfig with one context for the API at c.BaseURL, after checking that
// a Skiff API answers there. It holds no credentials: `skiff up`'s API is unauthenticated
// and, by default, reachable from this machine only (127.0.0.1).
func (c *Client) Kubeconfig(ctx context.Context, opts KubeconfigOptions) (*clientcmdapi.Config, error) {
	v, err := c.Version(ctx)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if !strings.HasSuffix(v.GitVersion, "+skiff") {
		return nil, fmt.Errorf("kubeconfig: %s is not skiff up's API (it reports version %q)", c.BaseURL, v.GitVersion)
	}
	name, ns := opts.Name, opts.Namespace
	if name == "" {
		name = "skiff"
	}
	if ns == "" {
		ns = "default"
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: c.BaseURL}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: ns}
	cfg.CurrentContext = name
	return cfg, nil
}

// WriteKubeconfig adds the context Kubeconfig makes to the kubeconfig file at path (created
// when missing), replacing a cluster, user and context of the same name and keeping the rest.
func (c *Client) WriteKubeconfig(ctx context.Context, path string, opts KubeconfigOptions) (name string, err error) {
	add, err := c.Kubeconfig(ctx, opts)
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	if _, err := os.Stat(path); err == nil {
		if cfg, err = clientcmd.LoadFromFile(path); err != nil {
			return "", fmt.Errorf("kubeconfig: read %s: %w", path, err)
		}
	}
	name = add.CurrentContext
	cfg.Clusters[name] = add.Clusters[name]
	cfg.AuthInfos[name] = add.AuthInfos[name]
	cfg.Contexts[name] = add.Contexts[name]
	if opts.SetCurrent || cfg.CurrentContext == "" {
		cfg.CurrentContext = name
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("kubeconfig: %w", err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("kubeconfig: write %s: %w", path, err)
	}
	return name, nil
}
