package transformers

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

const (
	imdsField = "instanceMetadataOptions"
	// metadataOptions is what CAPA's docs show under awsLaunchTemplate. No CAPA version
	// ever had it and the API server drops it, so the pool silently stays on IMDSv1.
	bogusIMDSField = "metadataOptions"
)

var capaIMDSKeys = map[string]bool{optHTTPTokens: true, optHopLimit: true, optHTTPEndpoint: true, optTags: true, optIPv6: true}

// applyMetadataOptions writes the configured instanceMetadataOptions under parent (a path
// from the object root), merging into what is there: keys the config does not set stay.
// It reports whether it changed a block that was already there, which CAPA's
// AWSMachineTemplate webhook rejects.
// missingOptions says what an instance gets from CAPA when the block is missing, which
// differs by kind: a missing block is a default, not the absence of one.
func missingOptions(kind string, hadLaunchTemplate bool) string {
	switch {
	case kind == "AWSManagedMachinePool" && !hadLaunchTemplate:
		return "missing: the pool has no launch template, so EKS starts its nodes from its own, which accepts IMDSv1 (httpTokens optional)"
	case kind == "AWSMachinePool" || kind == "AWSManagedMachinePool":
		return "missing: CAPA puts no metadata options in the pool's launch template, so the account's EC2 metadata " +
			"defaults apply: IMDSv1 unless the account requires IMDSv2"
	}
	return "missing: CAPA sends httpTokens optional and hop limit 1, so the instance accepts IMDSv1"
}

func (r *run) applyMetadataOptions(o *object, parent []string) (changedExisting bool, err error) {
	return r.applyMetadataOptionsWhy(o, parent, missingOptions(o.kind, true))
}

// applyMetadataOptionsWhy is applyMetadataOptions with the finding for a missing block.
func (r *run) applyMetadataOptionsWhy(o *object, parent []string, missing string) (changedExisting bool, err error) {
	prefix := strings.Join(parent, ".")
	// Check the whole path first so a malformed resource is reported, not half-edited.
	if _, err := mapAt(o.node.YNode(), parent...); err != nil {
		return false, err
	}
	if _, err := mapAt(o.node.YNode(), append(append([]string{}, parent...), imdsField)...); err != nil {
		return false, err
	}
	if _, err := mapAt(o.node.YNode(), append(append([]string{}, parent...), bogusIMDSField)...); err != nil {
		return false, err
	}
	p, err := ensurePath(o.node.YNode(), "", parent...)
	if err != nil {
		return false, err
	}
	existed := !isNull(valueOf(p, imdsField))
	imds, err := ensureMap(p, imdsField, fieldPath(prefix).child(imdsField))
	if err != nil {
		return false, err
	}
	imdsPath := join(prefix, imdsField)

	// Keys migrated from metadataOptions are unset as far as the API server knows.
	migrated := map[string]bool{}
	if bogus := removeKey(p, bogusIMDSField); bogus != nil {
		var moved []string
		for i := 0; bogus.Kind == yaml.MappingNode && i+1 < len(bogus.Content); i += 2 {
			k := bogus.Content[i].Value
			if valueOf(imds, k) == nil {
				appendPair(imds, bogus.Content[i], bogus.Content[i+1])
				moved = append(moved, k)
				migrated[k] = true
			}
		}
		r.record(edit{obj: o, field: join(prefix, bogusIMDSField), current: bogus,
			finding: bogusIMDSField + " is not a CAPA field (CAPA's docs show it, but the API server drops it): use " + imdsField,
			note: warn("%s is not a CAPA field and the API server drops it; migrated %s into %s and removed it",
				bogusIMDSField, listOrNone(moved), imdsPath)})
	}

	if v := valueOf(imds, optHTTPEndpoint); v != nil && v.Value == "disabled" {
		r.infof(o, join(imdsPath, optHTTPEndpoint), "httpEndpoint: disabled turns the metadata service off, which is stricter than any setting: kept")
	}
	prof := r.profileOf(o)
	if !existed && len(imds.Content) == 0 {
		// One finding for a missing block reads better than one per option.
		if prof.rule != nil {
			missing += fmt.Sprintf("; rule %q sets the options it needs", prof.rule.Name)
		}
		r.record(edit{obj: o, field: imdsPath, proposed: optionsMap(prof.options),
			finding: missing})
		for _, opt := range prof.options {
			setScalar(imds, opt.Key, opt.Value, opt.Int)
		}
	}
	for _, opt := range prof.options {
		cur := valueOf(imds, opt.Key)
		if opt.Key == optHTTPEndpoint && cur != nil && cur.Value == "disabled" {
			continue
		}
		// optional (an allowOptional rule's, or the config's) permits IMDSv1; it never
		// takes IMDSv2 away from a resource that requires it.
		if opt.Key == optHTTPTokens && opt.Value == string(HTTPTokensStateOptional) && cur != nil && cur.Value == string(HTTPTokensStateRequired) {
			r.infof(o, join(imdsPath, optHTTPTokens), "httpTokens: required is stricter than the optional%s the config permits: kept", prof.by())
			continue
		}
		before := display(cur)
		if migrated[opt.Key] {
			before = nil
		}
		if setScalar(imds, opt.Key, opt.Value, opt.Int) {
			var want any = opt.Value
			if opt.Int {
				want = display(valueOf(imds, opt.Key))
			}
			e := edit{obj: o, field: join(imdsPath, opt.Key), current: before, proposed: want}
			if prof.rule != nil {
				e.finding = fmt.Sprintf("is %s, want %s%s", describeValue(before), describeValue(want), prof.by())
			}
			r.record(e)
			changedExisting = changedExisting || existed
		}
	}

	var unknown []string
	for i := 0; i+1 < len(imds.Content); i += 2 {
		if !capaIMDSKeys[imds.Content[i].Value] {
			unknown = append(unknown, imds.Content[i].Value)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		r.warnf(o, join(imdsPath, k), "unknown field: CAPA's instanceMetadataOptions has httpEndpoint, httpProtocolIpv6, "+
			"httpPutResponseHopLimit, httpTokens, instanceMetadataTags; the API server would reject or drop it")
	}
	return changedExisting, nil
}

func listOrNone(keys []string) string {
	if len(keys) == 0 {
		return "nothing (every key was already set)"
	}
	return strings.Join(keys, ", ")
}
