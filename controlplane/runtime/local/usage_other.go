//go:build !linux

package local

import "github.com/skiff-dev/skiff/controlplane/runtime"

// InstanceUsage measures nothing outside Linux (it reads /proc): hpa-class revisions then keep
// their initial scale.
func (r *Runtime) InstanceUsage() map[string]map[string]runtime.InstanceUsage {
	return map[string]map[string]runtime.InstanceUsage{}
}
