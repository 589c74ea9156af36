package transformers_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capa-imds/capa-imds/transformers"
)

const tplTemplate = `apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: AWSMachineTemplate
metadata:
  name: md-0
  namespace: ns
spec:
  template:
    spec:
      instanceType: t3.large
      instanceMetadataOptions:
        httpTokens: optional
`

func tplDeployment(name, annotations string) string {
	return "apiVersion: cluster.x-k8s.io/v1beta1\nkind: MachineDeployment\n" + nsMeta(name, annotations) + `spec:
  clusterName: c1
  template:
    spec:
      clusterName: c1
      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSMachineTemplate
        name: md-0
`
}

func TestRenameOnChange(t *testing.T) {
	rename := "  templates:\n    renameOnChange: true\n"
	skip := "    " + transformers.SkipAnnotation + ": \"true\"\n"
	cases := []struct {
		name     string
		docs     []string
		renamed  bool
		refsWant []string // the infrastructureRef names of md-a and md-b
		results  []moResult
		words    [][]string
	}{
		{
			name:     "renamed, both references follow",
			docs:     []string{tplTemplate, tplDeployment("md-a", ""), tplDeployment("md-b", "")},
			renamed:  true,
			results:  []moResult{{Severity: transformers.Info, Resource: "AWSMachineTemplate ns/md-0", Field: "metadata.name"}},
			words:    [][]string{{"renamed from md-0", "2 reference(s) updated"}},
			refsWant: []string{"renamed", "renamed"},
		},
		{
			// Renaming would leave the skipped MachineDeployment pointing at nothing.
			name:     "a skipped reference keeps the name, with the immutability warning",
			docs:     []string{tplTemplate, tplDeployment("md-a", ""), tplDeployment("md-b", skip)},
			refsWant: []string{"md-0", "md-0"},
			results: []moResult{
				{Severity: transformers.Warning, Resource: "AWSMachineTemplate ns/md-0", Field: "metadata.name"},
			},
			words: [][]string{{"not renamed", "MachineDeployment ns/md-b", "skipped"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, results := transformers.Process(mpConfig(t, rename), moRead(t, mpStream(tc.docs...)))
			var tpl string
			for _, it := range out {
				if it.GetKind() == "AWSMachineTemplate" {
					tpl = it.GetName()
				}
			}
			if got := tpl != "md-0"; got != tc.renamed {
				t.Errorf("template named %q: renamed %v, want %v", tpl, got, tc.renamed)
			}
			for i, md := range []string{"md-a", "md-b"} {
				want := tc.refsWant[i]
				if want == "renamed" {
					want = tpl
				}
				if got := mpField(t, mpFind(out, "MachineDeployment", md), "spec", "template", "spec", "infrastructureRef", "name"); got != want {
					t.Errorf("%s references %q, want %q", md, got, want)
				}
			}
			var rs transformers.Results
			for _, r := range results {
				if r.ResourceRef.Kind == "AWSMachineTemplate" && r.Field != nil && r.Field.Path == "metadata.name" {
					rs = append(rs, r)
				}
			}
			if d := cmp.Diff(tc.results, moResults(rs)); d != "" {
				t.Errorf("results (-want +got):\n%s\n%s", d, results)
			}
			moCheckMessages(t, rs, tc.words)
		})
	}
}

// Cluster API overwrites dataSecretName from the bootstrap config whenever configRef is
// set: a MachinePool with both is a warning when enforcing and a finding in audit mode.
func TestBootstrapOverwriteIsFlagged(t *testing.T) {
	in := `apiVersion: cluster.x-k8s.io/v1beta1
kind: MachinePool
metadata:
  name: mp
  namespace: ns
spec:
  clusterName: c1
  template:
    spec:
      clusterName: c1
      bootstrap:
        configRef:
          apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
          kind: EKSConfig
          name: mp
        dataSecretName: my-data
      infrastructureRef:
        apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
        kind: AWSMachinePool
        name: mp
`
	for _, tc := range []struct {
		mode, annotations string
		want              []moResult
	}{
		{mode: "enforce", want: []moResult{{Severity: transformers.Warning, Resource: "MachinePool ns/mp", Field: "spec.template.spec.bootstrap.dataSecretName"}}},
		{mode: "audit", want: []moResult{{Severity: transformers.Error, Resource: "MachinePool ns/mp", Field: "spec.template.spec.bootstrap.dataSecretName"}}},
		{mode: "audit", annotations: "  annotations:\n    " + transformers.SkipAnnotation + ": \"true\"\n"},
	} {
		t.Run(tc.mode+tc.annotations, func(t *testing.T) {
			doc := strings.Replace(in, "  namespace: ns\n", "  namespace: ns\n"+tc.annotations, 1)
			_, results := transformers.Process(mpConfig(t, "  mode: "+tc.mode+"\n"), moRead(t, doc))
			if d := cmp.Diff(tc.want, moResults(results)); d != "" {
				t.Errorf("results (-want +got):\n%s", d)
			}
			if len(tc.want) > 0 {
				moCheckMessages(t, results, [][]string{{"both configRef and dataSecretName", `overwrites dataSecretName "my-data"`}})
			}
		})
	}
}
