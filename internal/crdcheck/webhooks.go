package crdcheck

import (
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// CheckWebhooks applies, offline, the create-time rules of CAPA's validating
// webhooks that this project's edits can trip. It covers
// AWSManagedMachinePool (sigs.k8s.io/cluster-api-provider-aws/v2
// exp/webhooks/awsmanagedmachinepool_webhook.go at the pinned release):
//   - with spec.awsLaunchTemplate set, spec.instanceType, spec.diskSize and
//     spec.awsLaunchTemplate.iamInstanceProfile are rejected (EKS takes
//     them from the launch template and forbids an instance profile there);
//   - spec.remoteAccess.public with sourceSecurityGroups;
//   - spec.scaling minSize/maxSize signs and order;
//   - spec.updateConfig with neither or both of maxUnavailable and
//     maxUnavailablePercentage.
//
// Paths and messages are CAPA's, including its capitalized paths such as
// spec.InstanceType, so a finding can be matched to the server's error.
// Not covered: eksNodegroupName (CAPA's defaulting webhook fills it before
// validation, so the rule cannot fire on create), additionalTags and
// lifecycleHooks, which this project never writes.
//
// Webhooks apply to any version (matchPolicy Equivalent), so the version is
// not checked. Other objects yield no findings.
func CheckWebhooks(obj *yaml.RNode) []Finding {
	m, findings := toMap(obj)
	if m == nil {
		return findings
	}
	return sortFindings(checkWebhooks(m))
}

// CheckWebhooksMap is CheckWebhooks for an object decoded into Go values.
func CheckWebhooksMap(obj map[string]any) []Finding {
	m, findings := mapToMap(obj)
	if m == nil {
		return findings
	}
	return sortFindings(checkWebhooks(m))
}

func checkWebhooks(m map[string]any) []Finding {
	w := newWalker(m)
	apiVersion, _ := m["apiVersion"].(string)
	group, _, _ := splitAPIVersion(apiVersion)
	if group == "infrastructure.cluster.x-k8s.io" && w.kind == "AWSManagedMachinePool" {
		spec, _ := m["spec"].(map[string]any)
		w.managedPoolScaling(spec)
		w.managedPoolRemoteAccess(spec)
		w.managedPoolUpdateConfig(spec)
		w.managedPoolLaunchTemplate(spec)
	}
	return w.out
}

// set reports whether a field would be non-nil after the server decoded it
// into CAPA's Go type: present and not null (the server drops nulls).
func set(m map[string]any, k string) bool { return m != nil && m[k] != nil }

func (w *walker) managedPoolLaunchTemplate(spec map[string]any) {
	if !set(spec, "awsLaunchTemplate") {
		return
	}
	if set(spec, "instanceType") {
		w.add("spec.InstanceType", "Invalid value: %s: InstanceType cannot be specified when LaunchTemplate is specified", show(spec["instanceType"]))
	}
	if set(spec, "diskSize") {
		w.add("spec.DiskSize", "Invalid value: %s: DiskSize cannot be specified when LaunchTemplate is specified", show(spec["diskSize"]))
	}
	lt, _ := spec["awsLaunchTemplate"].(map[string]any)
	// A string field: only a non-empty value counts as set.
	if p, _ := lt["iamInstanceProfile"].(string); p != "" {
		w.add("spec.AWSLaunchTemplate.IamInstanceProfile", "Invalid value: %s: IAM instance profile in launch template is prohibited in EKS managed node group", show(p))
	}
}

func (w *walker) managedPoolRemoteAccess(spec map[string]any) {
	ra, _ := spec["remoteAccess"].(map[string]any)
	if ra == nil {
		return
	}
	sgs, _ := ra["sourceSecurityGroups"].([]any)
	if public, _ := ra["public"].(bool); public && len(sgs) > 0 {
		w.add("spec.remoteAccess.sourceSecurityGroups", "Invalid value: %s: must be empty if public is set", show(sgs))
	}
}

func (w *walker) managedPoolScaling(spec map[string]any) {
	sc, _ := spec["scaling"].(map[string]any)
	if sc == nil {
		return
	}
	// Non-integers (clusterctl placeholders) are left to the schema check.
	minSize, hasMin := sc["minSize"].(int64)
	maxSize, hasMax := sc["maxSize"].(int64)
	if hasMin {
		if minSize < 0 {
			w.add("spec.scaling.minSize", "Invalid value: %d: must be greater or equal zero", minSize)
		}
		if hasMax && maxSize < minSize {
			w.add("spec.scaling.maxSize", "Invalid value: %d: must be greater than field spec.scaling.minSize", maxSize)
		}
	}
	if hasMax && maxSize < 0 {
		w.add("spec.scaling.maxSize", "Invalid value: %d: must be greater than zero", maxSize)
	}
}

func (w *walker) managedPoolUpdateConfig(spec map[string]any) {
	// A missing updateConfig is defaulted to maxUnavailable: 1 by CAPA's
	// mutating webhook before validation runs.
	uc, ok := spec["updateConfig"].(map[string]any)
	if !ok {
		return
	}
	n, p := set(uc, "maxUnavailable"), set(uc, "maxUnavailablePercentage")
	switch {
	case !n && !p:
		w.add("spec.updateConfig", "Invalid value: %s: must specify one of maxUnavailable or maxUnavailablePercentage when using nodegroup updateconfig", show(uc))
	case n && p:
		w.add("spec.updateConfig", "Invalid value: %s: cannot specify both maxUnavailable and maxUnavailablePercentage", show(uc))
	}
}
