package transformers

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Rules give the resources they match their own instance metadata options: the right hop
// limit depends on the pool (1 where pods get credentials from IRSA or EKS Pod Identity
// and must not reach the node's role, 2 where pods need IMDS, 3 for some CNIs), and
// exceptions written by hand are where IMDSv1 comes back. The habits are Kyverno's (a
// match block of kinds, namespaces, names with wildcards, matchLabels) and Karpenter's
// (one profile per pool); the first matching rule wins, as in a router, so reading the
// list top down tells what a resource gets.

// Rule is one entry of spec.rules.
type Rule struct {
	Name  string    `json:"name"`
	Match RuleMatch `json:"match"`
	// InstanceMetadataOptions are merged over spec.instanceMetadataOptions: what the rule
	// leaves out, the resource gets from there.
	InstanceMetadataOptions *InstanceMetadataOptions `json:"instanceMetadataOptions,omitempty"`
	// AllowOptional must say so before a rule may ask for httpTokens optional (IMDSv1).
	AllowOptional bool `json:"allowOptional,omitempty"`
}

// RuleMatch selects resources: every criterion given must hold (AND), any entry of a
// list may (OR), as in Kyverno's match.resources.
type RuleMatch struct {
	Kinds      []string `json:"kinds,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"` // wildcards * and ?
	Names      []string `json:"names,omitempty"`      // wildcards * and ?
	// Labels is a label selector's matchLabels: every key with exactly this value.
	Labels   map[string]string `json:"labels,omitempty"`
	Clusters []string          `json:"clusters,omitempty"` // the Cluster's name, wildcards * and ?
}

// ConfigRule is a validated rule with its options resolved.
type ConfigRule struct {
	Name          string
	Match         RuleMatch
	Options       []Option
	AllowOptional bool
}

// ruleKinds are the kinds that carry instanceMetadataOptions, the only ones a rule matches.
var ruleKinds = []string{"AWSMachine", "AWSMachineTemplate", "AWSMachinePool", "AWSManagedMachinePool"}

var (
	ruleKindPath = regexp.MustCompile(`\.match\.kinds\[[0-9]+\]$`)
	// ruleNameRE: a rule's name goes into admission policy and match condition names.
	ruleNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// A glob over Kubernetes names: their characters and the wildcards * and ?.
	globRE       = regexp.MustCompile(`^[a-z0-9.*?-]+$`)
	labelNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

const maxRuleName = 40 // policy names are capa-imds-require-imdsv2-<rule>, match conditions rule-<rule>

// nameRule puts the rule's name into a decoding error about one of spec.rules, which the
// decoder reports by index only.
func nameRule(err *ConfigError, rules *yaml.Node) {
	var i int
	if _, scanErr := fmt.Sscanf(err.Field, "spec.rules[%d]", &i); scanErr != nil || rules == nil ||
		rules.Kind != yaml.SequenceNode || i >= len(rules.Content) {
		return
	}
	if name := scalarField(rules.Content[i], "name"); name != "" {
		err.Msg = fmt.Sprintf("rule %q: %s", name, err.Msg)
	}
}

// decodeRules reads the ConfigMap form: the YAML text of spec.rules.
func decodeRules(text string) ([]Rule, *ConfigError) {
	n, err := yaml.Parse(text)
	if err != nil {
		return nil, &ConfigError{Field: "spec.rules", Msg: fmt.Sprintf("is not YAML: %v", err)}
	}
	var rules []Rule
	if cerr := decodeStrict(n.YNode(), reflect.ValueOf(&rules).Elem(), "spec.rules"); cerr != nil {
		nameRule(cerr, n.YNode())
		return nil, cerr
	}
	return rules, nil
}

func validateRules(rules []Rule) *ConfigError {
	seen := map[string]int{}
	for i, rule := range rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		switch {
		case rule.Name == "":
			return &ConfigError{Field: p + ".name", Msg: "missing: every rule needs a name (results and admission policies name it)"}
		case len(rule.Name) > maxRuleName || !ruleNameRE.MatchString(rule.Name):
			return &ConfigError{Field: p + ".name", Msg: fmt.Sprintf("%q is not allowed: lowercase letters, digits and '-', "+
				"starting and ending with a letter or digit, at most %d characters", rule.Name, maxRuleName)}
		}
		if j, dup := seen[rule.Name]; dup {
			return &ConfigError{Field: p + ".name", Msg: fmt.Sprintf("%q is already the name of spec.rules[%d]: give each rule its own", rule.Name, j)}
		}
		seen[rule.Name] = i
		if err := rule.validate(p); err != nil {
			err.Msg = fmt.Sprintf("rule %q: %s", rule.Name, err.Msg)
			return err
		}
	}
	return nil
}

func (rule *Rule) validate(p string) *ConfigError {
	if err := rule.Match.validate(p + ".match"); err != nil {
		return err
	}
	o := rule.InstanceMetadataOptions
	if o == nil || *o == (InstanceMetadataOptions{}) {
		return &ConfigError{Field: p + "." + imdsField, Msg: "missing: a rule that sets no option gives its resources the defaults; " +
			"set the options it changes, or remove the rule"}
	}
	if err := o.validate(p + "." + imdsField + "."); err != nil {
		return err
	}
	switch optional := o.HTTPTokens == HTTPTokensStateOptional; {
	case optional && !rule.AllowOptional:
		return &ConfigError{Field: p + "." + imdsField + "." + optHTTPTokens, Msg: "optional lets the rule's instances accept " +
			"IMDSv1, which the function exists to stop: if that is really meant, say so with allowOptional: true on the rule"}
	case rule.AllowOptional && !optional:
		return &ConfigError{Field: p + ".allowOptional", Msg: "true, but the rule does not ask for httpTokens optional: remove it"}
	}
	return nil
}

func (m *RuleMatch) validate(p string) *ConfigError {
	if len(m.Kinds)+len(m.Namespaces)+len(m.Names)+len(m.Labels)+len(m.Clusters) == 0 {
		return &ConfigError{Field: p, Msg: "empty: a rule that matches everything replaces spec.instanceMetadataOptions; " +
			"change those instead, or match kinds, namespaces, names, labels or clusters"}
	}
	for _, l := range []struct {
		field string
		items []string
		check func(string) bool
		what  string
	}{
		{"kinds", m.Kinds, func(k string) bool { return slices.Contains(ruleKinds, k) }, "one of " + strings.Join(ruleKinds, ", ")},
		{"namespaces", m.Namespaces, validGlob, "a namespace, with wildcards * and ?"},
		{"names", m.Names, validGlob, "a name, with wildcards * and ?"},
		{"clusters", m.Clusters, validGlob, "a Cluster's name, with wildcards * and ?"},
	} {
		seen := map[string]bool{}
		for j, item := range l.items {
			f := fmt.Sprintf("%s.%s[%d]", p, l.field, j)
			if !l.check(item) {
				return &ConfigError{Field: f, Msg: fmt.Sprintf("%q is not allowed; allowed: %s", item, l.what)}
			}
			if seen[item] {
				return &ConfigError{Field: f, Msg: fmt.Sprintf("%q is listed twice", item)}
			}
			seen[item] = true
		}
	}
	for _, k := range sortedKeys(m.Labels) {
		if !validLabelKey(k) {
			return &ConfigError{Field: p + ".labels." + k, Msg: "is not a label key (an optional DNS subdomain prefix and '/', then a name of at most 63 characters)"}
		}
		if v := m.Labels[k]; len(v) > 63 || !labelValueRE.MatchString(v) {
			return &ConfigError{Field: p + ".labels." + k, Msg: fmt.Sprintf("%q is not a label value (at most 63 letters, digits, '-', '_' and '.')", v)}
		}
	}
	return nil
}

func validGlob(s string) bool { return len(s) <= 253 && globRE.MatchString(s) }

func validLabelKey(k string) bool {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name = prefix
	} else if prefix == "" || len(prefix) > 253 || !dnsSubdomain.MatchString(prefix) {
		return false
	}
	return len(name) <= 63 && labelNameRE.MatchString(name)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// resolveRules merges each rule's options over the defaulted spec options.
func resolveRules(rules []Rule, base *InstanceMetadataOptions) []ConfigRule {
	var out []ConfigRule
	for _, rule := range rules {
		o := *base
		if ro := rule.InstanceMetadataOptions; ro != nil {
			if ro.HTTPTokens != "" {
				o.HTTPTokens = ro.HTTPTokens
			}
			if ro.HTTPPutResponseHopLimit != nil {
				o.HTTPPutResponseHopLimit = ro.HTTPPutResponseHopLimit
			}
			if ro.HTTPEndpoint != "" {
				o.HTTPEndpoint = ro.HTTPEndpoint
			}
			if ro.InstanceMetadataTags != "" {
				o.InstanceMetadataTags = ro.InstanceMetadataTags
			}
			if ro.HTTPProtocolIPv6 != "" {
				o.HTTPProtocolIPv6 = ro.HTTPProtocolIPv6
			}
		}
		out = append(out, ConfigRule{Name: rule.Name, Match: rule.Match, Options: o.list(), AllowOptional: rule.AllowOptional})
	}
	return out
}

// globRegexp is the anchored RE2 of a validated glob, for Go and for CEL's matches().
func globRegexp(glob string) string {
	var b strings.Builder
	b.WriteString("^")
	for _, c := range glob {
		switch c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '.':
			b.WriteString(`\.`)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteString("$")
	return b.String()
}

func globMatch(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := regexp.MatchString(globRegexp(g), s); ok {
			return true
		}
	}
	return false
}

// profile is what one resource must carry: the options, and the rule that chose them
// (nil for spec.instanceMetadataOptions).
type profile struct {
	rule    *ConfigRule
	options []Option
}

// by says, for a result, where the expected values come from.
func (p profile) by() string {
	if p.rule == nil {
		return ""
	}
	return fmt.Sprintf(" (rule %q)", p.rule.Name)
}

// rulePhase holds what matching found across the run.
type rulePhase struct {
	chosen   map[objKey]profile
	matched  map[string]bool
	clusters map[*object][]string // the Clusters each machine resource serves, built on first use
}

// profileOf is the profile of a resource of one of ruleKinds, chosen once a run. A rule
// whose match cannot be decided on the input (a namespace nobody set, a Cluster no
// reference names) is an error: guessing would give the resource another rule's options
// without a word, and the admission policy, which sees the real object, would disagree.
func (r *run) profileOf(o *object) profile {
	if p, ok := r.rules.chosen[o.key()]; ok {
		return p
	}
	p := profile{options: r.cfg.Options}
	for i := range r.cfg.Rules {
		rule := &r.cfg.Rules[i]
		ok, undecided := r.ruleMatches(rule, o)
		if undecided != "" {
			r.errorf(o, undecidedField(undecided), "rule %q matches by %s, but %s: cannot tell whether the rule applies; "+
				"%s", rule.Name, undecided, r.whyUndecided(o, undecided), fixUndecided(undecided))
			break
		}
		if ok {
			p = profile{rule: rule, options: rule.Options}
			r.rules.matched[rule.Name] = true
			if rule.AllowOptional {
				r.warnf(o, "", "rule %q allows IMDSv1 (httpTokens optional, allowOptional: true): this resource's "+
					"instances accept IMDSv1 tokens and any process that reaches IMDS can read the node's credentials", rule.Name)
			}
			break
		}
	}
	if r.rules.chosen == nil {
		r.rules.chosen = map[objKey]profile{}
	}
	r.rules.chosen[o.key()] = p
	return p
}

// ruleMatches tells whether the rule selects the resource, or which criterion it cannot
// decide on.
func (r *run) ruleMatches(rule *ConfigRule, o *object) (ok bool, undecided string) {
	m := rule.Match
	if len(m.Kinds) > 0 && !slices.Contains(m.Kinds, o.kind) {
		return false, ""
	}
	if len(m.Labels) > 0 {
		labels := lookup(o.node.YNode(), "metadata", "labels")
		for k, v := range m.Labels {
			if n := valueOf(labels, k); n == nil || n.Kind != yaml.ScalarNode || n.Value != v {
				return false, ""
			}
		}
	}
	if len(m.Names) > 0 {
		if hasPlaceholder(o.name) {
			return false, "names"
		}
		if !globMatch(m.Names, o.name) {
			return false, ""
		}
	}
	if len(m.Namespaces) > 0 {
		ns := o.namespace
		if ns == "" {
			ns = r.cfg.Namespace
		}
		if ns == "" || hasPlaceholder(ns) {
			return false, "namespaces"
		}
		if !globMatch(m.Namespaces, ns) {
			return false, ""
		}
	}
	if len(m.Clusters) > 0 {
		clusters := r.clustersOf(o)
		if len(clusters) == 0 || slices.ContainsFunc(clusters, hasPlaceholder) {
			return false, "clusters"
		}
		var in, out []string
		for _, c := range clusters {
			if globMatch(m.Clusters, c) {
				in = append(in, c)
			} else {
				out = append(out, c)
			}
		}
		if len(in) > 0 && len(out) > 0 {
			r.errorf(o, "", "serves Clusters %s, which rule %q matches, and %s, which it does not: one resource cannot carry "+
				"two profiles; give each Cluster its own %s", strings.Join(in, ", "), rule.Name, strings.Join(out, ", "), o.kind)
			return false, ""
		}
		return len(in) > 0, ""
	}
	return true, ""
}

func undecidedField(criterion string) string {
	switch criterion {
	case "names":
		return "metadata.name"
	case "namespaces":
		return "metadata.namespace"
	}
	return ""
}

func (r *run) whyUndecided(o *object, criterion string) string {
	switch criterion {
	case "names":
		return fmt.Sprintf("the name %s is a placeholder clusterctl substitutes later", o.name)
	case "namespaces":
		if hasPlaceholder(o.namespace) {
			return fmt.Sprintf("the namespace %s is a placeholder clusterctl substitutes later", o.namespace)
		}
		return "the resource sets no namespace and none is configured"
	}
	if cs := r.clustersOf(o); len(cs) > 0 {
		return fmt.Sprintf("its Cluster's name %s is a placeholder clusterctl substitutes later", strings.Join(cs, ", "))
	}
	return "no Cluster in the input uses it (through a Machine, MachineDeployment, MachineSet, MachinePool or KubeadmControlPlane) " +
		"and it has no cluster.x-k8s.io/cluster-name label"
}

func fixUndecided(criterion string) string {
	switch criterion {
	case "namespaces":
		return "set metadata.namespace, spec.namespace in the IMDSConfig, --namespace or CAPA_IMDS_NAMESPACE"
	case "clusters":
		return "run the function where the Cluster and what references the resource are in the input, or match by names, namespaces or labels"
	}
	return "run the function on the substituted output (clusterctl generate cluster | capa-imds CONFIG -)"
}

const clusterNameLabel = "cluster.x-k8s.io/cluster-name"

// clustersOf names the Clusters a machine resource serves, sorted: the ones whose
// Machines, MachineSets, MachineDeployments, MachinePools or control plane reference it
// (through kustomize's previous names, as every reference here), and its
// cluster.x-k8s.io/cluster-name label, which Cluster API sets on what it creates.
func (r *run) clustersOf(o *object) []string {
	if r.rules.clusters == nil {
		r.rules.clusters = r.indexClusters()
	}
	set := map[string]bool{}
	for _, c := range r.rules.clusters[o] {
		set[c] = true
	}
	if l := scalarField(o.node.YNode(), "metadata", "labels", clusterNameLabel); l != "" {
		set[l] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// infraRefPaths are where Cluster API objects name the machine resource they use.
var infraRefPaths = map[string][][]string{
	"Machine":             {{"spec", "infrastructureRef"}},
	"MachineSet":          {{"spec", "template", "spec", "infrastructureRef"}},
	"MachineDeployment":   {{"spec", "template", "spec", "infrastructureRef"}},
	"MachinePool":         {{"spec", "template", "spec", "infrastructureRef"}},
	"KubeadmControlPlane": {{"spec", "machineTemplate", "infrastructureRef"}, {"spec", "machineTemplate", "spec", "infrastructureRef"}},
}

func (r *run) indexClusters() map[*object][]string {
	idx := map[*object][]string{}
	add := func(referrer *object, ref *yaml.Node, cluster string) {
		k, ok := refKey(ref, referrer.ns())
		if !ok || k.group != infraGroup || !slices.Contains(ruleKinds, k.kind) {
			return
		}
		if target, _, ambiguous := r.resolve(k, referrer); target != nil && !ambiguous && !slices.Contains(idx[target], cluster) {
			idx[target] = append(idx[target], cluster)
		}
	}
	for _, o := range r.objects {
		if o.removed {
			continue
		}
		y := o.node.YNode()
		if o.kind == "Cluster" && o.group == clusterGroup {
			// A KubeadmControlPlane names no Cluster: its Cluster's controlPlaneRef names it.
			k, ok := refKey(lookup(y, "spec", "controlPlaneRef"), o.ns())
			if !ok || k.kind != "KubeadmControlPlane" {
				continue
			}
			if kcp, _, ambiguous := r.resolve(k, o); kcp != nil && !ambiguous {
				for _, p := range infraRefPaths["KubeadmControlPlane"] {
					add(kcp, lookup(kcp.node.YNode(), p...), o.name)
				}
			}
			continue
		}
		paths, ok := infraRefPaths[o.kind]
		if !ok || o.kind == "KubeadmControlPlane" || o.group != clusterGroup {
			continue
		}
		cluster := scalarField(y, "spec", "clusterName")
		if cluster == "" {
			continue
		}
		for _, p := range paths {
			add(o, lookup(y, p...), cluster)
		}
	}
	return idx
}

// unmatchedRules warns of rules that matched nothing in enforce mode: a typo in a match
// leaves its pools on the defaults without a word otherwise. Audit keeps quiet, as the
// input it vouches for may hold only some of the fleet.
func (r *run) unmatchedRules() {
	if r.cfg.Mode != ModeEnforce || r.results.ExitCode() != 0 {
		return
	}
	for i, rule := range r.cfg.Rules {
		if !r.rules.matched[rule.Name] {
			r.result(Warning, nil, fmt.Sprintf("spec.rules[%d]", i), fmt.Sprintf("rule %q matched no resource of the input: "+
				"check its match (kinds, namespaces, names, labels, clusters)", rule.Name))
		}
	}
}
