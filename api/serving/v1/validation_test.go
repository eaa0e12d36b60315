package v1

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func decodeService(t *testing.T, doc string) *Service {
	t.Helper()
	var s Service
	if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
		t.Fatalf("decode: %v", err)
	}
	s.SetDefaults()
	return &s
}

const base = `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: ko://example.com/app
`

func TestServiceDefaults(t *testing.T) {
	s := decodeService(t, base)
	if errs := s.Validate(); len(errs) != 0 {
		t.Fatalf("valid service refused: %v", errs.ToAggregate())
	}
	c := s.Spec.Template.Spec.Containers[0]
	if c.Name != "user-container" {
		t.Errorf("container name %q, want user-container", c.Name)
	}
	if s.Namespace != "default" || *s.Spec.Template.Spec.TimeoutSeconds != 300 || *s.Spec.Template.Spec.ContainerConcurrency != 0 {
		t.Errorf("defaults: ns=%q timeout=%d cc=%d", s.Namespace, *s.Spec.Template.Spec.TimeoutSeconds, *s.Spec.Template.Spec.ContainerConcurrency)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.TCPSocket == nil || c.ReadinessProbe.TCPSocket.Port.IntValue() != 8080 {
		t.Errorf("readiness probe default: %+v", c.ReadinessProbe)
	}
	if len(s.Spec.Traffic) != 1 || !*s.Spec.Traffic[0].LatestRevision || *s.Spec.Traffic[0].Percent != 100 {
		t.Errorf("traffic default: %+v", s.Spec.Traffic)
	}
}

func TestServiceValidation(t *testing.T) {
	cases := []struct {
		name, extra, wantField, wantReason string
	}{
		{"percent sum", `  traffic:
    - revisionName: hello-00001
      percent: 40
    - latestRevision: true
      percent: 50
`, "spec.traffic", "sum to 90, want 100"},
		{"duplicate tag", `  traffic:
    - tag: a
      revisionName: hello-00001
      percent: 50
    - tag: a
      latestRevision: true
      percent: 50
`, "spec.traffic[1].tag", "Duplicate value"},
		{"latest and name", `  traffic:
    - revisionName: hello-00001
      latestRevision: true
      percent: 100
`, "spec.traffic[0].latestRevision", "may not be true when revisionName is set"},
		{"percent range", `  traffic:
    - latestRevision: true
      percent: 120
`, "spec.traffic[0].percent", "between 0 and 100"},
		{"configurationName on service", `  traffic:
    - configurationName: other
      latestRevision: true
      percent: 100
`, "spec.traffic[0].configurationName", "Forbidden"},
		{"bad tag", `  traffic:
    - tag: Bad_Tag
      latestRevision: true
      percent: 100
`, "spec.traffic[0].tag", "Invalid value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := decodeService(t, base+tc.extra).Validate()
			msg := errs.ToAggregate()
			if msg == nil || !strings.Contains(msg.Error(), tc.wantField) || !strings.Contains(msg.Error(), tc.wantReason) {
				t.Fatalf("got %v, want an error at %s saying %q", msg, tc.wantField, tc.wantReason)
			}
		})
	}
}

func TestTemplateValidation(t *testing.T) {
	cases := []struct {
		name, doc, wantField string
	}{
		{"bad name", strings.Replace(base, "name: hello", "name: Hello_World", 1), "metadata.name"},
		{"no image", strings.Replace(base, "- image: ko://example.com/app", "- name: app", 1), "spec.template.spec.containers[0].image"},
		{"byo name without prefix", strings.Replace(base, "  template:\n", "  template:\n    metadata:\n      name: other-v1\n", 1), "spec.template.metadata.name"},
		{"timeout too long", strings.Replace(base, "    spec:\n      containers:", "    spec:\n      timeoutSeconds: 601\n      containers:", 1), "spec.template.spec.timeoutSeconds"},
		{"concurrency negative", strings.Replace(base, "    spec:\n      containers:", "    spec:\n      containerConcurrency: -1\n      containers:", 1), "spec.template.spec.containerConcurrency"},
		{"reserved port", base + "          ports:\n            - containerPort: 8012\n", "spec.template.spec.containers[0].ports[0].containerPort"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := decodeService(t, tc.doc).Validate()
			if agg := errs.ToAggregate(); agg == nil || !strings.Contains(agg.Error(), tc.wantField) {
				t.Fatalf("got %v, want an error naming %s", agg, tc.wantField)
			}
		})
	}
}
