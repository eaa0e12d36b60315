package containerenv

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// Expansion follows Kubernetes' rules for $(VAR) in env values, command and args
// (k8s.io/kubernetes third_party/forked/golang/expansion: unknown references stay, $$ is $).
func TestExpand(t *testing.T) {
	lookup := Lookup(map[string]string{"PORT": "1234", "A": "x"})
	for _, tc := range []struct{ in, want string }{
		{"--port=$(PORT)", "--port=1234"},
		{"$(A)$(A)", "xx"},
		{"$(UNKNOWN)", "$(UNKNOWN)"},
		{"$$(PORT)", "$(PORT)"},
		{"cost $5", "cost $5"},
		{"$(PORT", "$(PORT"},
		{"trailing $", "trailing $"},
		{"no references", "no references"},
		{"$$$$ and $(A) $$x", "$$ and x $x"},
		{"", ""},
	} {
		if got := Expand(tc.in, lookup); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReserved(t *testing.T) {
	rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: "s-00001", Labels: map[string]string{
		servingv1.ServiceLabel: "s", servingv1.ConfigurationLabel: "c"}}}
	vars := ReservedOf(rev).Vars(8080)
	want := map[string]string{"PORT": "8080", "K_SERVICE": "s", "K_CONFIGURATION": "c", "K_REVISION": "s-00001"}
	if len(vars) != len(want) {
		t.Errorf("vars = %v, want %v", vars, want)
	}
	for _, n := range Names() {
		if vars[n] != want[n] || !IsReserved(n) {
			t.Errorf("%s = %q (reserved %v), want %q", n, vars[n], IsReserved(n), want[n])
		}
	}
	for _, n := range []string{"HOST", "PATH", "port", ""} {
		if IsReserved(n) {
			t.Errorf("IsReserved(%q) = true", n)
		}
	}
}
