package transformers

import "strings"

// EC2 instances that no CAPA manifest field can make IMDSv2-only: the bastion host, which
// CAPA (v2.13.0) starts without metadata options, and ROSA's nodes, whose CAPA kinds have
// no metadata options field. The function cannot fix them; audit must not call them
// compliant, so each is an error there and a warning in enforce mode.

const accountDefaults = "the account's EC2 metadata defaults " +
	"(aws ec2 modify-instance-metadata-defaults --http-tokens required --http-put-response-hop-limit 2)"

// outsideCAPA reports the objects whose instances lie outside what CAPA's fields reach,
// and tells whether it handled the object.
func (r *run) outsideCAPA(o *object) bool {
	switch {
	case o.group == infraGroup && o.kind == "AWSCluster", o.group == controlPlaneGroup && o.kind == "AWSManagedControlPlane":
		r.checkBastion(o, "spec")
	case o.group == infraGroup && o.kind == "AWSClusterTemplate", o.group == controlPlaneGroup && o.kind == "AWSManagedControlPlaneTemplate":
		r.checkBastion(o, "spec", "template", "spec")
	case o.group == infraGroup && o.kind == "ROSAMachinePool", o.group == controlPlaneGroup && o.kind == "ROSAControlPlane":
		if r.skipped(o) {
			return true
		}
		r.outside(o, "spec", "CAPA's "+o.kind+" has no metadata options field, so ROSA and the account decide whether its nodes "+
			"accept IMDSv1: require IMDSv2 in ROSA's machine pool settings (rosa create machinepool --ec2-metadata-http-tokens "+
			"required) or with "+accountDefaults)
	default:
		return false
	}
	return true
}

// checkBastion reports an enabled bastion host: CAPA starts it without instanceMetadataOptions.
func (r *run) checkBastion(o *object, path ...string) {
	field := strings.Join(append(append([]string(nil), path...), "bastion", "enabled"), ".")
	if scalarField(o.node.YNode(), append(path, "bastion", "enabled")...) != "true" || o.annotation(SkipAnnotation) == "true" {
		return
	}
	r.outside(o, field, "CAPA starts the bastion host without instanceMetadataOptions, so EC2's defaults apply and it may "+
		"accept IMDSv1: require IMDSv2 with "+accountDefaults+" or disable the bastion")
}

// outside is an error in audit mode, a warning in enforce mode: nothing here can be edited.
func (r *run) outside(o *object, field, msg string) {
	if r.cfg.Mode == ModeAudit {
		r.errorf(o, field, "%s", msg)
		return
	}
	r.warnf(o, field, "%s", msg)
}
