package v1

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSecretDefaultsAndValidation(t *testing.T) {
	s := Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls"}, Type: SecretTypeTLS, StringData: map[string]string{TLSCertKey: "cert"}}
	s.SetDefaults()
	if string(s.Data[TLSCertKey]) != "cert" || s.StringData != nil || s.Namespace != "default" {
		t.Errorf("SetDefaults: data %v stringData %v namespace %q; want stringData merged into data", s.Data, s.StringData, s.Namespace)
	}
	errs := s.Validate().ToAggregate()
	if errs == nil || !strings.Contains(errs.Error(), "data[tls.key]") {
		t.Errorf("Validate() = %v, want data[tls.key] required", errs)
	}
	s.Data[TLSKeyKey] = []byte("key")
	if errs := s.Validate(); len(errs) > 0 {
		t.Errorf("Validate() = %v, want none", errs)
	}
	bad := ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"}, Data: map[string]string{"a b": "x"}}
	if errs := bad.Validate().ToAggregate(); errs == nil || !strings.Contains(errs.Error(), "data[a b]") {
		t.Errorf("ConfigMap with key %q: Validate() = %v, want the key named", "a b", errs)
	}
}
