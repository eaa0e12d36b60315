//go:build tools

// Package kubebins pins the Kubernetes commands `make kube-bins` builds.
package kubebins

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
