package reconciler

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/api"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// TestSettingsConfigMapCheck: the local API refuses a config-features (and the others of
// config.Names) in the system namespace that does not parse, naming the key; one written
// anywhere else is stored with a warning that nothing reads it there.
func TestSettingsConfigMapCheck(t *testing.T) {
	load := func(data map[string]map[string]string) (Settings, error) {
		adm := config.Default()
		for name, d := range data {
			if err := adm.Apply(name, d); err != nil {
				return Settings{}, err
			}
		}
		return Settings{Admission: adm}, nil
	}
	check := SettingsConfigMapCheck("knative-serving", load)
	cm := func(ns, name string, data map[string]string) *api.ConfigMap {
		return &api.ConfigMap{ConfigMap: corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}}
	}
	for _, tc := range []struct {
		name string
		cm   *api.ConfigMap
		want string // "" no diagnostic
		warn bool
	}{
		{"valid", cm("knative-serving", "config-features", map[string]string{"tag-header-based-routing": "Enabled"}), "", false},
		{"bad flag", cm("knative-serving", "config-features", map[string]string{"tag-header-based-routing": "sometimes"}), "data[tag-header-based-routing]", false},
		{"bad duration", cm("knative-serving", "config-autoscaler", map[string]string{"stable-window": "forever"}), "data[stable-window]", false},
		{"another namespace", cm("default", "config-features", map[string]string{"tag-header-based-routing": "sometimes"}), "metadata.namespace", true},
		{"another ConfigMap", cm("knative-serving", "app-settings", map[string]string{"x": "y"}), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := check(tc.cm)
			if tc.want == "" {
				if got != nil {
					t.Fatalf("got %v, want no diagnostic", got)
				}
				return
			}
			errs, warns := got.Filter(fielderr.ErrorLevel), got.Filter(fielderr.WarningLevel)
			if tc.warn && (errs != nil || warns == nil || !strings.Contains(warns.Error(), tc.want)) {
				t.Fatalf("got errors %v, warnings %v; want a warning about %s", errs, warns, tc.want)
			}
			if !tc.warn && (errs == nil || !strings.Contains(errs.Error(), tc.want)) {
				t.Fatalf("got %v; want an error at %s", got, tc.want)
			}
		})
	}
}
