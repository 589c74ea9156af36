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
	guessedNS bool    // derived from a namespace nobody set or configured
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
		switch {
		case cp == nil:
			return eksName{name: override}, true // the control plane is elsewhere: the user names the cluster
		case current != "" && current != override:
			r.errorf(cp, "spec.eksClusterName", "is %q, but the IMDSConfig's eksClusterName is %q: the bootstrap script would join "+
				"a cluster CAPA does not create; make them agree", current, override)
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
			if derived, _ := deriveEKSClusterName(cp.name, r.controlPlaneNamespace(cp)); derived != override && !hasPlaceholder(cp.name) {
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
	ns := r.controlPlaneNamespace(cp)
	name, templated := deriveEKSClusterName(cp.name, ns)
	if err := validateEKSClusterName(name); err != nil {
		r.errorf(cp, "metadata.name", "derived EKS cluster name is unusable: %v; %s", err, fix)
		return eksName{}, false
	}
	return eksName{name: name, cp: cp, templated: templated,
		guessedNS: cp.namespace == "" && r.cfg.Namespace == "" && !hasPlaceholder(ns)}, true
}

// settle pins the name, once the Secret naming it exists, and says what is still uncertain.
func (r *run) settle(n eksName) {
	if n.cp == nil {
		return
	}
	pinned := r.pin(n.cp, n.name, n.guessedNS, n.renames)
	if n.guessedNS && !pinned {
		r.unknownNamespace(n.cp, n.name)
	}
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

// unknownNamespace reports a name derived from a guessed namespace and not pinned.
func (r *run) unknownNamespace(cp *object, name string) {
	msg := "no namespace and none configured: the bootstrap script names %s, as if in %q, but CAPA derives the name from the " +
		"namespace the control plane is applied to (helm -n, an Argo CD destination, kubectl apply -n), and the nodes of any " +
		"other namespace would never join; set spec.namespace in the IMDSConfig (or --namespace), or pin spec.eksClusterName"
	if r.cfg.Mode == ModeAudit {
		r.errorf(cp, "metadata.namespace", msg, name, defaultNamespace)
		return
	}
	r.warnf(cp, "metadata.namespace", msg, name, defaultNamespace)
}

// pin writes name into the control plane's empty spec.eksClusterName, once a run. It
// reports whether the control plane carries the name now.
func (r *run) pin(cp *object, name string, guessedNS bool, derived string) bool {
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
	if guessedNS {
		n = &note{sev: Warning, field: "metadata.namespace", msg: fmt.Sprintf("no namespace and none configured: pinned "+
			"spec.eksClusterName to %s (as if in %q), so the nodes join wherever it is applied; to get the name CAPA derives in "+
			"the target namespace, set spec.namespace in the IMDSConfig or pass --namespace", name, defaultNamespace)}
	}
	r.record(edit{obj: cp, field: "spec.eksClusterName", proposed: name, note: n,
		finding: fmt.Sprintf("unset: pin it to %s, the cluster the bootstrap script joins, so a namespace or name change "+
			"applied later cannot make CAPA name the cluster otherwise", name)})
	return true
}
