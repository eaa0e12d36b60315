// Command etcd is etcd's own server entry point (etcdmain.Main, the same call etcd's main.go makes),
// built from the module proxy so the Kubernetes integration tests need no downloaded binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
