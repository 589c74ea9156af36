package transformers

import (
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/blake2b"
)

// maxEKSClusterNameLength is CAPA's maxClusterNameLength, which is also EKS's
// own limit on cluster names.
const maxEKSClusterNameLength = 100

// eksNameHashPrefix and eksNameHashedLength mirror CAPA's resourcePrefix and its
// hard-coded total of 32 characters for a hashed name.
const (
	eksNameHashPrefix   = "capa_"
	eksNameHashedLength = 32
)

const base36Alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// generateEKSName mirrors CAPA's eks.GenerateEKSName exactly, so the name we
// predict is the one CAPA's webhook will store. Note that the comparison is
// strict and counts bytes: a name of exactly maxLength bytes is hashed too.
func generateEKSName(resourceName, namespace string, maxLength int) string {
	eksName := namespace + "_" + strings.ReplaceAll(resourceName, ".", "_")
	if len(eksName) < maxLength {
		return eksName
	}
	return eksNameHashPrefix + base36TruncatedHash(eksName, eksNameHashedLength-len(eksNameHashPrefix))
}

// base36TruncatedHash mirrors CAPA's hash.Base36TruncatedHash. It is not an
// encoding: each digest byte becomes one character (byte % 36), so the result
// has exactly length characters. CAPA returns an error for a length outside
// 1..64; here that can only be a programming error, so it panics.
func base36TruncatedHash(s string, length int) string {
	h, err := blake2b.New(length, nil)
	if err != nil {
		panic(fmt.Sprintf("base36TruncatedHash: digest length %d: %v", length, err))
	}
	h.Write([]byte(s)) // hash.Hash.Write never fails
	sum := h.Sum(nil)
	out := make([]byte, len(sum))
	for i, b := range sum {
		out[i] = base36Alphabet[int(b)%len(base36Alphabet)]
	}
	return string(out)
}

// deriveEKSClusterName returns the name CAPA's AWSManagedControlPlane webhook
// defaults spec.eksClusterName to. A clusterctl placeholder in either input
// means the real length is only known after substitution, so the hash cannot
// be decided yet: the unhashed form is returned with templated set, and dots
// inside placeholders are kept because they belong to variable defaults, not
// to the name CAPA will see.
func deriveEKSClusterName(controlPlaneName, namespace string) (name string, templated bool) {
	if !hasPlaceholder(controlPlaneName) && !hasPlaceholder(namespace) {
		return generateEKSName(controlPlaneName, namespace, maxEKSClusterNameLength), false
	}
	// An unterminated placeholder is left as is; validateEKSClusterName reports it.
	segs, _ := splitPlaceholders(controlPlaneName)
	var b strings.Builder
	b.WriteString(namespace)
	b.WriteByte('_')
	for _, seg := range segs {
		if seg.placeholder {
			b.WriteString(seg.text)
		} else {
			b.WriteString(strings.ReplaceAll(seg.text, ".", "_"))
		}
	}
	return b.String(), true
}

// validateEKSClusterName enforces EKS's rule ^[0-9A-Za-z][A-Za-z0-9_-]*$ with
// at most 100 characters. It is deliberately strict because the name is
// written into a shell script. For a templated name only the literal text
// around the placeholders can be checked, and the length is unknown until
// clusterctl substitutes the variables.
func validateEKSClusterName(name string) error {
	if name == "" {
		return fmt.Errorf("EKS cluster name must not be empty")
	}
	if !hasPlaceholder(name) {
		if err := checkEKSNameChars(name, name, true); err != nil {
			return err
		}
		if len(name) > maxEKSClusterNameLength {
			return fmt.Errorf("EKS cluster name %q is %d characters long, EKS allows at most %d", name, len(name), maxEKSClusterNameLength)
		}
		return nil
	}
	segs, err := splitPlaceholders(name)
	if err != nil {
		return fmt.Errorf("EKS cluster name %q: %w", name, err)
	}
	for i, seg := range segs {
		if seg.placeholder {
			// The text inside a placeholder reaches the script too (as a default, or
			// as the variable's name): only a plain variable with a safe default may stand there.
			if !safePlaceholder.MatchString(seg.text) {
				return fmt.Errorf("EKS cluster name %q: placeholder %q is not allowed in a name written into a shell script; "+
					"use ${NAME} or ${NAME:=default} with a default of letters, digits, '_', '-' and '.'", name, seg.text)
			}
			continue
		}
		if err := checkEKSNameChars(name, seg.text, i == 0); err != nil {
			return err
		}
	}
	return nil
}

// checkEKSNameChars checks part of name; first says whether part starts the
// name and must therefore begin with a letter or digit.
func checkEKSNameChars(name, part string, first bool) error {
	for i, r := range part {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case (r == '_' || r == '-') && !(first && i == 0):
		case first && i == 0:
			return fmt.Errorf("EKS cluster name %q must start with a letter or digit, not %q", name, r)
		default:
			return fmt.Errorf("EKS cluster name %q contains %q; only letters, digits, '_' and '-' are allowed", name, r)
		}
	}
	return nil
}

// safePlaceholder is a clusterctl variable, optionally with a default, that cannot smuggle
// shell syntax into the bootstrap script.
var safePlaceholder = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-=][A-Za-z0-9_.-]*)?\}$`)

// hasPlaceholder reports whether s contains a clusterctl variable reference.
func hasPlaceholder(s string) bool {
	return strings.Contains(s, "${")
}

type nameSegment struct {
	text        string
	placeholder bool
}

// splitPlaceholders splits s into literal text and "${...}" placeholders. The
// closing brace is matched with nesting so that a default such as
// "${A:=${B}}" is one placeholder. On an unterminated placeholder the rest of
// s is returned as a placeholder segment together with an error.
func splitPlaceholders(s string) ([]nameSegment, error) {
	var segs []nameSegment
	for s != "" {
		start := strings.Index(s, "${")
		if start < 0 {
			segs = append(segs, nameSegment{text: s})
			break
		}
		if start > 0 {
			segs = append(segs, nameSegment{text: s[:start]})
		}
		end, depth := -1, 0
		for i := start; i < len(s) && end < 0; i++ {
			switch {
			case s[i] == '$' && i+1 < len(s) && s[i+1] == '{':
				depth++
				i++
			case s[i] == '}':
				depth--
				if depth == 0 {
					end = i + 1
				}
			}
		}
		if end < 0 {
			segs = append(segs, nameSegment{text: s[start:], placeholder: true})
			return segs, fmt.Errorf("unterminated placeholder %q", s[start:])
		}
		segs = append(segs, nameSegment{text: s[start:end], placeholder: true})
		s = s[end:]
	}
	return segs, nil
}

// eksName is the EKS cluster a MachinePool's nodes must join, and what making it certain
// takes once the bootstrap Secret is written.
type eksName struct {
	name      string
	cp        *object // the control plane to pin the name into, or nil
	templated bool    // holds clusterctl placeholders
	renames   string  // the name CAPA derives, when the configured one differs from it
}

// eksClusterName is the name of the EKS cluster the MachinePool's nodes must join: the
// one CAPA creates. CAPA's webhook fills an empty spec.eksClusterName once, at creation,
// from the control plane's name and namespace, both of which kustomize overlays, helm -n,
// Argo CD destinations and kubectl apply -n can still change after the function ran. So
// the name the script names is pinned into the control plane (where it is empty, see
// settle): CAPA then creates the cluster under exactly that name, and a live cluster whose
// name was derived differently rejects the update loudly ("eksClusterName is different to
// current cluster name") instead of starting nodes that never join.
func (r *run) eksClusterName(machinePool *object) (eksName, bool) {
	fix := "set spec.managedMachinePools.bootstrap.eksClusterName in the IMDSConfig"
	_, cp, problem := r.controlPlaneOf(machinePool)
	var current string
	if cp != nil {
		current = scalarField(cp.node.YNode(), "spec", "eksClusterName")
	}
	if override := r.cfg.EKSClusterName; override != "" {
		if !r.claimOverride(machinePool, cp, override) {
			return eksName{}, false
		}
		switch {
		case cp == nil:
			return eksName{name: override}, true // the control plane is elsewhere: the user names the cluster
		case current != "" && current != override:
			r.errorf(cp, "spec.eksClusterName", "is %q, but the IMDSConfig's eksClusterName is %q: the bootstrap script would join "+
				"a cluster CAPA does not create; make them agree", current, override)
			return eksName{}, false
		case current == "" && !r.canPin(cp) && r.guessedNamespace(cp):
			// CAPA names the cluster after a namespace nobody knows: the override cannot be checked against it.
			r.unknownNamespace(cp, "the IMDSConfig's eksClusterName "+override+" may not be the name CAPA derives, and the "+
				"control plane is not pinned to it")
			return eksName{}, false
		case current == "" && !r.canPin(cp):
			if derived, _ := deriveEKSClusterName(cp.name, r.controlPlaneNamespace(cp)); derived != override {
				r.errorf(cp, "spec.eksClusterName", "unset, so CAPA names the cluster %s, but the IMDSConfig's eksClusterName is %q: "+
					"the bootstrap script would join another cluster; set spec.eksClusterName to it, or let the function pin it", derived, override)
				return eksName{}, false
			}
		case current == "":
			n := eksName{name: override, cp: cp}
			// A live control plane already carries the name CAPA derived at creation; pinning
			// another one is an update CAPA's webhook refuses.
			if derived, _ := deriveEKSClusterName(cp.name, r.controlPlaneNamespace(cp)); derived != override && !hasPlaceholder(cp.name) &&
				!r.guessedNamespace(cp) {
				n.renames = derived
			}
			return n, true
		}
		return eksName{name: override}, true
	}
	if cp == nil {
		r.errorf(machinePool, "spec.clusterName", "%s, so the EKS cluster name cannot be derived; %s", problem, fix)
		return eksName{}, false
	}
	if current != "" {
		if err := validateEKSClusterName(current); err != nil {
			r.errorf(cp, "spec.eksClusterName", "%v", err)
			return eksName{}, false
		}
		return eksName{name: current}, true
	}
	if r.guessedNamespace(cp) {
		what := "the function would pin the name derived as if in \"default\", and the same manifests applied to two namespaces " +
			"(a chart installed twice) would give both tenants one EKS cluster, which CAPA adopts rather than refuses"
		if !r.canPin(cp) {
			what = "the bootstrap script would name the cluster as if in \"default\", and the nodes of any other namespace would never join"
		}
		r.unknownNamespace(cp, what)
		return eksName{}, false
	}
	name, templated := deriveEKSClusterName(cp.name, r.controlPlaneNamespace(cp))
	if err := validateEKSClusterName(name); err != nil {
		r.errorf(cp, "metadata.name", "derived EKS cluster name is unusable: %v; %s", err, fix)
		return eksName{}, false
	}
	return eksName{name: name, cp: cp, templated: templated}, true
}

// guessedNamespace reports whether the namespace CAPA will see the control plane in is
// unknown: none is written, none configured, and it is no clusterctl template (whose
// ${NAMESPACE} clusterctl substitutes).
func (r *run) guessedNamespace(cp *object) bool {
	return cp.namespace == "" && r.cfg.Namespace == "" && !hasPlaceholder(cp.name)
}

// claimOverride records the Cluster the IMDSConfig's eksClusterName names, and refuses it
// for a second one: CAPA v2.13 adopts any existing EKS cluster of the name it computes
// (reconcileCluster's ownership check, aws.String(tag) == nil, is never true), so two
// control planes of one name in one account and region share one EKS cluster: each
// reconciles it, deleting either deletes it, and both clusters' nodes join it.
func (r *run) claimOverride(machinePool, cp *object, override string) bool {
	cluster, _, _ := r.controlPlaneOf(machinePool)
	var k objKey
	switch {
	case cluster != nil:
		k = cluster.key()
	case scalarField(machinePool.node.YNode(), "spec", "clusterName") != "":
		k = objKey{clusterGroup, "Cluster", machinePool.ns(), scalarField(machinePool.node.YNode(), "spec", "clusterName")}
	default:
		return true // no Cluster at all: ensureSecret reports the missing clusterName
	}
	first, claimed := r.pools.overrideCluster, r.pools.overrideClaimed
	if !claimed {
		r.pools.overrideCluster, r.pools.overrideClaimed = k, true
		return true
	}
	if first == k {
		return true
	}
	at, field := machinePool, "spec.clusterName"
	if cp != nil {
		at, field = cp, "spec.eksClusterName"
	}
	r.errorf(at, field, "the IMDSConfig's eksClusterName %q already names the EKS cluster of Cluster %s/%s, and would name Cluster "+
		"%s/%s's too: CAPA adopts an existing EKS cluster of the name it computes rather than refusing it, so both control planes "+
		"would share one EKS cluster (each reconciles it, deleting either deletes it, and both clusters' nodes join it). "+
		"eksClusterName names one cluster: run the function once per Cluster, or leave it unset so each Cluster's name is "+
		"derived from its own control plane", override, first.namespace, first.name, k.namespace, k.name)
	return false
}

// settle pins the name, once the Secret naming it exists, and says what is still uncertain.
func (r *run) settle(n eksName) {
	if n.cp == nil {
		return
	}
	pinned := r.pin(n.cp, n.name, n.renames)
	if n.templated && !pinned {
		r.warnf(n.cp, "metadata.name", "the EKS cluster name %s holds placeholders: CAPA hashes names of 100 characters or more and "+
			"replaces dots in the control plane name, which cannot be applied before clusterctl substitutes them; "+
			"keep the substituted name short and free of dots, or set eksClusterName", n.name)
	}
}

func (r *run) canPin(cp *object) bool {
	return r.cfg.PinEKSClusterName && cp.annotation(SkipAnnotation) != "true"
}

// controlPlaneNamespace is the namespace CAPA will see the control plane in: its own, the
// configured target namespace, clusterctl's ${NAMESPACE} in a raw template, or "default".
func (r *run) controlPlaneNamespace(cp *object) string {
	switch {
	case cp.namespace != "":
		return cp.namespace
	case r.cfg.Namespace != "":
		return r.cfg.Namespace
	case hasPlaceholder(cp.name):
		return namespacePlaceholder // clusterctl substitutes it with the target namespace
	}
	return defaultNamespace
}

// unknownNamespace refuses an EKS name that would rest on a namespace nobody named, in both
// modes: what says what would go wrong.
func (r *run) unknownNamespace(cp *object, what string) {
	if r.pools.unknownNS[cp] {
		return // once per control plane, however many pools it has
	}
	if r.pools.unknownNS == nil {
		r.pools.unknownNS = map[*object]bool{}
	}
	r.pools.unknownNS[cp] = true
	r.errorf(cp, "metadata.namespace", "no namespace, and none configured: CAPA derives the EKS cluster name from the namespace the "+
		"control plane is applied to (helm -n, an Argo CD destination, kubectl apply -n), which nothing here names, so %s. "+
		"Name the target namespace: spec.namespace in the IMDSConfig, --namespace NS (helm: --post-renderer-args "+
		"--namespace=NS), or %s in the environment (an Argo CD plugin: %s=$ARGOCD_APP_NAMESPACE); or set metadata.namespace "+
		"on the manifests, or the EKS cluster name itself in the control plane's spec.eksClusterName", what, NamespaceEnv, NamespaceEnv)
}

// NamespaceEnv is the environment variable the command reads the target namespace from,
// where no flag can be given (kustomize exec functions, an Argo CD plugin).
const NamespaceEnv = "CAPA_IMDS_NAMESPACE"

// pin writes name into the control plane's empty spec.eksClusterName, once a run. It
// reports whether the control plane carries the name now.
func (r *run) pin(cp *object, name string, derived string) bool {
	if prev, ok := r.pools.pinned[cp]; ok {
		return prev == name
	}
	if !r.canPin(cp) || validateEKSClusterName(name) != nil {
		return false
	}
	if err := deAnchor(cp.node); err != nil {
		r.errorf(cp, "", "%v", err)
		return false
	}
	spec, err := ensurePath(cp.node.YNode(), "", "spec")
	if err != nil {
		r.fail(cp, err)
		return false
	}
	r.pools.pinned[cp] = name
	setScalar(spec, "eksClusterName", name, false)
	n := inform("pinned to %s, the cluster the bootstrap script joins: CAPA fills an empty eksClusterName once, at creation, "+
		"from the namespace and name it sees then, which may not be these", name)
	if derived != "" {
		n = warn("pinned to %s, the IMDSConfig's eksClusterName: a control plane created without eksClusterName already "+
			"carries %s, the name CAPA gave it at creation, and CAPA's webhook refuses to change it (\"eksClusterName is "+
			"different to current cluster name\"): use this on new clusters only", name, derived)
	}
	r.record(edit{obj: cp, field: "spec.eksClusterName", proposed: name, note: n,
		finding: fmt.Sprintf("unset: pin it to %s, the cluster the bootstrap script joins, so a namespace or name change "+
			"applied later cannot make CAPA name the cluster otherwise", name)})
	return true
}

// checkSharedEKSNames refuses two AWSManagedControlPlanes of the input that name one EKS
// cluster in one region with one identity, whoever named it (the user, a base two overlays
// share, or the function's pin): CAPA adopts an existing EKS cluster of the name it computes
// (its owned-tag check in pkg/cloud/services/eks/cluster.go can never fail), so the second
// control plane would reconcile, and on delete delete, the first's cluster. Placeholders are
// compared as written: one clusterctl run substitutes them alike. Names CAPA derives are
// unique per namespace and name, so only explicit names can collide.
func (r *run) checkSharedEKSNames() {
	type claim struct{ name, region, identity string }
	first := map[claim]*object{}
	for _, o := range r.objects {
		if o.removed || o.group != controlPlaneGroup || o.kind != "AWSManagedControlPlane" {
			continue
		}
		spec := o.node.YNode()
		name := scalarField(spec, "spec", "eksClusterName")
		if name == "" {
			continue
		}
		c := claim{name: name, region: scalarField(spec, "spec", "region"),
			identity: scalarField(spec, "spec", "identityRef", "kind") + "/" + scalarField(spec, "spec", "identityRef", "name")}
		prev, seen := first[c]
		if !seen {
			first[c] = o
			continue
		}
		r.errorf(o, "spec.eksClusterName", "%s names EKS cluster %q, as %s/%s does, in the same region and with the same identity: "+
			"CAPA adopts an existing EKS cluster of the name it computes rather than refusing it, so both control planes would "+
			"share one EKS cluster (each reconciles it, deleting either deletes it, and both clusters' nodes join it); give each "+
			"its own spec.eksClusterName, or leave it unset so CAPA derives one from the namespace and name",
			o.kind, name, prev.ns(), prev.name)
	}
}
