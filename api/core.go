package api

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/api/fielderr"
)

// Kinds of the core group the local API serves.
const (
	KindSecret    = "Secret"
	KindConfigMap = "ConfigMap"
)

// maxDataBytes is Kubernetes' bound on a Secret's or ConfigMap's data (1 MiB).
const maxDataBytes = 1 << 20

// CoreKinds lists the Kubernetes core kinds Skiff's local API also serves, because Knative YAML
// refers to them: Secrets (imagePullSecrets, env and volumes), ConfigMaps (env and volumes),
// Namespaces and ServiceAccounts (serviceAccountName). They are served under /api/v1 as by a
// Kubernetes API server, validated as it validates them, and need no CRD in a cluster.
func CoreKinds() []*Kind {
	return []*Kind{
		{
			Group: "", Version: "v1", Kind: KindSecret, Plural: "secrets", Aliases: []string{"secret"},
			New: func() Object { return &Secret{} },
		},
		{
			Group: "", Version: "v1", Kind: KindConfigMap, Plural: "configmaps", Aliases: []string{"configmap"},
			ShortNames: []string{"cm"},
			New:        func() Object { return &ConfigMap{} },
		},
		{
			Group: "", Version: "v1", Kind: "Namespace", Plural: "namespaces", Aliases: []string{"namespace"},
			ShortNames: []string{"ns"}, ClusterScoped: true, StatusSubresource: true,
			New: func() Object { return &Namespace{} },
		},
		{
			Group: "", Version: "v1", Kind: "ServiceAccount", Plural: "serviceaccounts", Aliases: []string{"serviceaccount"},
			ShortNames: []string{"sa"},
			New:        func() Object { return &ServiceAccount{} },
		},
	}
}

// Namespace is a core/v1 Namespace as the local API stores it. A namespace need not exist for
// objects to be created in it (Skiff has no NamespaceLifecycle admission); deleting one deletes
// everything in it, as Kubernetes' namespace controller does.
type Namespace struct{ corev1.Namespace }

// SetDefaults is the API server's: phase Active, and the kubernetes.io/metadata.name label.
func (n *Namespace) SetDefaults(context.Context) {
	if n.Status.Phase == "" {
		n.Status.Phase = corev1.NamespaceActive
	}
	if n.Name != "" {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[corev1.LabelMetadataName] = n.Name
	}
}

// Validate is the API server's validation of a Namespace beyond its metadata (a DNS label
// for a name, no namespace: ValidateObjectMeta): nothing else.
func (n *Namespace) Validate(context.Context) *fielderr.Error { return nil }

// ServiceAccount is a core/v1 ServiceAccount as the local API stores it. Skiff's local runtime
// gives instances no identity: a revision's serviceAccountName is accepted and not acted on.
type ServiceAccount struct{ corev1.ServiceAccount }

// SetDefaults does nothing: the API server defaults nothing in a ServiceAccount.
func (s *ServiceAccount) SetDefaults(context.Context) {}

// Validate is the API server's validation of a ServiceAccount: its metadata.
func (s *ServiceAccount) Validate(context.Context) *fielderr.Error {
	return fieldErrors(validateMeta(s.Name, s.Namespace))
}

// Secret is a core/v1 Secret as the local API stores it (the same JSON), defaulted and
// validated as the Kubernetes API server does.
type Secret struct{ corev1.Secret }

// SetDefaults is the API server's: type Opaque, stringData folded into data.
func (s *Secret) SetDefaults(context.Context) { defaultSecret(&s.Secret) }

// Validate is the API server's validation of a Secret.
func (s *Secret) Validate(context.Context) *fielderr.Error {
	return fieldErrors(validateSecret(&s.Secret))
}

// ConfigMap is a core/v1 ConfigMap as the local API stores it, validated as the Kubernetes
// API server does.
type ConfigMap struct{ corev1.ConfigMap }

// SetDefaults does nothing: the API server defaults nothing in a ConfigMap.
func (c *ConfigMap) SetDefaults(context.Context) {}

// Validate is the API server's validation of a ConfigMap.
func (c *ConfigMap) Validate(context.Context) *fielderr.Error {
	return fieldErrors(validateConfigMap(&c.ConfigMap))
}

// fieldErrors turns the API server's field errors into Skiff's, one per field.
func fieldErrors(errs field.ErrorList) *fielderr.Error {
	var out *fielderr.Error
	for _, e := range errs {
		out = out.Also(fielderr.Generic(e.ErrorBody(), e.Field))
	}
	return out
}

// ServedKinds is every kind the local API serves: Skiff's (Kinds) and the core ones.
func ServedKinds() []*Kind { return append(Kinds(), CoreKinds()...) }

// Path is the kind's URL prefix: /api/v1 for the core group, else /apis/{group}/{version}.
func (k *Kind) Path() string {
	if k.Group == "" {
		return "/api/" + k.Version
	}
	return "/apis/" + k.Group + "/" + k.Version
}

// defaultSecret does what the API server does on write: type Opaque by default, stringData
// folded into data.
func defaultSecret(s *corev1.Secret) {
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	}
}

func validateMeta(name, namespace string) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	if name == "" {
		return append(errs, field.Required(p.Child("name"), "a name is required"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p.Child("name"), name, msg))
	}
	for _, msg := range validation.IsDNS1123Label(namespace) {
		errs = append(errs, field.Invalid(p.Child("namespace"), namespace, msg))
	}
	return errs
}

// validateSecret checks a Secret as the API server does: its keys, its size, and the keys its
// type requires (.dockerconfigjson, .dockercfg; tls.crt and tls.key).
func validateSecret(s *corev1.Secret) field.ErrorList {
	errs := validateMeta(s.Name, s.Namespace)
	data := field.NewPath("data")
	total := 0
	for k, v := range s.Data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(data.Key(k), k, msg))
		}
		total += len(v)
	}
	if total > maxDataBytes {
		errs = append(errs, field.TooLong(data, "", maxDataBytes))
	}
	required := map[corev1.SecretType]string{
		corev1.SecretTypeDockerConfigJson: corev1.DockerConfigJsonKey,
		corev1.SecretTypeDockercfg:        corev1.DockerConfigKey,
	}
	if key, ok := required[s.Type]; ok {
		if _, present := s.Data[key]; !present {
			errs = append(errs, field.Required(data.Key(key), fmt.Sprintf("a %s secret needs it", s.Type)))
		}
	}
	if s.Type == corev1.SecretTypeTLS { // a certificate and its key (DomainMapping spec.tls)
		for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if _, present := s.Data[key]; !present {
				errs = append(errs, field.Required(data.Key(key), fmt.Sprintf("a %s secret needs it", s.Type)))
			}
		}
	}
	return errs
}

// validateConfigMap checks a ConfigMap as the API server does: keys valid and not in both
// data and binaryData, total size within 1 MiB.
func validateConfigMap(c *corev1.ConfigMap) field.ErrorList {
	errs := validateMeta(c.Name, c.Namespace)
	total := 0
	for k, v := range c.Data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
		total += len(v)
	}
	for k, v := range c.BinaryData {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, msg))
		}
		if _, dup := c.Data[k]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, "duplicate of a key in data"))
		}
		total += len(v)
	}
	if total > maxDataBytes {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxDataBytes))
	}
	return errs
}
