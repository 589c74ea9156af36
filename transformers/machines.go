package transformers

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// An AWSMachine is a running instance. CAPA's webhook rejects any change to an existing
// AWSMachine's spec outside a short allow-list, and instanceMetadataOptions is not on it
// (even adding the block where there was none is refused), while its controller converges
// the instance to the spec on every reconcile, undoing a fix made on the EC2 side. So an
// edited AWSMachine must be replaced, and one an AWSMachinePool owns mirrors an instance
// of the pool's launch template: the pool is what to fix.

// liveMachineChanged warns that the edited AWSMachine must be replaced to take effect.
func (r *run) liveMachineChanged(o *object) {
	r.noteEnforce(Warning, o, "spec.instanceMetadataOptions", "CAPA's webhook rejects any change to an existing AWSMachine's "+
		"spec, instanceMetadataOptions included, and its controller keeps the instance as the spec says: applied over a live "+
		"machine this fails. Replace the machine: delete it and let its owner recreate it, or create it under a new name")
}

// poolOwnedMachine reports an AWSMachine that an AWSMachinePool owns, instead of editing it,
// and tells whether it did. Audit reports what a compliant spec would change.
func (r *run) poolOwnedMachine(o *object, parent []string) bool {
	pool := ownerOfKind(o.node.YNode(), "AWSMachinePool")
	if pool == "" {
		return false
	}
	const field = "spec.instanceMetadataOptions"
	why := fmt.Sprintf("this AWSMachine mirrors a live instance of AWSMachinePool %s, whose launch template decides its "+
		"metadata options: require IMDSv2 on the pool (spec.awsLaunchTemplate.instanceMetadataOptions) and let an instance "+
		"refresh replace the instance; the function does not rewrite it", pool)
	// What enforce would change, worked out on a copy and not recorded as an edit.
	trial := newObject(o.node.Copy(), o.defNS)
	before, results := len(r.edits), len(r.results)
	_, err := r.applyMetadataOptions(trial, parent)
	var fields []string
	for _, e := range r.edits[before:] {
		fields = append(fields, e.field)
	}
	r.edits, r.results = r.edits[:before], r.results[:results]
	switch {
	case err != nil:
		r.fail(o, err)
	case len(fields) == 0:
	case r.cfg.Mode == ModeAudit:
		r.errorf(o, field, "not compliant (%s): %s", strings.Join(fields, ", "), why)
	default:
		r.warnf(o, field, "not compliant (%s): %s", strings.Join(fields, ", "), why)
	}
	return true
}

// ownerOfKind returns the name of the object's owner of that kind, or "".
func ownerOfKind(n *yaml.Node, kind string) string {
	owners := lookup(n, "metadata", "ownerReferences")
	if owners == nil || owners.Kind != yaml.SequenceNode {
		return ""
	}
	for _, ref := range owners.Content {
		if scalarField(ref, "kind") == kind {
			if g, _ := splitAPIVersion(scalarField(ref, "apiVersion")); g == infraGroup {
				return scalarField(ref, "name")
			}
		}
	}
	return ""
}
