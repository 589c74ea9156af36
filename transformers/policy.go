package transformers

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The same rule at admission time: CAPA objects also reach a management cluster by roads no
// render sees (the topology controller, a hand-applied manifest, another pipeline). Policy
// turns the config into a ValidatingAdmissionPolicy and its binding (admissionregistration.k8s.io/v1,
// GA since Kubernetes 1.30), checked by the API server's own CEL, that rejects on CREATE and
// UPDATE what audit mode would report about instance metadata: each configured option, with
// CAPA's defaulting taken into account (a missing key is httpTokens optional, hop limit 1),
// and an AWSManagedMachinePool without a launch template (amiType CUSTOM).

// PolicyName names the policy and its binding.
const PolicyName = "capa-imds-require-imdsv2"

// policyKinds are the kinds the policy judges, with where each keeps the block.
var policyKinds = []struct {
	kind, resource string
	path           []string
}{
	{"AWSMachine", "awsmachines", []string{"spec"}},
	{"AWSMachineTemplate", "awsmachinetemplates", []string{"spec", "template", "spec"}},
	{"AWSMachinePool", "awsmachinepools", []string{"spec", "awsLaunchTemplate"}},
	{"AWSManagedMachinePool", "awsmanagedmachinepools", []string{"spec", "awsLaunchTemplate"}},
}

// capaDefaults are what CAPA sends for a key the block does not set.
var capaDefaults = map[string]string{
	optHTTPTokens:   "'optional'",
	optHopLimit:     "1",
	optHTTPEndpoint: "'enabled'",
	optTags:         "'disabled'",
	optIPv6:         "'disabled'",
}

// PolicyOptions are the choices of the binding, which the config does not make.
type PolicyOptions struct {
	// ValidationActions: [Deny], or [Warn, Audit] for a dry run.
	ValidationActions []string
	// AllowSkip honours the skip annotation; off, an annotation cannot opt a machine out.
	AllowSkip bool
}

// Policy returns the ValidatingAdmissionPolicy and its binding for the config.
func Policy(cfg *Config, opts PolicyOptions) ([]*yaml.RNode, error) {
	actions := opts.ValidationActions
	if len(actions) == 0 {
		actions = []string{"Deny"}
	}
	for _, a := range actions {
		if a != "Deny" && a != "Warn" && a != "Audit" {
			return nil, fmt.Errorf("validation action %q is not allowed; allowed: Deny, Warn, Audit", a)
		}
	}
	var b strings.Builder
	b.WriteString(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: ` + PolicyName + `
  annotations:
    fn.capa-imds.dev/generated-by: capa-imds
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: ["` + infraGroup + `"]
        apiVersions: ["v1beta2"]
        operations: ["CREATE", "UPDATE"]
        resources: [`)
	for i, k := range policyKinds {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + k.resource + `"`)
	}
	b.WriteString("]\n")
	if opts.AllowSkip {
		b.WriteString(`  matchConditions:
    - name: not-skipped
      expression: "!(has(object.metadata.annotations) && '` + SkipAnnotation + `' in object.metadata.annotations && object.metadata.annotations['` + SkipAnnotation + `'] == 'true')"
`)
	}
	b.WriteString("  validations:\n")
	for _, k := range policyKinds {
		block := "object." + strings.Join(append(append([]string(nil), k.path...), imdsField), ".")
		field := strings.Join(append(append([]string(nil), k.path...), imdsField), ".")
		guard := "object.kind != '" + k.kind + "'"
		if k.kind == "AWSManagedMachinePool" {
			writeValidation(&b, guard+" || (has(object.spec.awsLaunchTemplate) && object.spec.amiType == 'CUSTOM')",
				"'AWSManagedMachinePool ' + object.metadata.name + ': needs spec.awsLaunchTemplate and spec.amiType CUSTOM "+
					"(without them EKS starts the nodes from its own launch template, which accepts IMDSv1); amiType is ' + "+
					"(has(object.spec.amiType) ? object.spec.amiType : 'unset')")
		}
		for _, opt := range cfg.Options {
			value := "'" + opt.Value + "'"
			if opt.Int {
				value = opt.Value
			}
			parent := strings.TrimPrefix(block, "object.")
			// has() on each step: a missing block or key is what CAPA defaults it to.
			var present []string
			steps := strings.Split(parent, ".")
			for i := 1; i <= len(steps); i++ {
				present = append(present, "has(object."+strings.Join(steps[:i], ".")+")")
			}
			present = append(present, "has("+block+"."+opt.Key+")")
			current := "(" + strings.Join(present, " && ") + " ? " + block + "." + opt.Key + " : " + capaDefaults[opt.Key] + ")"
			allowed := current + " == " + value
			if opt.Key == optHTTPEndpoint {
				allowed = current + " in [" + value + ", 'disabled']" // disabled turns IMDS off: stricter
			}
			writeValidation(&b, guard+" || "+allowed,
				"'"+k.kind+" ' + object.metadata.name + ': "+field+"."+opt.Key+" is ' + string("+current+") + ', want "+opt.Value+"'")
		}
	}
	b.WriteString(`---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: ` + PolicyName + `
  annotations:
    fn.capa-imds.dev/generated-by: capa-imds
spec:
  policyName: ` + PolicyName + `
  validationActions: [` + strings.Join(actions, ", ") + `]
`)
	nodes, err := yaml.Parse(strings.SplitN(b.String(), "---\n", 2)[0])
	if err != nil {
		return nil, fmt.Errorf("internal: the policy does not parse: %w", err)
	}
	binding, err := yaml.Parse(strings.SplitN(b.String(), "---\n", 2)[1])
	if err != nil {
		return nil, fmt.Errorf("internal: the binding does not parse: %w", err)
	}
	return []*yaml.RNode{nodes, binding}, nil
}

func writeValidation(b *strings.Builder, expression, message string) {
	fmt.Fprintf(b, "    - expression: %s\n      messageExpression: %s\n      reason: Forbidden\n", quoteYAML(expression), quoteYAML(message))
}

// quoteYAML writes s as a double-quoted YAML scalar.
func quoteYAML(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
