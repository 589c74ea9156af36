package transformers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// instRow is what a person reads off one line of the report.
type instRow struct {
	ID, Owner, Verdict, Roll, Rule string
}

const instCluster = `apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {name: c1, namespace: ns}
spec:
  controlPlaneRef: {apiGroup: controlplane.cluster.x-k8s.io, kind: KubeadmControlPlane, name: c1-cp}
`

func instMachine(name, extraMeta, spec string) string {
	return fmt.Sprintf(`apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachine
metadata:
  name: %s
  namespace: ns
  labels:
    cluster.x-k8s.io/cluster-name: c1
%s
spec:
  instanceType: m7i.large
%s
`, name, extraMeta, spec)
}

func instOf(id, tokens string, tags ...string) EC2Instance {
	inst := EC2Instance{InstanceID: id, State: InstanceRunning, Tags: map[string]string{}, Source: Location{File: "instances.json", Line: 1}}
	if tokens != "" {
		inst.MetadataOptions = &EC2MetadataOptions{HTTPTokens: HTTPTokensState(tokens), HTTPEndpoint: InstanceMetadataStateEnabled}
	}
	for i := 0; i+1 < len(tags); i += 2 {
		inst.Tags[tags[i]] = tags[i+1]
	}
	return inst
}

func readObjects(t *testing.T, docs ...string) []*yaml.RNode {
	t.Helper()
	nodes, err := (&kio.ByteReader{Reader: strings.NewReader(strings.Join(docs, "---\n")), DisableUnwrapping: true,
		SetAnnotations: map[string]string{kioutil.PathAnnotation: "objects.yaml"}}).Read()
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func rows(rep *InstancesReport) (owned, unowned []instRow) {
	conv := func(fs []InstanceFinding) []instRow {
		var out []instRow
		for _, f := range fs {
			r := instRow{ID: f.InstanceID, Verdict: string(f.Verdict), Rule: f.Rule}
			if f.Owner != nil {
				r.Owner = f.Owner.String()
			}
			if f.Roll != nil {
				r.Roll = f.Roll.String()
			}
			out = append(out, r)
		}
		return out
	}
	return conv(rep.Owned), conv(rep.Unowned)
}

const (
	required = "  instanceMetadataOptions: {httpTokens: required, httpPutResponseHopLimit: 2}"
	optional = "  instanceMetadataOptions: {httpTokens: optional, httpPutResponseHopLimit: 1}"
	cTag     = tagClusterPrefix + "c1"
)

func TestInstances(t *testing.T) {
	pool := `apiVersion: cluster.x-k8s.io/v1beta2
kind: MachinePool
metadata: {name: p1, namespace: ns}
spec:
  clusterName: c1
  template:
    spec:
      clusterName: c1
      infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: AWSMachinePool, name: p1}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata: {name: p1, namespace: ns, labels: {cluster.x-k8s.io/cluster-name: c1}}
spec:
  awsLaunchTemplate:
    instanceMetadataOptions: {httpTokens: required}
status:
  launchTemplateID: lt-1
`
	eks := `apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {name: e1, namespace: ns}
spec:
  controlPlaneRef: {apiGroup: controlplane.cluster.x-k8s.io, kind: AWSManagedControlPlane, name: e1-cp}
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: AWSManagedControlPlane
metadata: {name: e1-cp, namespace: ns}
spec: {eksClusterName: eks-one}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: mp1, namespace: ns, labels: {cluster.x-k8s.io/cluster-name: e1}}
spec: {eksNodegroupName: ng-one}
`
	allowRule := `apiVersion: fn.capa-imds.dev/v1alpha1
kind: IMDSConfig
metadata: {name: imds}
spec:
  rules:
  - name: legacy
    match: {names: ["legacy-*"]}
    allowOptional: true
    instanceMetadataOptions: {httpTokens: optional}
`
	mdLabels := "    cluster.x-k8s.io/deployment-name: md-0"
	cases := []struct {
		name             string
		objects          []string
		instances        []EC2Instance
		owned, unowned   []instRow
		exit             int
		findingSubstring string
	}{{
		name:      "spec.instanceID, spec required, instance optional: CAPA's next reconcile fixes it",
		objects:   []string{instCluster, instMachine("m1", "", "  instanceID: i-1\n"+required)},
		instances: []EC2Instance{instOf("i-1", "optional")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/m1", Verdict: "fixed-by-capa"}},
	}, {
		name:      "spec.providerID, spec optional: roll the MachineDeployment its labels name",
		objects:   []string{instCluster, instMachine("m1", mdLabels, "  providerID: aws:///eu-west-1a/i-1\n"+optional)},
		instances: []EC2Instance{instOf("i-1", "optional")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/m1", Verdict: "roll", Roll: "MachineDeployment ns/md-0"}},
		exit:      1,
	}, {
		name:      "no block at all is CAPA's optional/1: roll",
		objects:   []string{instCluster, instMachine("m1", mdLabels, "  instanceID: i-1")},
		instances: []EC2Instance{instOf("i-1", "optional")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/m1", Verdict: "roll", Roll: "MachineDeployment ns/md-0"}},
		exit:      1,
	}, {
		name:      "the instance requires tokens but the spec says optional: CAPA sets it back, roll",
		objects:   []string{instCluster, instMachine("m1", mdLabels, "  instanceID: i-1\n"+optional)},
		instances: []EC2Instance{instOf("i-1", "required")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/m1", Verdict: "roll", Roll: "MachineDeployment ns/md-0"}},
		exit:      1,
	}, {
		name: "control plane machine: roll the control plane of the Cluster's controlPlaneRef kind",
		objects: []string{instCluster, instMachine("cp-1", "    cluster.x-k8s.io/control-plane-name: c1-cp",
			"  instanceID: i-1\n"+optional)},
		instances: []EC2Instance{instOf("i-1", "optional")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/cp-1", Verdict: "roll", Roll: "KubeadmControlPlane ns/c1-cp"}},
		exit:      1,
	}, {
		name:      "no instanceID yet: found by CAPA's tags (Name and the cluster tag)",
		objects:   []string{instCluster, instMachine("m1", "", required)},
		instances: []EC2Instance{instOf("i-1", "optional", tagName, "m1", cTag, "owned")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/m1", Verdict: "fixed-by-capa"}},
	}, {
		name:      "the Name tag alone is not CAPA's claim: unowned",
		objects:   []string{instCluster, instMachine("m1", "", required)},
		instances: []EC2Instance{instOf("i-1", "optional", tagName, "m1")},
		unowned:   []instRow{{ID: "i-1", Verdict: "imdsv1"}},
	}, {
		name:      "a paused Cluster: CAPA would fix it, but does not reconcile",
		objects:   []string{strings.Replace(instCluster, "spec:\n", "spec:\n  paused: true\n", 1), instMachine("m1", "", "  instanceID: i-1\n"+required)},
		instances: []EC2Instance{instOf("i-1", "optional")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/m1", Verdict: "paused"}},
		exit:      1,
	}, {
		name:      "the metadata service off is stricter than tokens: ok",
		objects:   []string{instCluster, instMachine("m1", "", "  instanceID: i-1\n"+required)},
		instances: []EC2Instance{{InstanceID: "i-1", State: InstanceRunning, MetadataOptions: &EC2MetadataOptions{HTTPTokens: HTTPTokensStateRequired, HTTPEndpoint: InstanceMetadataStateDisabled}}},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/m1", Verdict: "ok"}},
	}, {
		name:    "a pool instance from the launch template: the old version needs a refresh, the new one is ok",
		objects: []string{instCluster, pool},
		instances: []EC2Instance{instOf("i-1", "optional", tagLaunchTemplate, "lt-1", tagLTVersion, "1"),
			instOf("i-2", "required", tagLaunchTemplate, "lt-1", tagLTVersion, "2")},
		owned: []instRow{{ID: "i-1", Owner: "AWSMachinePool ns/p1", Verdict: "refresh"}, {ID: "i-2", Owner: "AWSMachinePool ns/p1", Verdict: "ok"}},
		exit:  1,
	}, {
		name:      "an AWSMachine mirroring a pool instance: the pool owns the instance",
		objects:   []string{instCluster, pool, instMachine("p1-abc", "  ownerReferences:\n  - {apiVersion: infrastructure.cluster.x-k8s.io/v1beta2, kind: AWSMachinePool, name: p1, uid: u}", "  instanceID: i-1\n"+optional)},
		instances: []EC2Instance{instOf("i-1", "optional")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachinePool ns/p1", Verdict: "refresh"}},
		exit:      1,
	}, {
		name:      "an EKS node group by eks:cluster-name and eks:nodegroup-name, on EKS's own launch template",
		objects:   []string{eks},
		instances: []EC2Instance{instOf("i-1", "optional", tagEKSCluster, "eks-one", tagEKSNodegroup, "ng-one")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSManagedMachinePool ns/mp1", Verdict: "refresh"}},
		exit:      1,
	}, {
		name:    "another EKS cluster's node group, a bastion, a stranger: listed apart, never counted",
		objects: []string{eks},
		instances: []EC2Instance{instOf("i-1", "optional", tagEKSCluster, "eks-two", tagEKSNodegroup, "ng-one"),
			instOf("i-2", "optional", cTag, "owned", tagRole, "bastion"), instOf("i-3", "required")},
		unowned: []instRow{{ID: "i-1", Verdict: "imdsv1"}, {ID: "i-2", Verdict: "imdsv1"}, {ID: "i-3", Verdict: "ok"}},
	}, {
		name:      "a terminated instance is not counted",
		objects:   []string{instCluster, instMachine("m1", mdLabels, "  instanceID: i-1\n"+optional)},
		instances: []EC2Instance{{InstanceID: "i-1", State: InstanceTerminated}},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/m1", Verdict: "terminated"}},
	}, {
		name:      "an allowOptional rule of the IMDSConfig given: allowed, named, not counted",
		objects:   []string{allowRule, instCluster, instMachine("legacy-1", mdLabels, "  instanceID: i-1\n"+optional), instMachine("m2", mdLabels, "  instanceID: i-2\n"+optional)},
		instances: []EC2Instance{instOf("i-1", "optional"), instOf("i-2", "optional")},
		owned: []instRow{{ID: "i-2", Owner: "AWSMachine ns/m2", Verdict: "roll", Roll: "MachineDeployment ns/md-0"},
			{ID: "i-1", Owner: "AWSMachine ns/legacy-1", Verdict: "allowed", Roll: "MachineDeployment ns/md-0", Rule: "legacy"}},
		exit: 1,
	}, {
		name:      "only what a rule allows keeps IMDSv1: exit 0",
		objects:   []string{allowRule, instCluster, instMachine("legacy-1", mdLabels, "  instanceID: i-1\n"+optional)},
		instances: []EC2Instance{instOf("i-1", "optional")},
		owned:     []instRow{{ID: "i-1", Owner: "AWSMachine ns/legacy-1", Verdict: "allowed", Roll: "MachineDeployment ns/md-0", Rule: "legacy"}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, errs := Instances(InstancesInput{Objects: readObjects(t, tc.objects...), Instances: tc.instances})
			if len(errs) > 0 {
				t.Fatalf("errors: %v", errs)
			}
			owned, unowned := rows(rep)
			if diff := cmp.Diff(tc.owned, owned); diff != "" {
				t.Errorf("owned (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.unowned, unowned); diff != "" {
				t.Errorf("unowned (-want +got):\n%s", diff)
			}
			if got := rep.ExitCode(); got != tc.exit {
				t.Errorf("exit %d, want %d (findings: %v)", got, tc.exit, rep.Findings)
			}
		})
	}
}

// TestInstancesPreflight: under an account that enforces IMDSv2, everything that asks for
// optional is an error naming its field, the config and its rules included.
func TestInstancesPreflight(t *testing.T) {
	enforced := &AccountDefaults{HTTPTokensEnforced: TokensEnforced, Source: Location{File: "defaults.json"}}
	cfg := `apiVersion: fn.capa-imds.dev/v1alpha1
kind: IMDSConfig
metadata: {name: imds}
spec:
  rules:
  - name: pods
    match: {names: ["pods-*"]}
    instanceMetadataOptions: {httpPutResponseHopLimit: 1}
  - name: legacy
    match: {names: ["legacy-*"]}
    allowOptional: true
    instanceMetadataOptions: {httpTokens: optional}
`
	managed := `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSManagedMachinePool
metadata: {name: mp1, namespace: ns}
spec: {}
`
	noOpts := `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachinePool
metadata: {name: p1, namespace: ns}
spec:
  awsLaunchTemplate: {instanceType: m7i.large}
`
	objects := readObjects(t, cfg, instCluster, instMachine("m1", "", "  instanceID: i-1\n"+optional),
		instMachine("m2", "", "  instanceID: i-2\n"+required), managed, noOpts)
	type row struct{ Severity, Resource, Field string }
	got := func(defaults *AccountDefaults) []row {
		rep, errs := Instances(InstancesInput{Objects: objects, Instances: []EC2Instance{instOf("i-1", "required"), instOf("i-2", "required")}, Defaults: defaults})
		if len(errs) > 0 {
			t.Fatalf("errors: %v", errs)
		}
		var out []row
		for _, f := range rep.Findings {
			r := row{Severity: string(f.Severity)}
			if f.ResourceRef != nil {
				r.Resource = f.ResourceRef.Kind + "/" + f.ResourceRef.Name
			}
			if f.Field != nil {
				r.Field = f.Field.Path
			}
			out = append(out, r)
		}
		return out
	}
	want := []row{
		{"error", "IMDSConfig/imds", "spec.rules[1].instanceMetadataOptions.httpTokens"},
		{"error", "AWSMachine/m1", "spec.instanceMetadataOptions"},
		{"warning", "AWSManagedMachinePool/mp1", "spec"},
		{"info", "AWSMachinePool/p1", "spec.awsLaunchTemplate.instanceMetadataOptions"},
	}
	if diff := cmp.Diff(want, got(enforced)); diff != "" {
		t.Errorf("enforced (-want +got):\n%s", diff)
	}
	// Without enforcement nothing is refused; the pool without options still says whose
	// defaults apply.
	if diff := cmp.Diff([]row{{"info", "AWSMachinePool/p1", "spec.awsLaunchTemplate.instanceMetadataOptions"}}, got(nil)); diff != "" {
		t.Errorf("no defaults (-want +got):\n%s", diff)
	}
}

func TestInstancesRefusesWhatItCannotRead(t *testing.T) {
	cfg := "apiVersion: fn.capa-imds.dev/v1alpha1\nkind: IMDSConfig\nmetadata: {name: a}\n"
	for _, tc := range []struct {
		name      string
		objects   []string
		instances []EC2Instance
		want      string
	}{
		{"an instance listed twice", []string{instCluster}, []EC2Instance{instOf("i-1", "required"), instOf("i-1", "required")}, "instance i-1 is listed twice"},
		{"two IMDSConfigs", []string{cfg, strings.Replace(cfg, "name: a", "name: b", 1)}, nil, "a second IMDSConfig"},
		{"an invalid IMDSConfig", []string{cfg + "spec: {instanceMetadataOptions: {httpTokens: sometimes}}\n"}, nil, "httpTokens"},
		{"an object defined twice", []string{instMachine("m1", "", ""), instMachine("m1", "", "")}, nil, "AWSMachine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, errs := Instances(InstancesInput{Objects: readObjects(t, tc.objects...), Instances: tc.instances})
			if rep != nil || len(errs) == 0 {
				t.Fatalf("no error; report %+v", rep)
			}
			if !strings.Contains(errs.String(), tc.want) {
				t.Errorf("errors %q, want one about %q", errs.String(), tc.want)
			}
		})
	}
}
