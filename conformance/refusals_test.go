package conformance

import (
	"context"
	"strings"
	"testing"
)

// The checks must be able to fail: each of these objects is refused, in process and by the
// real API server alike (Cluster API's webhooks run on the server only), with CAPA's,
// Cluster API's or apiextensions' own message.
var refusals = []struct {
	name, yaml, want string
	serverOnly       bool
	serverWant       string // when server-side apply words it differently
}{
	{"CEL rule (x-kubernetes-validations)", `
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata: {name: cel, namespace: default}
spec:
  template:
    spec:
      instanceType: t3.large
      capacityReservationId: cr-0123456789abcdef0
      marketType: Spot
`, "capacityReservationId may not be set when marketType is Spot", false, ""},
	{"unknown field (CAPA's documented metadataOptions never existed)", `
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: unknown, namespace: default}
spec:
  awsLaunchTemplate:
    metadataOptions: {httpTokens: required}
`, `unknown field "spec.awsLaunchTemplate.metadataOptions"`, false,
		// Server-side apply finds it building the typed patch, before strict decoding.
		".spec.awsLaunchTemplate.metadataOptions: field not declared in schema"},
	{"enum", `
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata: {name: enum, namespace: default}
spec:
  instanceType: t3.large
  instanceMetadataOptions: {httpTokens: maybe}
`, `Unsupported value: "maybe"`, false, ""},
	{"maximum", `
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata: {name: hops, namespace: default}
spec:
  instanceType: t3.large
  instanceMetadataOptions: {httpPutResponseHopLimit: 65}
`, "should be less than or equal to 64", false, ""},
	{"CAPA's AWSManagedMachinePool webhook", `
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: webhook, namespace: default}
spec:
  amiType: CUSTOM
  instanceType: t3.large
  awsLaunchTemplate: {instanceType: t3.large}
`, "InstanceType cannot be specified when LaunchTemplate is specified", false, ""},
	{"Cluster API's MachinePool webhook", `
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata: {name: no-bootstrap, namespace: default}
spec:
  clusterName: c1
  template:
    spec:
      clusterName: c1
      bootstrap: {}
      infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSManagedMachinePool, name: p}
`, "expected either spec.template.spec.bootstrap.dataSecretName or spec.template.spec.bootstrap.configRef to be populated", true, ""},
	{"Secret data is base64", `
apiVersion: v1
kind: Secret
metadata: {name: bad-data, namespace: default}
data: {value: "not base64!"}
`, "illegal base64 data", false, ""},
}

func TestRefusals(t *testing.T) {
	p := newInProcess(t)
	ctx := context.Background()
	var a *APIServer
	if assets, _ := AssetsDir(root); assets != "" {
		a = apiServer(t)
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			objs := objects(t, c.name, c.yaml)
			if len(objs) != 1 {
				t.Fatalf("%d objects", len(objs))
			}
			if !c.serverOnly {
				_, findings, checked := p.Create(ctx, "", objs[0])
				if !checked || !strings.Contains(strings.Join(findings, "\n"), c.want) {
					t.Errorf("in process: want a finding with %q, got %q (checked %v)", c.want, findings, checked)
				}
			}
			if a == nil {
				_, why := AssetsDir(root)
				skipOrFail(t, "no API server: "+why)
			}
			u, _ := prepare(t, a, "", objs[0])
			want := c.want
			if c.serverWant != "" {
				want = c.serverWant
			}
			_, err := a.Apply(ctx, u.Object, true)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("API server: want an error with %q, got %v", want, err)
			}
		})
	}
}
