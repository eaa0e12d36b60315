package domains

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// config-certmanager keys.
const (
	IssuerRefKey               = "issuerRef"
	ClusterLocalIssuerRefKey   = "clusterLocalIssuerRef"
	SystemInternalIssuerRefKey = "systemInternalIssuerRef"
)

// IssuerRef names a cert-manager Issuer or ClusterIssuer.
type IssuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

// KnativeSelfSignedIssuer is the ClusterIssuer Knative's config-certmanager defaults to.
var KnativeSelfSignedIssuer = IssuerRef{Kind: "ClusterIssuer", Name: "knative-selfsigned-issuer"}

// CertManager is config-certmanager: the issuers of the certificates Skiff asks cert-manager for.
type CertManager struct {
	IssuerRef, ClusterLocalIssuerRef, SystemInternalIssuerRef IssuerRef
}

// ParseCertManager reads config-certmanager's data as Knative's
// NewCertManagerConfigFromConfigMap does; every issuer defaults to KnativeSelfSignedIssuer. An
// error names the key.
func ParseCertManager(data map[string]string) (*CertManager, error) {
	c := &CertManager{IssuerRef: KnativeSelfSignedIssuer, ClusterLocalIssuerRef: KnativeSelfSignedIssuer, SystemInternalIssuerRef: KnativeSelfSignedIssuer}
	for key, target := range map[string]*IssuerRef{IssuerRefKey: &c.IssuerRef, ClusterLocalIssuerRefKey: &c.ClusterLocalIssuerRef, SystemInternalIssuerRefKey: &c.SystemInternalIssuerRef} {
		v, ok := data[key]
		if !ok {
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(v), target); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if target.Name == "" {
			return nil, fmt.Errorf("%s: name is required", key)
		}
	}
	return c, nil
}
