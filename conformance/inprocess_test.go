package conformance

import (
	"context"
	"strings"
	"sync"
	"testing"
)

var inProcess = sync.OnceValues(func() (*InProcess, error) {
	ps, err := Providers()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, p := range ps {
		dirs = append(dirs, p.CRDs)
	}
	crds, err := LoadCRDs(dirs...)
	if err != nil {
		return nil, err
	}
	return NewInProcess(crds)
})

func newInProcess(t *testing.T) *InProcess {
	t.Helper()
	p, err := inProcess()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Every pinned output and every output of this run is accepted on create by
// apiextensions-apiserver's pruning, defaulting, OpenAPI and CEL validation and by
// CAPA's webhooks.
func TestInProcessCreate(t *testing.T) {
	p := newInProcess(t)
	ctx := context.Background()
	var outs []output
	outs = append(outs, pinnedOutputs(t)...)
	for _, r := range runs(t) {
		outs = append(outs, output{r.name + " (output)", r.out})
	}
	kinds := map[string]int{}
	for _, o := range outs {
		for _, obj := range objects(t, o.name, o.text) {
			_, kind, _, name := id(obj)
			_, findings, checked := p.Create(ctx, "", obj)
			if !checked {
				continue
			}
			kinds[kind]++
			if len(findings) == 0 {
				continue
			}
			if reason, ok := knownInvalid[o.name+": "+kind+"/"+name]; ok {
				t.Logf("allowed: %s: %s/%s: %s (%s)", o.name, kind, name, strings.Join(findings, "; "), reason)
				continue
			}
			for _, f := range findings {
				t.Errorf("%s: %s/%s: %s", o.name, kind, name, f)
			}
		}
	}
	// The kinds the function edits or writes must all have been seen, or the inputs moved.
	for _, k := range []string{"AWSMachine", "AWSMachineTemplate", "AWSMachinePool", "AWSManagedMachinePool",
		"AWSManagedControlPlane", "MachinePool", "MachineDeployment", "KubeadmControlPlane", "Cluster", "ClusterClass", "Secret"} {
		if kinds[k] == 0 {
			t.Errorf("no %s checked", k)
		}
	}
	t.Logf("checked %d outputs: %v", len(outs), kinds)
}

// From raw input to output, as an update: an update the real code refuses must be one
// the function warned about, and a template it renamed is created, not updated.
func TestInProcessUpdate(t *testing.T) {
	p := newInProcess(t)
	ctx := context.Background()
	var updates, refused int
	seen := map[string]bool{}
	for _, r := range runs(t) {
		forEachUpdate(t, r, func(old, obj map[string]any) {
			stored, _, checked := p.Create(ctx, r.namespace, old)
			if !checked || stored == nil {
				// The raw input is itself refused (say, CAPA's never-existing
				// metadataOptions): nothing live to update.
				return
			}
			stored.SetResourceVersion("1")
			_, findings, _ := p.Update(ctx, r.namespace, stored, obj)
			updates++
			if len(findings) > 0 {
				refused++
				checkRefusal(t, r, old, obj, strings.Join(findings, "; "), seen)
			}
		})
	}
	checkStaleRefusals(t, seen)
	if updates < 100 {
		t.Errorf("only %d updates checked", updates)
	}
	t.Logf("%d updates checked, %d refused", updates, refused)
}
