package fielderr

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestError ports knative.dev/pkg apis/field_error_test.go TestFieldError and
// TestViaIndexOrKeyFieldError: how paths are built, merged, sorted and printed.
func TestError(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *Error
		want string
	}{
		{"simple", &Error{Message: "hear me roar", Paths: []string{"foo.bar"}}, "hear me roar: foo.bar"},
		{"via", Invalid("blah", "foo").ViaField("bar").ViaField("ugh", "baz").ViaField("hoola"), "invalid value: blah: hoola.ugh.baz.bar.foo"},
		{"current", &Error{Message: "invalid field(s)", Paths: []string{Current}}, "invalid field(s): "},
		{"missing", Missing("foo", "bar").ViaField("baz"), "missing field(s): baz.bar, baz.foo"},
		{"disallowed", Disallowed("name").ViaField("baz"), "must not set the field(s): baz.name"},
		{"details", Invalid("foo", "bar", "qux").ViaField("baz"), "invalid value: foo: baz.bar\nqux"},
		{"neither", MissingOneOf("foo", "bar").ViaField("baz"), "expected exactly one, got neither: baz.bar, baz.foo"},
		{"both", MultipleOneOf("foo", "bar").ViaField("baz"), "expected exactly one, got both: baz.bar, baz.foo"},
		{"key name", InvalidKeyName("b@r", "name").ViaFieldIndex("foo", 0).ViaField("baz"), `invalid key name "b@r": baz.foo[0].name`},
		{"bounds", OutOfBounds(-1, 0, 5, "timeout").ViaField("spec"), "expected 0 <= -1 <= 5: spec.timeout"},
		{"index", Missing("name").ViaIndex(1).ViaIndex(0).ViaField("foo"), "missing field(s): foo[0][1].name"},
		{"key", Missing("name").ViaFieldKey("bar", "x").ViaField("foo"), "missing field(s): foo.bar[x].name"},
		{"array value", InvalidArrayValue("x", "tag", 0).ViaField("traffic"), "invalid value: x: traffic.tag[0]"},
		{"merged", Missing("a").Also(Missing("b")).Also(Generic("z first", "q")).Also(Missing("a")), "missing field(s): a, b\nz first: q"},
		{"nil", nil, ""},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	e := Missing("a").Also(Generic("careful", "b").At(WarningLevel))
	if got := e.Filter(ErrorLevel).Error(); got != "missing field(s): a" {
		t.Errorf("errors: %q", got)
	}
	if got := e.Filter(WarningLevel).Error(); got != "careful: b" {
		t.Errorf("warnings: %q", got)
	}
	if Generic("w", "x").At(WarningLevel).Filter(ErrorLevel) != nil {
		t.Error("no errors should filter to nil")
	}
}

// TestCheckDisallowed is Knative's field masks: set fields not allowed are named by their
// JSON name; an embedded struct is "" (as Knative reports Probe's handler).
func TestCheckDisallowed(t *testing.T) {
	yes := true
	c := corev1.Container{Name: "a", Stdin: true, TTY: true, Lifecycle: &corev1.Lifecycle{}, Env: []corev1.EnvVar{}}
	if got := CheckDisallowed(c, "name").Error(); got != "must not set the field(s): env, lifecycle, stdin, tty" {
		t.Errorf("%q", got)
	}
	p := corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{}}, PeriodSeconds: 1}
	if got := CheckDisallowed(&p).ViaField("livenessProbe").Error(); got != "must not set the field(s): livenessProbe, livenessProbe.periodSeconds" {
		t.Errorf("%q", got)
	}
	if err := CheckDisallowed(corev1.PodSpec{AutomountServiceAccountToken: &yes}, "automountServiceAccountToken"); err != nil {
		t.Errorf("allowed field: %v", err)
	}
}
