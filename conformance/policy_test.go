package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/kio/kioutil"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	"github.com/capa-imds/capa-imds/internal/modcache"
	"github.com/capa-imds/capa-imds/transformers"
)

// policyNamespace holds what TestPolicyAgreesWithAudit applies; the binding is scoped to
// it, so the policy judges nothing the other tests apply.
const policyNamespace = "capa-imds-policy"

// policyKinds are the kinds the admission policy judges.
var policyKinds = map[string]bool{"AWSMachine": true, "AWSMachineTemplate": true, "AWSMachinePool": true, "AWSManagedMachinePool": true}

// TestPolicyAgreesWithAudit installs the admission policy the function generates for the
// default config into the real kube-apiserver, so the API server's own CEL environment,
// type checking and cost limits judge it, and creates every object of every raw input and
// every output (dry run): the policy must deny exactly the objects audit finds instance
// metadata findings on, object by object.
func TestPolicyAgreesWithAudit(t *testing.T) {
	a := apiServer(t)
	ctx := context.Background()
	cfg := transformers.DefaultConfig()
	nodes, err := transformers.Policy(cfg, transformers.PolicyOptions{AllowSkip: true})
	if err != nil {
		t.Fatal(err)
	}
	var installed []*unstructured.Unstructured
	for _, n := range nodes {
		obj := toMap(t, n)
		if n.GetKind() == "ValidatingAdmissionPolicyBinding" {
			spec := obj["spec"].(map[string]any)
			spec["matchResources"] = map[string]any{"namespaceSelector": map[string]any{
				"matchLabels": map[string]any{"kubernetes.io/metadata.name": policyNamespace}}}
		}
		u, err := a.Apply(ctx, obj, false)
		if err != nil {
			t.Fatalf("installing %s: %v", n.GetKind(), err)
		}
		installed = append(installed, u)
	}
	t.Cleanup(func() {
		for _, u := range installed {
			_ = a.Delete(ctx, u)
		}
	})
	if err := a.EnsureNamespace(ctx, policyNamespace); err != nil {
		t.Fatal(err)
	}
	checkPolicyCompiled(t, a)
	waitForPolicy(t, a)

	agreed, denied, unjudged := 0, 0, 0
	for _, in := range policyInputs(t, cfg) {
		for _, stage := range []struct {
			name, text string
			findings   map[string]string
		}{{"input", in.raw, in.rawFindings}, {"output", in.out, in.outFindings}} {
			for _, obj := range decodeAll(t, in.name, stage.text) {
				_, kind, _, name := id(obj)
				if !policyKinds[kind] || obj["apiVersion"] != "infrastructure.cluster.x-k8s.io/v1beta2" {
					continue
				}
				want, auditSays := stage.findings[kind+"/"+name]
				u := (&unstructured.Unstructured{Object: obj}).DeepCopy()
				u.SetNamespace(policyNamespace)
				u.SetOwnerReferences(nil)
				_, err := a.Apply(ctx, u.Object, true)
				verdict := policyVerdict(err)
				where := fmt.Sprintf("%s (%s): %s/%s", in.name, stage.name, kind, name)
				switch {
				case verdict == "unjudged":
					unjudged++
				case verdict == "denied" && !auditSays:
					t.Errorf("%s: the policy denies what audit passes: %v", where, err)
				case verdict == "admitted" && auditSays:
					t.Errorf("%s: the policy admits what audit reports (%s)", where, want)
				default:
					agreed++
					if verdict == "denied" {
						denied++
					}
				}
			}
		}
	}
	t.Logf("%d objects judged alike by the policy and audit (%d denied), %d not judged (refused before admission)", agreed, denied, unjudged)
	if agreed < 100 || denied < 20 {
		t.Errorf("too few objects compared: %d agreed, %d denied", agreed, denied)
	}
}

// checkPolicyCompiled reads the policy's status, where the type checker reports every
// expression that does not fit a matched kind's schema. The API server already refused to
// store a policy whose expressions do not compile or exceed the cost limits; the status
// comes from a controller of kube-controller-manager, which envtest does not run, so its
// absence is logged, not failed.
func checkPolicyCompiled(t *testing.T, a *APIServer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("admissionregistration.k8s.io/v1")
		u.SetKind("ValidatingAdmissionPolicy")
		if err := a.Client.Get(context.Background(), clientKey(transformers.PolicyName), u); err != nil {
			t.Fatal(err)
		}
		gen, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		if gen >= u.GetGeneration() {
			warnings, _, _ := unstructured.NestedSlice(u.Object, "status", "typeChecking", "expressionWarnings")
			for _, w := range warnings {
				t.Errorf("the API server's type check of the policy: %v", w)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Log("no type-checking status: kube-controller-manager, which writes it, does not run here")
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitForPolicy waits until a plainly non-compliant AWSMachine is denied: policies take
// effect once the API server has compiled and loaded them.
func waitForPolicy(t *testing.T, a *APIServer) {
	t.Helper()
	probe := map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta2", "kind": "AWSMachine",
		"metadata": map[string]any{"name": "probe", "namespace": policyNamespace},
		"spec":     map[string]any{"instanceType": "t3.large"}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := a.Apply(context.Background(), probe, true)
		if policyVerdict(err) == "denied" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy never took effect: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// policyVerdict reads an apply's error: denied by the policy, admitted by it (no error, or
// a webhook, which runs after it), or unjudged (refused before admission).
func policyVerdict(err error) string {
	switch {
	case err == nil:
		return "admitted"
	case strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+transformers.PolicyName+"'"):
		return "denied"
	case strings.Contains(err.Error(), "admission webhook"):
		return "admitted"
	}
	return "unjudged"
}

type policyInput struct {
	name, raw, out string
	rawFindings    map[string]string // kind/name -> audit's instance metadata finding on the raw input
	outFindings    map[string]string // and on the output (a pool-owned AWSMachine is reported, not rewritten)
}

// policyInputs are the golden, end-to-end and CAPA template inputs whose config has the
// default options (the policy is generated for those), with audit's findings on each.
func policyInputs(t *testing.T, cfg *transformers.Config) []policyInput {
	t.Helper()
	var out []policyInput
	add := func(name string, c *transformers.Config, raw string) {
		parse := func(s string) []*kyaml.RNode {
			nodes, err := (&kio.ByteReader{Reader: strings.NewReader(s), PreserveSeqIndent: true, DisableUnwrapping: true,
				SetAnnotations: map[string]string{kioutil.PathAnnotation: "input.yaml"}}).Read()
			if err != nil {
				return nil
			}
			return nodes
		}
		// As the objects reach the API server: clusterctl variables substituted.
		raw, err := Substitute(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nodes := parse(raw)
		if nodes == nil {
			return
		}
		enforced, results := transformers.Process(c, nodes)
		if results.ExitCode() != 0 {
			return
		}
		var b bytes.Buffer
		if err := (kio.ByteWriter{Writer: &b, ClearAnnotations: []string{kioutil.PathAnnotation, kioutil.LegacyPathAnnotation}}).Write(enforced); err != nil {
			t.Fatal(err)
		}
		audit := *c
		audit.Mode = transformers.ModeAudit
		findingsOf := func(text string) map[string]string {
			m := map[string]string{}
			_, findings := transformers.Process(&audit, parse(text))
			for _, f := range findings {
				if f.Severity != transformers.Error || f.ResourceRef == nil || f.Field == nil {
					continue
				}
				if strings.Contains(f.Field.Path, "instanceMetadataOptions") || (f.ResourceRef.Kind == "AWSManagedMachinePool" && f.Field.Path == "spec.amiType") {
					m[f.ResourceRef.Kind+"/"+f.ResourceRef.Name] = f.Field.Path + ": " + f.Message
				}
			}
			return m
		}
		out = append(out, policyInput{name: name, raw: raw, out: b.String(), rawFindings: findingsOf(raw), outFindings: findingsOf(b.String())})
	}
	// A config with rules has policies of its own: TestRulesPolicies judges those.
	same := func(c *transformers.Config) bool {
		return fmt.Sprint(c.Options) == fmt.Sprint(cfg.Options) && len(c.Rules) == 0
	}
	dirs, _ := filepath.Glob(filepath.Join(root, "transformers/testdata/golden/*"))
	e2e, _ := filepath.Glob(filepath.Join(root, "tests/testdata/*"))
	for _, dir := range append(dirs, e2e...) {
		raw, err := os.ReadFile(filepath.Join(dir, "input.yaml"))
		if err != nil {
			continue // CAPA's templates are added below, each once
		}
		b, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
		if err != nil {
			continue
		}
		n, err := kyaml.Parse(string(b))
		if err != nil {
			continue
		}
		c, err := transformers.LoadConfig(n)
		if err != nil || !same(c) {
			continue
		}
		c.Mode = transformers.ModeEnforce
		rel, _ := filepath.Rel(root, dir)
		add(rel, c, string(raw))
	}
	capa, err := modcache.CAPADir()
	if err != nil {
		t.Fatal(err)
	}
	templates, _ := filepath.Glob(filepath.Join(capa, "templates", "cluster-template*.yaml"))
	sort.Strings(templates)
	for _, tmpl := range templates {
		raw, err := os.ReadFile(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		add("capa/"+filepath.Base(tmpl), transformers.DefaultConfig(), string(raw))
	}
	return out
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }

func toMap(t *testing.T, n *kyaml.RNode) map[string]any {
	t.Helper()
	s, err := n.String()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}
