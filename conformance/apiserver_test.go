package conformance

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var (
	server     *APIServer
	serverErr  error
	serverOnce sync.Once
	crdGroups  = map[string]bool{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		if err := server.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the API server:", err)
		}
	}
	os.Exit(code)
}

// skipOrFail skips a test that needs the real API server when its binaries are missing,
// unless the run must not pass without them: under CI=true, or with
// CAPA_IMDS_REQUIRE_APISERVER=1 (make test sets it, having built them), a missing binary
// fails the test with the command that builds it.
func skipOrFail(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" || os.Getenv("CAPA_IMDS_REQUIRE_APISERVER") == "1" {
		t.Fatal(why + " (CI=true or CAPA_IMDS_REQUIRE_APISERVER=1: the API server tests must run, not skip)")
	}
	t.Skip(why)
}

// apiServer starts the real API server once per test binary, or skips the test (see skipOrFail).
func apiServer(t *testing.T) *APIServer {
	t.Helper()
	assets, why := AssetsDir(root)
	if assets == "" {
		skipOrFail(t, why)
	}
	serverOnce.Do(func() {
		ps, err := Providers()
		if err != nil {
			serverErr = err
			return
		}
		var dirs []string
		for _, p := range ps {
			dirs = append(dirs, p.CRDs)
		}
		crds, err := LoadCRDs(dirs...)
		if err != nil {
			serverErr = err
			return
		}
		for _, c := range crds {
			crdGroups[c.Spec.Group] = true
		}
		server, serverErr = StartAPIServer(assets, ps, crds)
	})
	if serverErr != nil {
		t.Fatalf("starting etcd and kube-apiserver: %v", serverErr)
	}
	return server
}

// prepare sets the namespace of a namespaced object that has none and makes sure the
// namespace exists. It returns false for kinds the management cluster would not have
// (no CRD of their group is installed: say, a kustomize or kpt config).
func prepare(t *testing.T, a *APIServer, namespace string, obj map[string]any) (*unstructured.Unstructured, bool) {
	t.Helper()
	u := &unstructured.Unstructured{Object: obj}
	u = u.DeepCopy()
	gvk := u.GroupVersionKind()
	namespaced, err := a.Namespaced(gvk)
	if meta.IsNoMatchError(err) && gvk.Group != "" && !crdGroups[gvk.Group] && !strings.HasSuffix(gvk.Group, ".k8s.io") && gvk.Group != "apps" {
		return nil, false
	}
	if err != nil {
		// Let the server say why (say, a CAPA kind at a version it does not serve).
		return u, true
	}
	if namespaced {
		if u.GetNamespace() == "" {
			if namespace == "" {
				namespace = "default"
			}
			u.SetNamespace(namespace)
		}
		if err := a.EnsureNamespace(context.Background(), u.GetNamespace()); err != nil {
			t.Fatal(err)
		}
	}
	return u, true
}

// Every pinned output and every output of this run is accepted by a real kube-apiserver
// with CAPA's and Cluster API's CRDs and webhooks: server-side apply, strict field
// validation, dry run. The in-process checks must agree.
func TestAPIServerCreate(t *testing.T) {
	a := apiServer(t)
	p := newInProcess(t)
	ctx := context.Background()
	var outs []output
	outs = append(outs, pinnedOutputs(t)...)
	for _, r := range runs(t) {
		outs = append(outs, output{r.name + " (output)", r.out})
	}
	applied := 0
	for _, o := range outs {
		for _, obj := range objects(t, o.name, o.text) {
			u, ok := prepare(t, a, "", obj)
			if !ok {
				continue
			}
			applied++
			_, kind, _, name := id(obj)
			_, serverErr := a.Apply(ctx, u.Object, true)
			_, findings, checked := p.Create(ctx, "", obj)
			if serverErr != nil {
				if reason, ok := knownInvalid[o.name+": "+kind+"/"+name]; ok {
					t.Logf("allowed: %s: %s/%s: %v (%s)", o.name, kind, name, serverErr, reason)
				} else {
					t.Errorf("%s: %s/%s: the API server refuses it: %v", o.name, kind, name, serverErr)
				}
			}
			if checked {
				compare(t, o.name, obj, findings, serverErr)
			}
		}
	}
	if applied < 500 {
		t.Errorf("only %d objects applied", applied)
	}
	t.Logf("applied %d objects from %d outputs", applied, len(outs))
}

// From raw input to output on the real server: the raw objects are applied for real,
// then the output is applied over them (dry run). A refused update must be one the
// function warned about, as in TestInProcessUpdate, and both must agree.
func TestAPIServerUpdate(t *testing.T) {
	a := apiServer(t)
	p := newInProcess(t)
	ctx := context.Background()
	var updates, refused int
	seen := map[string]bool{}
	for _, r := range runs(t) {
		var live []*unstructured.Unstructured
		forEachUpdate(t, r, func(old, obj map[string]any) {
			u, ok := prepare(t, a, r.namespace, old)
			if !ok {
				return
			}
			stored, err := a.Apply(ctx, u.Object, false)
			inStored, _, checked := p.Create(ctx, r.namespace, old)
			if err != nil {
				if checked && inStored != nil {
					compare(t, r.name+" (raw input)", old, nil, err)
				}
				return
			}
			live = append(live, stored)
			next, _ := prepare(t, a, r.namespace, obj)
			_, err = a.Apply(ctx, next.Object, true)
			updates++
			if err != nil {
				refused++
				checkRefusal(t, r, old, obj, err.Error(), seen)
			}
			if checked && inStored != nil {
				inStored.SetResourceVersion("1")
				_, findings, _ := p.Update(ctx, r.namespace, inStored, obj)
				compare(t, r.name+" (update)", obj, findings, err)
			}
		})
		// ClusterClasses last: one cannot go while a Cluster uses it, and the webhook
		// reads Clusters from a cache that sees a deletion a moment later.
		sort.SliceStable(live, func(i, j int) bool { return live[i].GetKind() != "ClusterClass" && live[j].GetKind() == "ClusterClass" })
		for _, u := range live {
			var err error
			for try := 0; try < 50; try++ {
				if err = a.Delete(ctx, u); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("%s: deleting %s/%s: %v", r.name, u.GetKind(), u.GetName(), err)
			}
		}
	}
	checkStaleRefusals(t, seen)
	if updates < 100 {
		t.Errorf("only %d updates checked", updates)
	}
	t.Logf("%d updates checked, %d refused", updates, refused)
}

// capiKinds are the kinds whose webhooks only the API server runs (the in-process checks
// call CAPA's webhooks, not Cluster API's).
var capiKinds = sync.OnceValues(func() (map[string]bool, error) {
	ps, err := Providers()
	if err != nil {
		return nil, err
	}
	kinds := map[string]bool{}
	for _, p := range ps {
		if p.Name == "capa" {
			continue
		}
		crds, err := LoadCRDs(p.CRDs)
		if err != nil {
			return nil, err
		}
		for _, c := range crds {
			kinds[c.Spec.Group+"/"+c.Spec.Names.Kind] = true
		}
	}
	return kinds, nil
})

// compare fails when the server and the in-process checks disagree, except where the
// server's refusal comes from a Cluster API webhook, which only the server runs.
func compare(t *testing.T, what string, obj map[string]any, findings []string, serverErr error) {
	t.Helper()
	if (serverErr == nil) == (len(findings) == 0) {
		return
	}
	av, kind, _, name := id(obj)
	kinds, err := capiKinds()
	if err != nil {
		t.Fatal(err)
	}
	group, _, _ := strings.Cut(av, "/")
	if serverErr != nil && kinds[group+"/"+kind] && strings.Contains(serverErr.Error(), "admission webhook") {
		t.Logf("%s: %s/%s: refused by a Cluster API webhook, which only the server runs: %v", what, kind, name, serverErr)
		return
	}
	t.Errorf("%s: %s/%s: the in-process checks disagree with the API server: in process %q, server %v", what, kind, name, findings, serverErr)
}
