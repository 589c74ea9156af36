package transformers

import (
	"fmt"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Above two overlays of one base, every object has two copies under one previous name and
// both Clusters still name the base's control plane: each means the copy renamed like it.
func TestResolveTwoRenamedCopies(t *testing.T) {
	copyOf := func(kind, apiVersion, name, ns, prefix, spec string) string {
		return fmt.Sprintf(`apiVersion: %s
kind: %s
metadata:
  name: %s%s
  namespace: %s
  annotations:
    internal.config.kubernetes.io/prefixes: %q
    internal.config.kubernetes.io/previousNames: %s,%s
    internal.config.kubernetes.io/previousKinds: %s,%s
    internal.config.kubernetes.io/previousNamespaces: default,%s
%s`, apiVersion, kind, prefix, name, ns, prefix, name, name, kind, kind, ns, spec)
	}
	pair := func(ns, prefix string) []string {
		return []string{
			copyOf("Cluster", "cluster.x-k8s.io/v1beta1", "c", ns, prefix,
				"spec:\n  controlPlaneRef:\n    apiVersion: controlplane.cluster.x-k8s.io/v1beta2\n    kind: AWSManagedControlPlane\n    name: cp\n"),
			copyOf("AWSManagedControlPlane", "controlplane.cluster.x-k8s.io/v1beta2", "cp", ns, prefix, "spec: {}\n"),
		}
	}
	for _, c := range []struct {
		name string
		a, b [2]string // namespace, prefix of each copy
	}{
		{"two prefixes in one namespace", [2]string{"team-a", "a-"}, [2]string{"team-a", "b-"}},
		{"one prefix in two namespaces", [2]string{"team-a", "prod-"}, [2]string{"team-b", "prod-"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var items []*yaml.RNode
			for _, s := range append(pair(c.a[0], c.a[1]), pair(c.b[0], c.b[1])...) {
				items = append(items, yaml.MustParse(s))
			}
			r, _, results, _ := process(DefaultConfig(), items)
			for _, res := range results {
				if res.Severity == Error {
					t.Errorf("error: %s", res.Message)
				}
			}
			for _, o := range r.objects {
				if o.kind != "Cluster" {
					continue
				}
				k, _ := refKey(lookup(o.node.YNode(), "spec", "controlPlaneRef"), o.ns())
				cp, _, ambiguous := r.resolve(k, o)
				prefix := o.name[:len(o.name)-len("c")]
				if ambiguous || cp == nil || cp.name != prefix+"cp" || cp.ns() != o.ns() {
					t.Errorf("%s resolves its controlPlaneRef to %v (ambiguous %v), want %s/%scp", o, cp, ambiguous, o.ns(), prefix)
				}
			}
		})
	}
}
