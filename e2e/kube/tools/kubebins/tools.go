//go:build tools

// Package kubebins pins the Kubernetes commands `make kube-bins` builds: the API server and
// controller manager for the cluster tests, kubectl for the tests of `skiff up`'s API.
package kubebins

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
