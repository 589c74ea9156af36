package transformers

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The same rule at admission time: CAPA objects also reach a management cluster by roads no
// render sees (the topology controller, a hand-applied manifest, another pipeline). Policy
// turns the config into a ValidatingAdmissionPolicy and its binding (admissionregistration.k8s.io/v1,
// GA since Kubernetes 1.30), checked by the API server's own CEL, that rejects what audit
// mode would report about instance metadata: each configured option, with CAPA's defaulting
// taken into account (a missing key is httpTokens optional, hop limit 1), and an
// AWSManagedMachinePool without a launch template (amiType CUSTOM).
//
// A safety net must not wedge the cluster it guards. Controllers update objects all the
// time (labels, owner references, the finalizer removal that ends a deletion), and an
// object that predates the policy may be non-compliant: judging every UPDATE by the new
// object alone would deny all of those writes, deletions would hang, and the rollout the
// function asks for could never finish. So an UPDATE is judged only when it makes the
// object worse: the old object was compliant, or the update changes what decides
// compliance (the options block; a managed pool's amiType or launch template). Objects
// being deleted, and AWSMachines an AWSMachinePool creates to mirror instances that
// already run (denying them changes no instance and fails the pool's reconcile; the pool's
// launch template is judged instead), are not matched at all.

// PolicyName names the policy and its binding.
const PolicyName = "capa-imds-require-imdsv2"

type policyKind struct {
	kind, resource string
	path           []string
}

// policyKinds are the kinds the policy judges, with where each keeps the block.
var policyKinds = []policyKind{
	{"AWSMachine", "awsmachines", []string{"spec"}},
	{"AWSMachineTemplate", "awsmachinetemplates", []string{"spec", "template", "spec"}},
	{"AWSMachinePool", "awsmachinepools", []string{"spec", "awsLaunchTemplate"}},
	{"AWSManagedMachinePool", "awsmanagedmachinepools", []string{"spec", "awsLaunchTemplate"}},
}

// capaDefaults are what CAPA sends for a key the block does not set, as CEL literals.
var capaDefaults = map[string]string{
	optHTTPTokens:   "'optional'",
	optHopLimit:     "1",
	optHTTPEndpoint: "'enabled'",
	optTags:         "'disabled'",
	optIPv6:         "'disabled'",
}

// validationActions are what the API server accepts in a binding's validationActions.
var validationActions = []string{"Deny", "Warn", "Audit"}

// PolicyOptions are the choices of the binding, which the config does not make.
type PolicyOptions struct {
	// ValidationActions: [Deny], or [Warn, Audit] for a dry run.
	ValidationActions []string
	// AllowSkip honours the skip annotation; off, an annotation cannot opt a machine out.
	AllowSkip bool
}

// Default fills in Deny.
func (o *PolicyOptions) Default() {
	if len(o.ValidationActions) == 0 {
		o.ValidationActions = []string{"Deny"}
	}
}

// Validate refuses what the API server would refuse in the binding, so the error comes
// before kubectl apply: an unknown action, one named twice, and Deny with Warn (the API
// server rejects that pair: a denial already warns).
func (o *PolicyOptions) Validate() error {
	seen := map[string]bool{}
	for _, a := range o.ValidationActions {
		known := false
		for _, v := range validationActions {
			known = known || a == v
		}
		if !known {
			return fmt.Errorf("validation action %q is not allowed; allowed: %s", a, strings.Join(validationActions, ", "))
		}
		if seen[a] {
			return fmt.Errorf("validation action %q is named twice", a)
		}
		seen[a] = true
	}
	if seen["Deny"] && seen["Warn"] {
		return fmt.Errorf("validation actions Deny and Warn cannot be combined (the API server refuses the binding); use Deny, Deny,Audit, or Warn,Audit for a dry run")
	}
	return nil
}

// Policy returns the ValidatingAdmissionPolicy and its binding for the config.
func Policy(cfg *Config, opts PolicyOptions) ([]*yaml.RNode, error) {
	opts.Default()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	profiles, err := policyProfiles(cfg)
	if err != nil {
		return nil, err
	}
	var out []*yaml.RNode
	for _, p := range profiles {
		out = append(out, validatingPolicy(p, opts)...)
	}
	return out, nil
}

// validatingPolicy is the policy and binding of one profile.
func validatingPolicy(p policyProfile, opts PolicyOptions) []*yaml.RNode {
	var conditions []*yaml.Node
	conditions = append(conditions,
		namedExpression("not-being-deleted", "!has(object.metadata.deletionTimestamp)"),
		namedExpression("not-a-pool-instance-mirror",
			"!(object.kind == 'AWSMachine' &&\n  object.metadata.?ownerReferences.orValue([]).exists(r, r.kind == 'AWSMachinePool'))"))
	if opts.AllowSkip {
		conditions = append(conditions, namedExpression("not-skipped",
			"object.metadata.?annotations[?'"+SkipAnnotation+"'].orValue('') != 'true'"))
	}
	conditions = append(conditions, p.conditions...)

	var checks []string
	var validations []*yaml.Node
	for _, opt := range p.options {
		current := "variables.options.?" + opt.Key + ".orValue(" + capaDefaults[opt.Key] + ")"
		checks = append(checks, optionCheck(opt, "variables.options"))
		validations = append(validations, validation(
			"!variables.judged || "+optionCheck(opt, "variables.options"),
			"object.kind + ' ' + object.metadata.name + ': ' + variables.field + '."+opt.Key+" is ' +\n  string("+current+") + ', want "+opt.Value+p.by+"'"))
	}
	validations = append(validations, validation("!variables.judged || variables.launchTemplate",
		"'AWSManagedMachinePool ' + object.metadata.name + ': needs spec.awsLaunchTemplate and spec.amiType CUSTOM ' +\n"+
			"  '(without them EKS starts the nodes from its own launch template, which accepts IMDSv1); amiType is ' +\n"+
			"  object.?spec.?amiType.orValue('unset')"))
	oldChecks := make([]string, len(checks))
	for i, c := range checks {
		oldChecks[i] = strings.ReplaceAll(c, "variables.options", "variables.oldOptions")
	}

	variables := []*yaml.Node{
		variable("options", optionsBlock("object")),
		variable("oldOptions", "request.operation != 'UPDATE' ? {} :\n"+optionsBlock("oldObject")),
		variable("field", fieldOfKind()),
		variable("launchTemplate", launchTemplateCheck("object")),
		variable("oldCompliant", strings.Join(append(oldChecks, launchTemplateCheck("oldObject")), " &&\n")),
		variable("judged", "request.operation != 'UPDATE' ||\nvariables.oldCompliant ||\nvariables.options != variables.oldOptions ||\n"+
			"(object.kind == 'AWSManagedMachinePool' &&\n"+
			"  (object.?spec.?amiType.orValue('') != oldObject.?spec.?amiType.orValue('') ||\n"+
			"   object.?spec.?awsLaunchTemplate.hasValue() != oldObject.?spec.?awsLaunchTemplate.hasValue()))"),
	}

	var resources []*yaml.Node
	for _, k := range policyKinds {
		if p.covers(k.kind) {
			resources = append(resources, stringNode(k.resource))
		}
	}
	policy := mapping(
		"apiVersion", stringNode("admissionregistration.k8s.io/v1"),
		"kind", stringNode("ValidatingAdmissionPolicy"),
		"metadata", namedMetadata(p.name),
		"spec", mapping(
			"failurePolicy", stringNode("Fail"),
			"matchConstraints", mapping("resourceRules", sequence(mapping(
				"apiGroups", flowSequence(stringNode(infraGroup)),
				"apiVersions", flowSequence(stringNode("v1beta2")),
				"operations", flowSequence(stringNode("CREATE"), stringNode("UPDATE")),
				"resources", flowSequence(resources...),
			))),
			"matchConditions", sequence(conditions...),
			"variables", sequence(variables...),
			"validations", sequence(validations...),
		),
	)
	var actions []*yaml.Node
	for _, a := range opts.ValidationActions {
		actions = append(actions, stringNode(a))
	}
	binding := mapping(
		"apiVersion", stringNode("admissionregistration.k8s.io/v1"),
		"kind", stringNode("ValidatingAdmissionPolicyBinding"),
		"metadata", namedMetadata(p.name),
		"spec", mapping(
			"policyName", stringNode(p.name),
			"validationActions", flowSequence(actions...),
		),
	)
	return []*yaml.RNode{yaml.NewRNode(policy), yaml.NewRNode(binding)}
}

// optionCheck is the CEL that holds when the block in options meets opt, a missing key
// being what CAPA sends.
func optionCheck(opt Option, options string) string {
	value := "'" + opt.Value + "'"
	if opt.Int {
		value = opt.Value
	}
	current := options + ".?" + opt.Key + ".orValue(" + capaDefaults[opt.Key] + ")"
	if opt.Key == optHTTPEndpoint {
		return current + " in [" + value + ", 'disabled']" // disabled turns IMDS off: stricter
	}
	if opt.Key == optHTTPTokens && opt.Value == string(HTTPTokensStateOptional) {
		return current + " in ['optional', 'required']" // optional permits IMDSv1; required is stricter
	}
	return current + " == " + value
}

// optionsBlock is the CEL for the instanceMetadataOptions block of root, wherever its kind
// keeps it, or an empty map.
func optionsBlock(root string) string {
	var b strings.Builder
	for i, k := range policyKinds {
		expr := root + ".?" + strings.Join(append(append([]string(nil), k.path...), imdsField), ".?") + ".orValue({})"
		if i == len(policyKinds)-1 {
			b.WriteString(expr)
			break
		}
		if i == len(policyKinds)-2 && sameBlockPath(k.path, policyKinds[i+1].path) {
			b.WriteString(expr) // the last kinds keep the block at the same path
			break
		}
		fmt.Fprintf(&b, "%s.kind == '%s' ? %s :\n", root, k.kind, expr)
	}
	return b.String()
}

func sameBlockPath(a, b []string) bool { return strings.Join(a, ".") == strings.Join(b, ".") }

// fieldOfKind is the CEL for the block's field path, for messages.
func fieldOfKind() string {
	var b strings.Builder
	for _, k := range policyKinds[:len(policyKinds)-1] {
		fmt.Fprintf(&b, "object.kind == '%s' ? '%s' :\n", k.kind, strings.Join(append(append([]string(nil), k.path...), imdsField), "."))
	}
	last := policyKinds[len(policyKinds)-1]
	b.WriteString("'" + strings.Join(append(append([]string(nil), last.path...), imdsField), ".") + "'")
	return b.String()
}

// launchTemplateCheck holds unless root is a managed pool EKS starts from its own launch
// template.
func launchTemplateCheck(root string) string {
	return "(" + root + ".kind != 'AWSManagedMachinePool' ||\n  (" + root + ".?spec.?awsLaunchTemplate.hasValue() && " +
		root + ".?spec.?amiType.orValue('') == 'CUSTOM'))"
}

// policyProfile is one rule's share of the admission policies, or the default's: each
// rule becomes a policy of its own that matches what the rule matches and no earlier rule
// does (first match wins, as in the function), and the default policy matches what no
// rule does.
type policyProfile struct {
	suffix     string // "" for the default, "-<rule>" for a rule
	name       string
	by         string // for messages: " (rule NAME)"
	options    []Option
	kinds      []string     // nil: every kind
	conditions []*yaml.Node // the rule's own condition, after the earlier rules' negations
}

func (p policyProfile) covers(kind string) bool { return p.kinds == nil || contains(p.kinds, kind) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// maxPolicyRules keeps the last policy's match conditions within the API's 64.
const maxPolicyRules = 60

func policyProfiles(cfg *Config) ([]policyProfile, error) {
	if len(cfg.Rules) > maxPolicyRules {
		return nil, &ConfigError{Source: cfg.Source, Field: "spec.rules", Msg: fmt.Sprintf("%d rules, but an admission policy takes at most "+
			"64 match conditions: at most %d rules become policies", len(cfg.Rules), maxPolicyRules)}
	}
	var out []policyProfile
	var earlier []*yaml.Node
	for i, rule := range cfg.Rules {
		if len(rule.Match.Clusters) > 0 {
			// An admission request carries the object, not the references that tie it to a
			// Cluster, and Cluster API labels objects with their Cluster only after it
			// created them: the policy would hold the function's own output to another
			// rule's options and deny it.
			return nil, &ConfigError{Source: cfg.Source, Field: fmt.Sprintf("spec.rules[%d].match.clusters", i), Msg: fmt.Sprintf("rule %q "+
				"matches by clusters, which an admission policy cannot see on CREATE (Cluster API labels objects with %s "+
				"only once they exist): match the rule by labels, names or namespaces to enforce it at admission",
				rule.Name, clusterNameLabel)}
		}
		cond := ruleCondition(rule.Match)
		out = append(out, policyProfile{
			suffix: "-" + rule.Name, name: PolicyName + "-" + rule.Name, by: fmt.Sprintf(" (rule %s)", rule.Name),
			options: rule.Options, kinds: rule.Match.Kinds,
			conditions: append(append([]*yaml.Node(nil), earlier...), namedExpression("rule-"+rule.Name, cond)),
		})
		earlier = append(earlier, namedExpression("not-rule-"+rule.Name, "!("+cond+")"))
	}
	return append(out, policyProfile{name: PolicyName, options: cfg.Options, conditions: earlier}), nil
}

// ruleCondition is the CEL of a rule's match. Globs become anchored RE2 in raw strings
// (CEL's matches() is RE2, and a raw string needs no escaping of the dots).
func ruleCondition(m RuleMatch) string {
	var parts []string
	quoted := func(items []string, f func(string) string) string {
		q := make([]string, len(items))
		for i, it := range items {
			q[i] = f(it)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	str := func(s string) string { return "'" + s + "'" }
	re := func(glob string) string { return "r'" + globRegexp(glob) + "'" }
	if len(m.Kinds) > 0 {
		parts = append(parts, "object.kind in "+quoted(m.Kinds, str))
	}
	if len(m.Namespaces) > 0 {
		parts = append(parts, quoted(m.Namespaces, re)+".exists(p, request.namespace.matches(p))")
	}
	if len(m.Names) > 0 {
		parts = append(parts, quoted(m.Names, re)+".exists(p, object.metadata.name.matches(p))")
	}
	for _, k := range sortedKeys(m.Labels) {
		parts = append(parts, "object.metadata.?labels[?'"+k+"'] == optional.of('"+m.Labels[k]+"')")
	}
	return strings.Join(parts, " &&\n")
}

func namedExpression(name, expression string) *yaml.Node {
	return mapping("name", stringNode(name), "expression", celNode(expression))
}

func variable(name, expression string) *yaml.Node { return namedExpression(name, expression) }

func validation(expression, message string) *yaml.Node {
	return mapping("expression", celNode(expression), "messageExpression", celNode(message), "reason", stringNode("Forbidden"))
}

// celNode writes an expression of several lines as a literal block, one line as a
// double-quoted scalar (CEL's quotes and YAML's indicators never need escaping there).
func celNode(expr string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: yaml.NodeTagString, Value: expr, Style: yaml.DoubleQuotedStyle}
	if strings.Contains(expr, "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}

func sequence(items ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: yaml.NodeTagSeq, Content: items}
}

func flowSequence(items ...*yaml.Node) *yaml.Node {
	s := sequence(items...)
	s.Style = yaml.FlowStyle
	return s
}

// MutatingPolicyPrefix begins the name of each MutatingAdmissionPolicy and its binding.
const MutatingPolicyPrefix = "capa-imds-default-imdsv2-"

// MutatingPolicy returns, for each kind the validating policy judges, a
// MutatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA in Kubernetes 1.36) and its
// binding that write the configured options into the object on CREATE, so that objects
// reaching the cluster by other roads get them instead of being denied.
//
// CREATE only: CAPA's webhooks forbid changing an AWSMachine's or AWSMachineTemplate's
// spec, and a mutation on UPDATE would fight every controller's write. ApplyConfiguration,
// not JSONPatch (JSONPatch with object values was broken in 1.35 and 1.36 until the August
// 2026 patch releases), merges as server-side apply does: keys the object sets beyond the
// config stay. One policy per kind, since an apply configuration names its fields by the
// kind's own schema. failurePolicy Ignore: the validating policy is the gate, and a
// mutation that cannot run must not block a controller's create of a compliant object; a
// non-compliant one is still denied there. A managed pool is mutated only when it already
// has a launch template (adding one changes the pool's kind of node group), and an
// AWSMachine an AWSMachinePool owns mirrors a running instance: it is left as CAPA writes it.
func MutatingPolicy(cfg *Config, opts PolicyOptions) ([]*yaml.RNode, error) {
	profiles, err := policyProfiles(cfg)
	if err != nil {
		return nil, err
	}
	var out []*yaml.RNode
	for _, p := range profiles {
		for _, k := range policyKinds {
			if p.covers(k.kind) {
				out = append(out, mutatingPolicy(p, k, opts)...)
			}
		}
	}
	return out, nil
}

// mutatingPolicy is the policy and binding of one profile for one kind.
func mutatingPolicy(p policyProfile, k policyKind, opts PolicyOptions) []*yaml.RNode {
	name := MutatingPolicyPrefix + k.resource + p.suffix
	conditions := []*yaml.Node{}
	switch k.kind {
	case "AWSMachine":
		conditions = append(conditions, namedExpression("not-a-pool-instance-mirror",
			"!object.metadata.?ownerReferences.orValue([]).exists(r, r.kind == 'AWSMachinePool')"))
	case "AWSManagedMachinePool":
		conditions = append(conditions, namedExpression("has-a-launch-template", "object.?spec.?awsLaunchTemplate.hasValue()"))
	}
	if opts.AllowSkip {
		conditions = append(conditions, namedExpression("not-skipped",
			"object.metadata.?annotations[?'"+SkipAnnotation+"'].orValue('') != 'true'"))
	}
	conditions = append(conditions, p.conditions...)
	spec := []any{
		"failurePolicy", stringNode("Ignore"),
		"reinvocationPolicy", stringNode("Never"),
		"matchConstraints", mapping("resourceRules", sequence(mapping(
			"apiGroups", flowSequence(stringNode(infraGroup)),
			"apiVersions", flowSequence(stringNode("v1beta2")),
			"operations", flowSequence(stringNode("CREATE")),
			"resources", flowSequence(stringNode(k.resource)),
		))),
	}
	if len(conditions) > 0 {
		spec = append(spec, "matchConditions", sequence(conditions...))
	}
	spec = append(spec, "mutations", sequence(mapping(
		"patchType", stringNode("ApplyConfiguration"),
		"applyConfiguration", mapping("expression", celNode(applyConfiguration(p.options, append(append([]string(nil), k.path...), imdsField)))),
	)))
	return []*yaml.RNode{
		yaml.NewRNode(mapping(
			"apiVersion", stringNode("admissionregistration.k8s.io/v1"),
			"kind", stringNode("MutatingAdmissionPolicy"),
			"metadata", namedMetadata(name),
			"spec", mapping(spec...),
		)),
		yaml.NewRNode(mapping(
			"apiVersion", stringNode("admissionregistration.k8s.io/v1"),
			"kind", stringNode("MutatingAdmissionPolicyBinding"),
			"metadata", namedMetadata(name),
			"spec", mapping("policyName", stringNode(name)),
		)),
	}
}

// applyConfiguration is the CEL Object{...} that sets the configured options at path.
func applyConfiguration(options []Option, path []string) string {
	var fields []string
	for _, opt := range options {
		v := "'" + opt.Value + "'"
		if opt.Int {
			v = opt.Value
		}
		current := "object.?" + strings.Join(path, ".?") + ".?" + opt.Key + ".orValue('')"
		switch {
		case opt.Key == optHTTPEndpoint && opt.Value != "disabled":
			// disabled turns IMDS off, which is stricter than any setting: it stays.
			v = current + " == 'disabled' ? 'disabled' : " + v
		case opt.Key == optHTTPTokens && opt.Value == string(HTTPTokensStateOptional):
			// optional permits IMDSv1; an object that requires IMDSv2 keeps it.
			v = current + " == 'required' ? 'required' : " + v
		}
		fields = append(fields, opt.Key+": "+v)
	}
	indent := strings.Repeat("  ", len(path)+1)
	body := indent + strings.Join(fields, ",\n"+indent)
	for i := len(path); i > 0; i-- {
		typ := "Object." + strings.Join(path[:i], ".")
		pad := strings.Repeat("  ", i)
		body = pad + path[i-1] + ": " + typ + "{\n" + body + "\n" + pad + "}"
	}
	return "Object{\n" + body + "\n}"
}

func namedMetadata(name string) *yaml.Node {
	return mapping("name", stringNode(name),
		"annotations", mapping("fn.capa-imds.dev/generated-by", stringNode("capa-imds")))
}
