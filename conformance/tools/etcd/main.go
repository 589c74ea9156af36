// Command etcd is etcd at the version pinned in go.mod, built from the published module
// so the conformance tests need no downloaded release binary (envtest finds it through
// KUBEBUILDER_ASSETS).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
