// Package v1 holds the two core Kubernetes kinds Skiff stores in `skiff up` as a cluster would:
// ConfigMap (Knative's config-* settings) and Secret (certificates for DomainMappings, and
// whatever else reads Secrets). They are the minimal subset of k8s.io/api/core/v1 with the same
// JSON; in a cluster the API server keeps them.
package v1

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// GroupVersion is the core API's apiVersion.
const GroupVersion = "v1"

// Kinds of this API group.
const (
	KindConfigMap = "ConfigMap"
	KindSecret    = "Secret"
)

// Keys and type of a TLS Secret (kubernetes.io/tls).
const (
	SecretTypeTLS = string(corev1.SecretTypeTLS)
	TLSCertKey    = corev1.TLSCertKey
	TLSKeyKey     = corev1.TLSPrivateKeyKey
)

// maxSize is the most a ConfigMap's or Secret's data may hold, as in Kubernetes.
const maxSize = corev1.MaxSecretSize

// ConfigMap holds string settings (core/v1 ConfigMap).
type ConfigMap struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Immutable         *bool             `json:"immutable,omitempty"`
	Data              map[string]string `json:"data,omitempty"`
	BinaryData        map[string][]byte `json:"binaryData,omitempty"`
}

// Secret holds sensitive data (core/v1 Secret).
type Secret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Immutable         *bool             `json:"immutable,omitempty"`
	Data              map[string][]byte `json:"data,omitempty"`
	// StringData is merged into Data when written, as the API server does.
	StringData map[string]string `json:"stringData,omitempty"`
	Type       string            `json:"type,omitempty"`
}

// SetDefaults gives the ConfigMap the default namespace.
func (c *ConfigMap) SetDefaults() {
	if c.Namespace == "" {
		c.Namespace = "default"
	}
}

// Validate checks what the API server checks: the name, keys and size.
func (c *ConfigMap) Validate() field.ErrorList {
	errs := validateMeta(&c.ObjectMeta)
	size := 0
	for k, v := range c.Data {
		errs = append(errs, validateKey(field.NewPath("data").Key(k), k)...)
		size += len(k) + len(v)
	}
	for k, v := range c.BinaryData {
		errs = append(errs, validateKey(field.NewPath("binaryData").Key(k), k)...)
		if _, dup := c.Data[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of key present in data"))
		}
		size += len(k) + len(v)
	}
	if size > maxSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxSize))
	}
	return errs
}

// SetDefaults merges stringData into data and defaults the type and namespace, as the API
// server does on a write.
func (s *Secret) SetDefaults() {
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if s.Type == "" {
		s.Type = string(corev1.SecretTypeOpaque)
	}
	for k, v := range s.StringData {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

// Validate checks what the API server checks: the name, keys, size, and that a
// kubernetes.io/tls Secret has tls.crt and tls.key. Whether they hold a usable certificate is
// decided where they are used, and reported there.
func (s *Secret) Validate() field.ErrorList {
	errs := validateMeta(&s.ObjectMeta)
	size := 0
	for k, v := range s.Data {
		errs = append(errs, validateKey(field.NewPath("data").Key(k), k)...)
		size += len(v)
	}
	if size > maxSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxSize))
	}
	if s.Type == SecretTypeTLS {
		for _, k := range []string{TLSCertKey, TLSKeyKey} {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, field.Required(field.NewPath("data").Key(k), "a kubernetes.io/tls Secret needs it"))
			}
		}
	}
	return errs
}

func validateMeta(m *metav1.ObjectMeta) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	if m.Name == "" {
		return append(errs, field.Required(p.Child("name"), "a name is required"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(m.Name) {
		errs = append(errs, field.Invalid(p.Child("name"), m.Name, msg))
	}
	for _, msg := range validation.IsDNS1123Label(m.Namespace) {
		errs = append(errs, field.Invalid(p.Child("namespace"), m.Namespace, msg))
	}
	return errs
}

func validateKey(p *field.Path, k string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsConfigMapKey(k) {
		errs = append(errs, field.Invalid(p, k, fmt.Sprint(msg)))
	}
	return errs
}
