package transformers

import (
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/kustomize/kyaml/fn/framework"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The result types must stay those of the KRM function spec as kyaml writes them: the
// same fields, names and tags as kyaml's fn/framework, so orchestrators read them alike.
func TestResultTypesMirrorFramework(t *testing.T) {
	for _, pair := range [][2]any{{Result{}, framework.Result{}}, {Field{}, framework.Field{}}, {File{}, framework.File{}}} {
		ours, theirs := reflect.TypeOf(pair[0]), reflect.TypeOf(pair[1])
		if ours.NumField() != theirs.NumField() {
			t.Fatalf("%s has %d fields, framework's %d", ours.Name(), ours.NumField(), theirs.NumField())
		}
		for i := 0; i < ours.NumField(); i++ {
			a, b := ours.Field(i), theirs.Field(i)
			if a.Name != b.Name || a.Tag != b.Tag || a.Type.Kind() != b.Type.Kind() {
				t.Errorf("%s.%s %s `%s` differs from framework's %s %s `%s`", ours.Name(), a.Name, a.Type, a.Tag, b.Name, b.Type, b.Tag)
			}
		}
	}
	for sev, want := range map[Severity]framework.Severity{Error: framework.Error, Warning: framework.Warning, Info: framework.Info} {
		if string(sev) != string(want) {
			t.Errorf("severity %q, framework's %q", sev, want)
		}
	}
	ref := &yaml.ResourceIdentifier{TypeMeta: yaml.TypeMeta{APIVersion: "v1", Kind: "Secret"}, NameMeta: yaml.NameMeta{Name: "s", Namespace: "ns"}}
	ours := Results{{Message: "m", Severity: Warning, ResourceRef: ref, Field: &Field{Path: "a.b", CurrentValue: int64(1), ProposedValue: "x"},
		File: &File{Path: "f.yaml", Index: 2}, Tags: map[string]string{"k": "v"}}, {Message: "e", Severity: Error}}
	theirs := framework.Results{{Message: "m", Severity: framework.Warning, ResourceRef: ref, Field: &framework.Field{Path: "a.b", CurrentValue: int64(1), ProposedValue: "x"},
		File: &framework.File{Path: "f.yaml", Index: 2}, Tags: map[string]string{"k": "v"}}, {Message: "e", Severity: framework.Error}}
	a, err := yaml.Marshal(ours)
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(b), string(a)); d != "" {
		t.Errorf("YAML differs from framework's (-framework +ours):\n%s", d)
	}
	if ours.ExitCode() != theirs.ExitCode() || ours[:1].ExitCode() != theirs[:1].ExitCode() {
		t.Errorf("exit codes differ")
	}
}
