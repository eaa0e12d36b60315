package v1

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/skiff-dev/skiff/api/admission"
	"github.com/skiff-dev/skiff/api/config"
	"github.com/skiff-dev/skiff/api/fielderr"
)

// TestKnativeBrokerDefaults checks Skiff's Broker defaulting and validation against what
// Knative Eventing's own code answered (testdata/knative/broker-defaults.yaml, see its
// header): the class annotation, spec.config and spec.delivery config-br-defaults gives, for
// the inputs of Knative's TestBrokerSetDefaults and every namespace, class and config kind
// over the same settings, and over the settings Knative ships.
func TestKnativeBrokerDefaults(t *testing.T) {
	settings, err := os.ReadFile("testdata/knative/broker-defaults-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("testdata/knative/broker-defaults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		ID       string          `json:"id"`
		Source   string          `json:"source"`
		Settings string          `json:"settings"`
		Object   json.RawMessage `json:"object"`
		Want     struct {
			Annotations map[string]string `json:"annotations"`
			Errors      []string          `json:"errors"`
			Spec        json.RawMessage   `json:"spec"`
		} `json:"want"`
	}
	if err := yaml.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 400 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Settings+"/"+c.ID, func(t *testing.T) {
			cfg := config.Default()
			if c.Settings == "test" {
				if err := cfg.Apply(config.BrokersConfigName, map[string]string{"default-br-config": string(settings)}); err != nil {
					t.Fatal(err)
				}
			}
			var b Broker
			if err := json.Unmarshal(c.Object, &b); err != nil {
				t.Fatal(err)
			}
			ctx := admission.WithinCreate(config.ToContext(context.Background(), cfg))
			b.SetDefaults(ctx)
			var got []string
			for _, e := range b.Validate(ctx).Filter(fielderr.ErrorLevel).Flatten() {
				got = append(got, e.Message+": "+strings.Join(e.Paths, ", "))
			}
			slices.Sort(got)
			slices.Sort(c.Want.Errors)
			if !slices.Equal(got, c.Want.Errors) {
				t.Errorf("%s: errors %q, Knative %q", c.Source, got, c.Want.Errors)
			}
			if !maps(b.Annotations, c.Want.Annotations) {
				t.Errorf("%s: annotations %v, Knative %v", c.Source, b.Annotations, c.Want.Annotations)
			}
			spec, _ := json.Marshal(b.Spec)
			if !sameJSON(spec, c.Want.Spec) {
				t.Errorf("%s: spec\n%s\nKnative\n%s", c.Source, spec, c.Want.Spec)
			}
		})
	}
}

func maps(a, b map[string]string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if len(b) == 0 || string(b) == "null" {
		b = []byte("{}")
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
