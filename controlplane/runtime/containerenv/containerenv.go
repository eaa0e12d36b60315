// Package containerenv is what both local runtimes (processes and runc containers) put in a
// Knative user container's environment beyond its own env: the variables Knative sets itself
// (PORT, K_SERVICE, K_CONFIGURATION, K_REVISION, which always win over the container's env),
// and Kubernetes' $(VAR) expansion of env values, command and args.
package containerenv

import (
	"strconv"
	"strings"

	servingv1 "github.com/skiff-dev/skiff/api/serving/v1"
)

// Names are the variables Knative sets on the user container, in the order runtimes append
// them.
func Names() []string {
	return []string{"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
}

// IsReserved reports whether Knative sets name on the user container itself.
func IsReserved(name string) bool {
	switch name {
	case "PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION":
		return true
	}
	return false
}

// Reserved is what Knative tells a revision's container about itself.
type Reserved struct {
	Service, Configuration, Revision string
}

// ReservedOf is rev's Reserved: its name and its Service and Configuration labels.
func ReservedOf(rev *servingv1.Revision) Reserved {
	return Reserved{
		Service:       rev.Labels[servingv1.ServiceLabel],
		Configuration: rev.Labels[servingv1.ConfigurationLabel],
		Revision:      rev.Name,
	}
}

// Vars are the reserved variables' values for an instance listening on port, by name.
func (r Reserved) Vars(port int) map[string]string {
	return map[string]string{
		"PORT":            strconv.Itoa(port),
		"K_SERVICE":       r.Service,
		"K_CONFIGURATION": r.Configuration,
		"K_REVISION":      r.Revision,
	}
}

// Lookup is a lookup function over vars, for Expand.
func Lookup(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// Expand replaces $(NAME) with NAME's value when lookup knows it, leaves unknown references as
// they are, and turns $$ into $, as Kubernetes does for env values, command and args.
func Expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			switch s[i+1] {
			case '$':
				b.WriteByte('$')
				i++
				continue
			case '(':
				if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
					name := s[i+2 : i+2+end]
					if v, ok := lookup(name); ok {
						b.WriteString(v)
					} else {
						b.WriteString("$(" + name + ")")
					}
					i += 2 + end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
