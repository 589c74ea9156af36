// Command kube-apiserver is the Kubernetes API server at the version pinned in go.mod,
// built from the published modules so the conformance tests need no downloaded release
// binary (envtest finds it through KUBEBUILDER_ASSETS).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
