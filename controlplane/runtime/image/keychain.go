package image

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// dockerHub are the names docker configs use for Docker Hub; go-containerregistry calls it
// index.docker.io.
var dockerHub = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// dockerEntry is one registry's credentials in a docker config.
type dockerEntry struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// secretKeychain holds the credentials of pull secrets, by registry host[/path prefix].
type secretKeychain struct {
	entries map[string]authn.AuthConfig
	keys    []string // longest first, so a repository prefix wins over its host
}

// Keychain is the credentials for pulling: those of the pull secrets (Kubernetes
// kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg Secrets, in order: the first that
// names a registry wins), then base (authn.DefaultKeychain, i.e. ~/.docker/config.json and its
// credential helpers, when nil), as the kubelet tries a pod's imagePullSecrets before the node's.
// A secret of another type, or whose config does not parse, is an error naming it.
func Keychain(base authn.Keychain, secrets ...*corev1.Secret) (authn.Keychain, error) {
	if base == nil {
		base = authn.DefaultKeychain
	}
	if len(secrets) == 0 {
		return base, nil
	}
	sk := &secretKeychain{entries: map[string]authn.AuthConfig{}}
	for _, s := range secrets {
		auths, err := dockerAuths(s)
		if err != nil {
			return nil, err
		}
		for key, e := range auths {
			key = normalizeKey(key)
			if _, seen := sk.entries[key]; seen {
				continue
			}
			ac := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
			if e.Auth != "" && ac.Username == "" {
				dec, err := base64.StdEncoding.DecodeString(e.Auth)
				if err != nil {
					return nil, fmt.Errorf("secret %s/%s: auths[%q].auth is not base64: %w", s.Namespace, s.Name, key, err)
				}
				user, pass, ok := strings.Cut(string(dec), ":")
				if !ok {
					return nil, fmt.Errorf("secret %s/%s: auths[%q].auth is not user:password", s.Namespace, s.Name, key)
				}
				ac.Username, ac.Password = user, pass
			}
			sk.entries[key] = ac
			sk.keys = append(sk.keys, key)
		}
	}
	sort.SliceStable(sk.keys, func(i, j int) bool { return len(sk.keys[i]) > len(sk.keys[j]) })
	return authn.NewMultiKeychain(sk, base), nil
}

// dockerAuths reads the registry entries of a pull secret.
func dockerAuths(s *corev1.Secret) (map[string]dockerEntry, error) {
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		var cfg struct {
			Auths map[string]dockerEntry `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("secret %s/%s: data[%s]: %w", s.Namespace, s.Name, corev1.DockerConfigJsonKey, err)
		}
		return cfg.Auths, nil
	case corev1.SecretTypeDockercfg:
		var cfg map[string]dockerEntry
		if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &cfg); err != nil {
			return nil, fmt.Errorf("secret %s/%s: data[%s]: %w", s.Namespace, s.Name, corev1.DockerConfigKey, err)
		}
		return cfg, nil
	}
	return nil, fmt.Errorf("secret %s/%s: type %q is not a pull secret (want %s or %s)",
		s.Namespace, s.Name, s.Type, corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)
}

// normalizeKey turns a docker config key ("https://index.docker.io/v1/", "ghcr.io/org") into
// host[/path], with Docker Hub's aliases as index.docker.io.
func normalizeKey(key string) string {
	key = strings.TrimSuffix(trimScheme(key), "/")
	host, path, _ := strings.Cut(key, "/")
	if dockerHub[host] {
		host = name.DefaultRegistry
	}
	if path == "" {
		return host
	}
	return host + "/" + path
}

// Resolve implements authn.Keychain: the entry for the longest matching repository prefix, or
// the registry's, or anonymous (which lets the next keychain try).
func (k *secretKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	repo := r.String()
	reg := r.RegistryStr()
	for _, key := range k.keys {
		if key == reg || repo == key || strings.HasPrefix(repo, key+"/") {
			return authn.FromConfig(k.entries[key]), nil
		}
	}
	return authn.Anonymous, nil
}
